"""robots.txt for the crawler, per RFC 9309 (https://www.rfc-editor.org/rfc/rfc9309).

One robots.txt per origin (scheme, host, port) is fetched with sokbo's own
User-Agent, at most once per ``ttl`` seconds across every crawler replica: the
answer is cached in Redis under ``sokbo:robots:<origin>`` (status and body) and
concurrent callers in one process share one in-flight fetch; replicas that miss
the cache at the same moment wait for the one holding ``sokbo:robots-fetch:<origin>``.
Rules are matched by protego (https://github.com/scrapy/protego): the longest
matching path wins and ``Allow`` wins a tie (RFC 9309 §2.2.2), for the group of
sokbo's product token or else ``*`` (§2.2.1).

What each answer to ``GET /robots.txt`` means (§2.3.1):

======================================  =========================================
2xx                                     parse the rules (the first 500 KiB, §2.5)
3xx left after 5 redirects (§2.3.1.2)   unavailable: allow everything
401, 403                                unavailable: allow everything (see below)
other 4xx (404, 410, ...) except 429    unavailable: allow everything (§2.3.1.3)
429, 5xx, network error, timeout        unreachable: disallow everything for now,
                                        ask again after ``retry_after_error`` s
======================================  =========================================

401 and 403 follow RFC 9309 §2.3.1.3 ("4xx: MAY access any resources") as Google
does, not CPython's ``urllib.robotparser`` (which reads them as "disallow all"):
a WAF that refuses robots.txt to an unknown client says nothing about the site's
crawling policy, and a site that truly refuses sokbo answers 403 for the pages
too, which the fetcher reports as a permanent error.  See bug case B02.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import redis.asyncio as aioredis
from prometheus_client import Counter
from protego import Protego
from redis.exceptions import LockError

from sokbo import streams
from sokbo.logs import get_logger
from sokbo.observability import REGISTRY

__all__ = [
    "MAX_BYTES",
    "ROBOTS_DISALLOWED",
    "ROBOTS_FETCHES",
    "Fetch",
    "RobotsCache",
    "RobotsPolicy",
    "http_fetch",
    "origin_of",
    "product_token",
]

#: bytes of a robots.txt that are parsed; the rest is ignored (RFC 9309 §2.5)
MAX_BYTES = 500 * 1024
#: redirects followed for robots.txt (RFC 9309 §2.3.1.2: "at least five")
MAX_REDIRECTS = 5
#: seconds one robots.txt fetch may take in all, redirects included (then: unreachable)
FETCH_DEADLINE = 30.0
#: seconds a replica may hold the right to fetch one origin's robots.txt
FETCH_LOCK_TTL = 2 * FETCH_DEADLINE

#: ``fetch(url) -> (status, body)``: GET *url* with sokbo's User-Agent
Fetch = Callable[[str], Awaitable[tuple[int, bytes]]]

ROBOTS_FETCHES = Counter(
    "sokbo_robots_fetches_total", "robots.txt fetches by outcome (ok, unavailable, "
    "forbidden, throttled, server_error, unreachable).", ["outcome"], registry=REGISTRY)
ROBOTS_DISALLOWED = Counter(
    "sokbo_robots_disallowed_total", "Entry URLs skipped because robots.txt disallows "
    "them, by source.", ["source_id"], registry=REGISTRY)

_UNREACHABLE = 0  # the status stored when no HTTP answer came back


def product_token(user_agent: str) -> str:
    """Return the product token of *user_agent*, lower-cased: ``"sokbo/0.1 (+…)"`` → ``"sokbo"``.

    It is the name matched against ``User-agent:`` lines (RFC 9309 §2.2.1: letters,
    ``-`` and ``_``; RFC 9110 §10.1.5 for the header's shape).

    Raises:
        ValueError: *user_agent* does not start with a product token.
    """
    head = user_agent.strip().split("/", 1)[0].split(None, 1)
    token = head[0] if head else ""
    if not token or not all(c.isascii() and (c.isalpha() or c in "-_") for c in token):
        raise ValueError(f"no product token at the start of User-Agent {user_agent!r}")
    return token.lower()


def origin_of(url: str) -> str | None:
    """Return ``scheme://host[:port]`` of an http(s) *url* (default port left out), else None.

    The origin is the scope of one robots.txt (RFC 9309 §2.3).  None for a URL that
    is not http(s), has no host, or cannot be parsed.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), parts.hostname
    if scheme not in ("http", "https") or not host:
        return None
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{host}" + (f":{port}" if port and port != default else "")


