"""HTTP fetching for the crawler: one place for limits, politeness and error classes.

httpx does the HTTP (https://www.python-httpx.org).  Bodies are read raw and
decompressed here, chunk by chunk with an output limit, so a response is refused
as soon as it passes ``max_body_bytes`` *after* decompression: a gzip bomb is an
error, not an out-of-memory (httpx's own decoding inflates a whole network chunk
first).  gzip, deflate and br are asked for (RFC 9110 §8.4, RFC 7932), and a
single coding is accepted.  Each request has an overall deadline of twice the read
timeout, so a server trickling bytes cannot hold a host forever.

Requests to one host go through a *host gate*: one at a time and spaced by
``per_host_delay`` seconds — across all crawler replicas when the gate is the
Redis-backed :class:`sokbo_crawler.hosts.HostGate`, in this process with
:class:`LocalHostGate`.  Conditional GET (RFC 9110 §13.1): callers pass the
validators of the last response (``ETag``, ``Last-Modified``) and get a 304 back
as a result with an empty body.  Network failures and 5xx answers without a
``Retry-After`` are retried with jittered exponential backoff (tenacity); a 429 or
503 with ``Retry-After`` is raised at once for the caller to pause the whole host.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Protocol
from urllib.parse import urlsplit

import brotli
import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from sokbo.errors import PermanentError, RetryableError
from sokbo.observability import FETCH_RETRIES
from sokbo_crawler.hosts import host_of
from sokbo_crawler.ssrf import PrivateAddressError, UnsafeURLError, guarded_transport

__all__ = ["FetchResult", "Fetcher", "LocalHostGate", "PrivateAddressError", "TooLargeError",
           "UnsafeURLError", "user_agent"]

#: attempts per fetch for network errors and 5xx without Retry-After (then the caller
#: counts a failed attempt and tries again on a later poll)
ATTEMPTS = 3


def user_agent() -> str:
    """Return sokbo's User-Agent, naming the product and version."""
    return f"sokbo/{version('sokbo')} (+https://github.com/sokbo/sokbo; news monitor)"


class TooLargeError(PermanentError):
    """The body exceeded the size cap."""


@dataclass(frozen=True)
class FetchResult:
    """A 2xx response, or a 304 (``not_modified``, empty body) to a conditional GET.

    Attributes:
        url: the URL asked for.
        final_url: the URL after redirects.
        status: the final HTTP status (2xx or 304).
        content_type, charset: from the ``Content-Type`` header.
        body: the decompressed body (at most the cap), ``b""`` for a 304.
        elapsed: seconds from request to the last byte.
        etag, last_modified: the validators to send next time (``None`` if absent).
        moved_to: the new URL when the first hop was a permanent redirect (301/308).
    """

    url: str
    final_url: str
    status: int
    content_type: str | None
    charset: str | None
    body: bytes
    elapsed: float
    etag: str | None = None
    last_modified: str | None = None
    moved_to: str | None = field(default=None)

    @property
    def not_modified(self) -> bool:
        """True for a 304: the resource is unchanged since the validators sent."""
        return self.status == 304


class HostGate(Protocol):
    """Grants one request at a time per host, spaced by the politeness delay, and pauses
    a host that answered 429/503 (see :class:`sokbo_crawler.hosts.HostGate`)."""

    def slot(self, url: str) -> AsyncIterator[None]: ...  # an async context manager

    async def throttle(self, url: str, retry_after: str | float | None) -> float: ...

    async def throttled_for(self, url: str) -> float: ...


class LocalHostGate:
    """Per-host serialisation and spacing within this process only (tests, one replica)."""

    def __init__(self, per_host_delay: float, default_backoff: float = 60.0) -> None:
        self._delay = per_host_delay
        self._default = default_backoff
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._last: dict[str, float] = {}
        self._until: dict[str, float] = {}

    async def throttle(self, url: str, retry_after: str | float | None) -> float:
        """Pause *url*'s host for ``Retry-After`` (seconds or HTTP-date) in this process."""
        seconds = (retry_after if isinstance(retry_after, float | int)
                   else parse_retry_after(retry_after))
        seconds = self._default if seconds is None else min(float(seconds), 3600.0)
        host, now = _host_of(url), time.monotonic()
        left = max(0.0, self._until.get(host, 0.0) - now)
        if seconds > left:
            self._until[host], left = now + seconds, seconds
        return left

    async def throttled_for(self, url: str) -> float:
        """Return the seconds left of *url*'s host's pause (0 if none)."""
        return max(0.0, self._until.get(_host_of(url), 0.0) - time.monotonic())

    @asynccontextmanager
    async def slot(self, url: str) -> AsyncIterator[None]:
        """Hold *url*'s host for one request, after waiting out the delay since the last."""
        host = _host_of(url)
        async with self._locks[host]:
            wait = max(self._last.get(host, 0.0) + self._delay,
                       self._until.get(host, 0.0)) - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                yield
            finally:
                self._last[host] = time.monotonic()