@dataclass(frozen=True)
class RobotsPolicy:
    """What one answer to ``GET /robots.txt`` means for a crawler (RFC 9309 §2.3.1).

    Attributes:
        status: the HTTP status, or 0 when no answer came back (network error).
        rules: the parsed file for a 2xx answer, else None.
    """

    status: int
    rules: Protego | None

    @classmethod
    def from_response(cls, status: int, body: bytes) -> RobotsPolicy:
        """Interpret *status* and *body* (only a 2xx body is read; see :func:`truncate`)."""
        if 200 <= status < 300:
            text = truncate(body).decode("utf-8-sig", errors="replace")
            return cls(status, Protego.parse(text))
        return cls(status, None)

    @property
    def outcome(self) -> str:
        """The metric label of this answer: ok, unavailable, forbidden, throttled, ..."""
        if self.status == _UNREACHABLE:
            return "unreachable"
        if 200 <= self.status < 300:
            return "ok"
        if self.status == 429:
            return "throttled"
        if self.status >= 500:
            return "server_error"
        return "forbidden" if self.status in (401, 403) else "unavailable"

    @property
    def transient(self) -> bool:
        """True for 429, 5xx and network errors: disallow now, ask again soon."""
        return self.outcome in ("unreachable", "throttled", "server_error")

    def allows(self, url: str, token: str) -> bool:
        """Return whether the crawler named *token* may fetch *url* (longest match wins)."""
        if self.rules is not None:
            return self.rules.can_fetch(url, token)
        return not self.transient

    def crawl_delay(self, token: str) -> float | None:
        """Return the ``Crawl-delay`` (seconds) of *token*'s group (or ``*``'s), if any."""
        return self.rules.crawl_delay(token) if self.rules is not None else None


def truncate(body: bytes) -> bytes:
    """Return the first :data:`MAX_BYTES` of *body*, cut after the last complete line.

    RFC 9309 §2.5 requires parsing at least 500 KiB; a line cut in two would turn
    ``Disallow: /news/archive`` into a broader ``Disallow: /ne``, so it is dropped.
    """
    if len(body) <= MAX_BYTES:
        return body
    head = body[:MAX_BYTES]
    return head[: head.rfind(b"\n") + 1]


def http_fetch(client: httpx.AsyncClient, max_bytes: int = MAX_BYTES) -> Fetch:
    """Return a :data:`Fetch` that GETs robots.txt with *client*.

    The client must send sokbo's User-Agent (``Fetcher.client`` does).  Up to five
    redirects are followed, across hosts too (RFC 9309 §2.3.1.2); a sixth redirect is
    returned as its 3xx status.  A 2xx body is read up to *max_bytes* (plus one
    network chunk); other bodies are not read.  ``Accept-Encoding: identity`` is
    sent, so a compressed robots.txt cannot inflate far beyond its size on the wire.

    The returned callable raises httpx's exceptions on network errors and timeouts.
    """
    async def fetch(url: str) -> tuple[int, bytes]:
        for _ in range(MAX_REDIRECTS + 1):
            async with client.stream("GET", url, follow_redirects=False,
                                     headers={"Accept-Encoding": "identity"}) as response:
                if response.is_redirect and response.next_request is not None:
                    url = str(response.next_request.url)
                    continue
                if not response.is_success:
                    return response.status_code, b""
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > max_bytes:
                        break
                return response.status_code, bytes(body)
        return response.status_code, b""

    return fetch


@dataclass
class _Memo:
    expires: float  # time.monotonic()
    policy: RobotsPolicy