class Fetcher:
    """GET URLs with a size cap, timeouts, redirects, retries and per-host politeness."""

    def __init__(self, client: httpx.AsyncClient, *, max_body_bytes: int,
                 per_host_delay: float = 1.0, deadline: float = 30.0,
                 gate: HostGate | None = None, attempts: int = ATTEMPTS,
                 backoff: float = 0.5) -> None:
        self._client = client
        self._max = max_body_bytes
        self._deadline = deadline
        self._gate = gate or LocalHostGate(per_host_delay)
        self._attempts = attempts
        self._backoff = backoff

    @staticmethod
    def client(timeout: float, agent: str | None = None, *,
               allow_private_networks: bool = True) -> httpx.AsyncClient:
        """Return an httpx client with sokbo's User-Agent, redirects (≤5) and timeouts.

        With ``allow_private_networks=False`` every connection, each redirect hop
        included, is refused when its host resolves to a private, loopback,
        link-local, multicast or reserved address: the check runs on the resolved
        addresses inside the transport, which then connects to exactly those, so a
        DNS answer that changes between check and connect cannot slip through (see
        :mod:`sokbo_crawler.ssrf`).  Proxies from the environment are not used.
        """
        return httpx.AsyncClient(
            transport=guarded_transport(allow_private_networks=allow_private_networks),
            trust_env=False,
            headers={"User-Agent": agent or user_agent(), "Accept-Language": "ko,en;q=0.5",
                     "Accept-Encoding": "gzip, deflate, br"},
            follow_redirects=True, max_redirects=5,
            timeout=httpx.Timeout(timeout, connect=min(5.0, timeout)))

    async def get(self, url: str, *, etag: str | None = None,
                  last_modified: str | None = None) -> FetchResult:
        """Fetch *url*, conditionally when *etag* or *last_modified* is given.

        Args:
            url: an http(s) URL.
            etag: the ``ETag`` of the last 200, sent as ``If-None-Match``.
            last_modified: its ``Last-Modified``, sent as ``If-Modified-Since``.

        Returns:
            the response; ``status == 304`` (empty body) when the server says unchanged.

        Raises:
            RetryableError: network failure, timeout, HTTP 429 or 5xx, after the
                retries; ``retry_after`` (seconds) is set when the server sent one.
            PermanentError: any other non-2xx status, a non-HTTP URL.
            TooLargeError: the decompressed body exceeds the cap.
        """
        try:
            _host_of(url)
        except ValueError as exc:
            raise PermanentError(f"invalid URL {url!r}: {exc}") from None
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._attempts),
            wait=wait_random_exponential(multiplier=self._backoff, max=10 * self._backoff),
            retry=retry_if_exception(
                lambda exc: isinstance(exc, RetryableError) and exc.retry_after is None),
            before_sleep=lambda state: FETCH_RETRIES.inc(),
            reraise=True)
        async for attempt in retrying:
            with attempt:
                paused = await self._gate.throttled_for(url)
                if paused > 0:  # never wait out a host's Retry-After inside a fetch
                    raise RetryableError(f"{url}: its host asked to wait (Retry-After); "
                                         f"{paused:.0f} s left", retry_after=paused)
                async with self._gate.slot(url):
                    try:
                        async with asyncio.timeout(self._deadline):
                            return await self._get(url, headers)
                    except TimeoutError:
                        raise RetryableError(
                            f"{url} took longer than {self._deadline:g} s") from None
        raise AssertionError("unreachable: tenacity reraises the last error")

    async def _get(self, url: str, headers: dict[str, str]) -> FetchResult:
        started = time.monotonic()
        try:
            async with self._client.stream("GET", url, headers=headers) as response:
                status = response.status_code
                header = response.headers.get("retry-after")
                if status == 429 or (status == 503 and header) or (status >= 500 and header):
                    # the whole host waits, on every replica (B05), not just this URL
                    pause = await self._gate.throttle(url, header)
                    raise RetryableError(f"HTTP {status} from {url}; host paused for "
                                         f"{pause:.0f} s (Retry-After: {header})",
                                         retry_after=pause)
                if status >= 500:
                    raise RetryableError(f"HTTP {status} from {url}")
                if status == 304:
                    body = b""
                elif status >= 300:
                    raise PermanentError(f"HTTP {status} from {url}")
                else:
                    body = await self._read_capped(response, url)
        except (httpx.UnsupportedProtocol, httpx.InvalidURL, UnicodeError, ValueError) as exc:
            raise PermanentError(f"cannot fetch {url}: {exc}") from None
        except httpx.TooManyRedirects:
            raise PermanentError(f"more than 5 redirects from {url}") from None
        except httpx.HTTPError as exc:
            raise RetryableError(f"{type(exc).__name__} fetching {url}: {exc}") from None
        content_type = response.headers.get("content-type")
        first_hop = response.history[0].status_code if response.history else None
        # only the permanent hop's own target is the new address (RFC 9110 §15.4.2): a
        # 301 to a URL that then 302s elsewhere moved to the first target, not the last
        moved = (response.history[1] if len(response.history) > 1 else response).url
        return FetchResult(url=url, final_url=str(response.url), status=response.status_code,
                           content_type=content_type, charset=response.charset_encoding,
                           body=body, elapsed=time.monotonic() - started,
                           etag=response.headers.get("etag"),
                           last_modified=response.headers.get("last-modified"),
                           moved_to=str(moved) if first_hop in (301, 308) else None)

    async def _read_capped(self, response: httpx.Response, url: str) -> bytes:
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self._max:
            raise TooLargeError(f"{url} declares {declared} bytes, over the "
                                f"{self._max}-byte cap")
        if response.is_stream_consumed:  # already in memory (httpx.MockTransport, tests)
            if len(response.content) > self._max:
                raise TooLargeError(f"{url} is over the {self._max}-byte cap")
            return response.content
        inflate = _decompressor(response.headers.get("content-encoding", ""), url)
        chunks, size = [], 0
        async for raw in response.aiter_raw():
            for chunk in inflate(raw, self._max - size + 1):
                size += len(chunk)
                if size > self._max:
                    raise TooLargeError(f"{url} is over the {self._max}-byte cap "
                                        "(after decompression)")
                chunks.append(chunk)
        return b"".join(chunks)


def _host_of(url: str) -> str:
    """Return *url*'s host and non-default port ("" if none). Raises ValueError if malformed."""
    urlsplit(url).port  # noqa: B018 (raises ValueError for a malformed port)
    return host_of(url) or ""


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Return the seconds a ``Retry-After`` header asks to wait (RFC 9110 §10.2.3).

    Accepts delay-seconds and an HTTP-date; returns ``None`` for a missing or
    unreadable value, ``0`` for a date in the past.
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _decompressor(coding: str, url: str):
    """Return ``inflate(data, limit)`` yielding decoded chunks, each at most *limit* long."""
    coding = coding.strip().lower()
    if coding in ("", "identity"):
        return lambda data, limit: [data]
    if coding == "br":
        return _brotli_inflater(url)
    if coding not in ("gzip", "x-gzip", "deflate"):
        raise PermanentError(f"{url} sent Content-Encoding {coding!r}; only one of gzip, "
                             "deflate or br is accepted")
    # 47: gzip or zlib header, auto-detected; deflate is zlib-wrapped (RFC 9110 §8.4.1.2)
    engine = zlib.decompressobj(47 if coding != "deflate" else 15)

    def inflate(data: bytes, limit: int) -> list[bytes]:
        out = []
        try:
            while data:
                piece = engine.decompress(data, max(1, limit))
                out.append(piece)
                limit -= len(piece)
                if limit <= 0:
                    break
                data = engine.unconsumed_tail
        except zlib.error as exc:
            raise PermanentError(f"{url}: corrupt {coding} body ({exc})") from None
        return out

    return inflate


def _brotli_inflater(url: str):
    """Brotli (RFC 7932) with the same output limit as gzip: a bomb stops at the cap."""
    engine = brotli.Decompressor()

    def inflate(data: bytes, limit: int) -> list[bytes]:
        out = []
        try:
            piece = engine.process(data, output_buffer_limit=max(1, limit))
            out.append(piece)
            limit -= len(piece)
            while limit > 0 and not engine.can_accept_more_data() and not engine.is_finished():
                piece = engine.process(b"", output_buffer_limit=max(1, limit))
                if not piece:
                    break
                out.append(piece)
                limit -= len(piece)
        except brotli.error as exc:
            raise PermanentError(f"{url}: corrupt br body ({exc})") from None
        return out

    return inflate