class RobotsCache:
    """Answer "may sokbo fetch this URL?" from each origin's robots.txt, shared via Redis.

    Args:
        redis: the client that holds ``sokbo:robots:<origin>`` for every replica.
        fetch: ``async fetch(url) -> (status, body)``: GET *url* with sokbo's own
            User-Agent, following up to five redirects, returning the final status
            (any status, 3xx to 5xx included) and the body; it raises on a network
            error or timeout, and is given :data:`FETCH_DEADLINE` seconds in all.
            Build it with :func:`http_fetch` over the crawler's client.  It may hold
            the host's politeness slot (``HostGate.slot``), so never call
            :meth:`allowed` while holding that host's slot.
        user_agent: the User-Agent string *fetch* sends; its product token picks
            the robots.txt group (:func:`product_token`).
        ttl: seconds a robots.txt answer is kept (RFC 9309 §2.4: at most 24 h).
        retry_after_error: seconds a 429, 5xx or network error is kept before
            robots.txt is asked for again (everything is disallowed meanwhile).
        on_fetched: called as ``await on_fetched(origin, crawl_delay)`` after each
            fetch by this replica, e.g. with ``HostGate.set_crawl_delay``.
    """

    def __init__(self, redis: aioredis.Redis, fetch: Fetch, user_agent: str,
                 ttl: float = 3600.0, retry_after_error: float = 300.0, *,
                 on_fetched: Callable[[str, float | None], Awaitable[object]] | None = None,
                 ) -> None:
        self._redis = redis
        self._fetch = fetch
        self.token = product_token(user_agent)
        self._ttl = ttl
        self._retry_after_error = retry_after_error
        self._on_fetched = on_fetched
        self._memo: dict[str, _Memo] = {}
        self._inflight: dict[str, asyncio.Task[RobotsPolicy]] = {}

    async def allowed(self, url: str) -> bool:
        """Return whether robots.txt lets sokbo fetch *url*.

        A URL that is not http(s) with a host is answered True: the fetcher refuses
        it with its own error.  Raises only Redis errors.
        """
        origin = origin_of(url)
        if origin is None:
            return True
        return (await self._policy(origin)).allows(url, self.token)

    async def check(self, url: str, *, source_id: str) -> bool | None:
        """Return whether sokbo may fetch *url*: True, False, or None for "not known yet".

        None when robots.txt could not be read (429, 5xx, network error): the caller
        must try the URL later, not treat it as disallowed.  A False is logged as
        ``robots_disallowed`` and counted.
        """
        origin = origin_of(url)
        if origin is None:
            return True
        policy = await self._policy(origin)
        if policy.rules is None and policy.transient:
            return None
        if policy.allows(url, self.token):
            return True
        ROBOTS_DISALLOWED.labels(source_id=source_id).inc()
        get_logger(source_id=source_id).info("robots_disallowed", url=url)
        return False

    async def crawl_delay(self, host_url: str) -> float | None:
        """Return the ``Crawl-delay`` (seconds) robots.txt sets for sokbo at *host_url*'s origin."""
        origin = origin_of(host_url)
        return None if origin is None else (await self._policy(origin)).crawl_delay(self.token)

    async def _policy(self, origin: str) -> RobotsPolicy:
        memo = self._memo.get(origin)
        if memo is not None and memo.expires > time.monotonic():
            return memo.policy
        task = self._inflight.get(origin)
        if task is None:  # one fetch per origin in this process; callers share it
            task = asyncio.create_task(self._load(origin))
            self._inflight[origin] = task
            task.add_done_callback(lambda _: self._inflight.pop(origin, None))
        return await asyncio.shield(task)  # a cancelled caller leaves the fetch running

    async def _load(self, origin: str) -> RobotsPolicy:
        key = streams.key("robots", origin)
        cached, pause = await self._read(key), 0.05
        while cached is None:
            lock = self._redis.lock(streams.key("robots-fetch", origin),
                                    timeout=FETCH_LOCK_TTL, blocking=False)
            if await lock.acquire():
                try:
                    cached = await self._fetch_and_store(origin, key)
                finally:
                    with contextlib.suppress(LockError):  # expired while we were fetching
                        await lock.release()
            else:  # another replica is fetching it: look again shortly
                pause = min(1.0, pause * 2)
                await asyncio.sleep(pause)
                cached = await self._read(key)
        policy, seconds = cached
        if len(self._memo) > 4096:
            now = time.monotonic()
            self._memo = {o: m for o, m in self._memo.items() if m.expires > now}
        self._memo[origin] = _Memo(time.monotonic() + seconds, policy)
        return policy

    async def _read(self, key: str) -> tuple[RobotsPolicy, float] | None:
        async with self._redis.pipeline(transaction=True) as pipe:
            value, pttl = await pipe.get(key).pttl(key).execute()
        if value is None or pttl <= 0:
            return None
        status, _, body = value.partition(b"\n")
        return RobotsPolicy.from_response(int(status), body), pttl / 1000

    async def _fetch_and_store(self, origin: str, key: str) -> tuple[RobotsPolicy, float]:
        url = f"{origin}/robots.txt"
        started = time.monotonic()
        try:
            async with asyncio.timeout(FETCH_DEADLINE):
                status, body = await self._fetch(url)
            error = None
        except Exception as exc:  # no answer, or too slow: unreachable (§2.3.1.4)
            status, body, error = _UNREACHABLE, b"", f"{type(exc).__name__}: {exc}"
        body = truncate(body) if 200 <= status < 300 else b""
        policy = RobotsPolicy.from_response(status, body)
        seconds = self._retry_after_error if policy.transient else self._ttl
        await self._redis.set(key, b"%d\n" % status + body, px=max(1, int(seconds * 1000)))
        ROBOTS_FETCHES.labels(outcome=policy.outcome).inc()
        delay = policy.crawl_delay(self.token)
        get_logger(origin=origin).info(
            "robots_fetched", status=status, outcome=policy.outcome, bytes=len(body),
            crawl_delay_s=delay, cached_s=seconds, error=error,
            fetch_s=round(time.monotonic() - started, 3))
        if self._on_fetched is not None:
            await self._on_fetched(origin, delay)
        return policy, seconds
