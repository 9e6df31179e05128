"""Per-host politeness shared by every crawler replica, kept in Redis.

:meth:`HostGate.slot` gives one caller at a time, across all replicas, the use of a
host, and starts consecutive requests to it at least ``max(per_host_delay,
Crawl-delay, Retry-After)`` apart.  All the state lives in Redis and every time is
Redis's own clock (``TIME`` inside Lua scripts), so replicas whose clocks differ
still agree:

* ``sokbo:host:<host>`` — hash of ``last`` (when the latest request started),
  ``crawl_delay`` (from robots.txt) and ``until`` (no request before this, after a
  429 or 503), all in milliseconds; it expires after a day without use;
* ``sokbo:host-lock:<host>`` — the holder's random token, with a TTL of
  ``lock_ttl`` seconds renewed while held, so a replica that dies frees the host
  within ``lock_ttl``; it is released only by its owner (token compared in Lua).

A host is the URL's host name, plus its port when that is not the scheme's default
(``news.example.kr``, ``127.0.0.1:8080``): http and https of one site share a slot.

Waiting sleeps until the host is due (or, while another caller holds it, for at
most ``poll`` seconds before looking again); callers in one process queue on a
local lock, so only one of them asks Redis.  Waiting is cancellable.  Throttling
follows RFC 9110 §10.2.3 (``Retry-After``) per host, not per URL: see bug case B05.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from prometheus_client import Counter, Histogram
from redis.exceptions import RedisError

from sokbo import streams
from sokbo.logs import get_logger
from sokbo.observability import REGISTRY

__all__ = [
    "HOST_SLOT_WAIT",
    "HOST_THROTTLED",
    "HostGate",
    "host_of",
    "parse_retry_after",
    "throttle_delay",
]

STATE_TTL_MS = 86_400_000  # a host's hash outlives a day without use by nothing

HOST_THROTTLED = Counter(
    "sokbo_host_throttled_total", "Hosts paused after a 429 or 503, by how the pause was "
    "chosen (retry_after, capped, default).", ["outcome"], registry=REGISTRY)
HOST_SLOT_WAIT = Histogram(
    "sokbo_host_slot_wait_seconds", "Time waited for a host's politeness slot.",
    buckets=(0.01, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600), registry=REGISTRY)

# KEYS: host hash, lock.  ARGV: token, lock ms, delay ms, poll ms, state ttl ms.
# Returns 0 when the lock was taken, else the milliseconds to wait before asking again.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local h = redis.call('HMGET', KEYS[1], 'last', 'crawl_delay', 'until')
local delay = math.max(tonumber(ARGV[3]), tonumber(h[2]) or 0)
local due = math.max((tonumber(h[1]) or 0) + delay, tonumber(h[3]) or 0)
local held = redis.call('PTTL', KEYS[2])
if held ~= -2 then
  if held < 0 then held = tonumber(ARGV[2]) end
  return math.max(due - now, math.min(held, tonumber(ARGV[4])), 1)
end
if due > now then return due - now end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
redis.call('HSET', KEYS[1], 'last', now)
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 0
"""
# KEYS: lock.  ARGV: token, lock ms.  Returns 1 if renewed (still ours).
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
# KEYS: lock.  ARGV: token.  Returns 1 if released (it was ours).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# KEYS: host hash.  ARGV: pause ms (or -1 to only read), state ttl ms.
# Returns the milliseconds left until the host may be used again (0 if now).
_THROTTLE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local old = tonumber(redis.call('HGET', KEYS[1], 'until')) or 0
local new = now + tonumber(ARGV[1])
if tonumber(ARGV[1]) >= 0 and new > old then
  redis.call('HSET', KEYS[1], 'until', new)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  old = new
end
return math.max(0, old - now)
"""

_DELAY_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def host_of(url: str) -> str | None:
    """Return the politeness key of an http(s) *url*: host, plus a non-default port.

    ``https://News.Example.kr/a`` → ``news.example.kr``; ``http://127.0.0.1:8080/`` →
    ``127.0.0.1:8080``.  None for a URL that is not http(s), has no host or is invalid.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), parts.hostname
    if scheme not in ("http", "https") or not host:
        return None
    default = 443 if scheme == "https" else 80
    return host if port in (None, default) else f"{host}:{port}"


def parse_retry_after(value: str, now: datetime) -> float | None:
    """Return the seconds a ``Retry-After`` *value* asks to wait, or None if it is invalid.

    Both forms of RFC 9110 §10.2.3 are read: delay-seconds (``"120"``; a decimal
    fraction is tolerated) and an HTTP-date in any of the three formats of RFC 9110
    §5.6.7 (``"Tue, 05 Mar 2024 05:02:00 GMT"``), taken relative to *now* (an aware
    UTC datetime; a naive one is read as UTC).  A date in the past gives 0.0.
    The result is not capped (it is ``inf`` for a number too large for a float).
    """
    value = value.strip()
    if _DELAY_SECONDS.fullmatch(value):
        return float(value)  # inf for an absurdly long value
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "GMT" in asctime format, or "-0000"
        when = when.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def throttle_delay(retry_after: str | float | None, now: datetime, *, default: float,
                   cap: float) -> tuple[float, str]:
    """Return ``(seconds, outcome)``: how long to pause a host after a 429 or 503.

    *retry_after* is the ``Retry-After`` header (see :func:`parse_retry_after`), or
    seconds already parsed, or None when the response had none.  Outcome is
    ``retry_after`` (honoured), ``capped`` (longer than *cap*, so *cap*) or
    ``default`` (absent or invalid, so *default*).
    """
    if isinstance(retry_after, str):
        seconds = parse_retry_after(retry_after, now)
    elif retry_after is not None and retry_after >= 0:  # NaN is not
        seconds = float(retry_after)
    else:
        seconds = None
    if seconds is None:
        return default, "default"
    return (cap, "capped") if seconds > cap else (seconds, "retry_after")


@dataclass
class _Local:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class HostGate:
    """Give callers one host at a time, spaced and paused as the host asks, across replicas.

    Args:
        redis: the client holding the hosts' state (shared by all replicas).
        per_host_delay: seconds between the starts of two requests to one host.
        lock_ttl: seconds a replica's hold on a host lasts unless renewed; the
            holder renews it every ``lock_ttl / 3`` seconds.
        default_backoff: seconds a host is paused after a 429/503 without a
            usable ``Retry-After``.
        max_backoff: the longest pause a ``Retry-After`` can impose, in seconds.
        max_crawl_delay: the longest robots.txt ``Crawl-delay`` honoured, in seconds.
        poll: the longest sleep, in seconds, before looking again at a host that
            another caller holds.
    """

    def __init__(self, redis: aioredis.Redis, per_host_delay: float = 1.0, *,
                 lock_ttl: float = 30.0, default_backoff: float = 60.0,
                 max_backoff: float = 3600.0, max_crawl_delay: float = 300.0,
                 poll: float = 0.1) -> None:
        self._redis = redis
        self._delay_ms = int(per_host_delay * 1000)
        self._lock_ttl = lock_ttl
        self._default_backoff = default_backoff
        self._max_backoff = max_backoff
        self._max_crawl_delay = max_crawl_delay
        self._poll_ms = max(1, int(poll * 1000))
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)
        self._throttle = redis.register_script(_THROTTLE)
        self._local: dict[str, _Local] = {}

    @contextlib.asynccontextmanager
    async def slot(self, url: str) -> AsyncIterator[None]:
        """Wait for *url*'s host, then hold it for the ``async with`` body.

        The body starts no sooner than ``max(per_host_delay, Crawl-delay)`` seconds
        after the previous request to the host started, from any replica, nor before
        a pause set by :meth:`throttle` ends.  A URL with no http(s) host is not
        gated (the fetcher rejects it).  Never call ``RobotsCache.allowed`` inside the
        body for the same host: the robots.txt fetch may need this slot.

        Raises:
            redis.exceptions.RedisError: Redis is unreachable.
        """
        host = host_of(url)
        if host is None:
            yield
            return
        local = self._local.setdefault(host, _Local())
        local.users += 1
        started = time.monotonic()
        try:
            async with local.lock:
                token = await self._take(host)
                HOST_SLOT_WAIT.observe(time.monotonic() - started)
                owner = asyncio.current_task()
                renewer = asyncio.create_task(self._keep(host, token, owner))
                try:
                    yield
                finally:
                    renewer.cancel()
                    await asyncio.shield(
                        self._release(keys=[streams.key("host-lock", host)], args=[token]))
        finally:
            local.users -= 1
            if not local.users:
                del self._local[host]

    async def throttle(self, url: str, retry_after: str | float | None) -> float:
        """Pause *url*'s host after a 429 or 503, for every replica; return the pause (s).

        *retry_after* is the response's ``Retry-After`` header, or seconds, or None.
        The pause is ``Retry-After`` (RFC 9110 §10.2.3) capped at ``max_backoff``, or
        ``default_backoff`` when absent or invalid.  A pause already longer is kept.
        Returns the seconds left until the host may be used; 0.0 for a URL with no host.
        """
        host = host_of(url)
        if host is None:
            return 0.0
        seconds, outcome = throttle_delay(retry_after, datetime.now(UTC),
                                          default=self._default_backoff,
                                          cap=self._max_backoff)
        HOST_THROTTLED.labels(outcome=outcome).inc()
        left = await self._throttle(keys=[streams.key("host", host)],
                                    args=[int(seconds * 1000), STATE_TTL_MS]) / 1000
        get_logger(host=host).info("host_throttled", retry_after=retry_after,
                                   outcome=outcome, pause_s=seconds, paused_for_s=left)
        return left

    async def throttled_for(self, url: str) -> float:
        """Return the seconds left of *url*'s host's pause (0.0 if it is not paused).

        A poller can skip the host's URLs until then instead of waiting in :meth:`slot`.
        """
        host = host_of(url)
        if host is None:
            return 0.0
        return await self._throttle(keys=[streams.key("host", host)],
                                    args=[-1, STATE_TTL_MS]) / 1000

    async def set_crawl_delay(self, url: str, seconds: float | None) -> None:
        """Space requests to *url*'s host by robots.txt's ``Crawl-delay`` *seconds*.

        None (no ``Crawl-delay``) removes a previous one.  Values over
        ``max_crawl_delay`` are capped; the larger of this and ``per_host_delay`` applies.
        """
        host = host_of(url)
        if host is None:
            return
        key = streams.key("host", host)
        async with self._redis.pipeline(transaction=True) as pipe:
            if seconds is None or not math.isfinite(seconds) or seconds <= 0:
                pipe.hdel(key, "crawl_delay")
            else:
                pipe.hset(key, "crawl_delay", int(min(seconds, self._max_crawl_delay) * 1000))
                pipe.pexpire(key, STATE_TTL_MS)
            await pipe.execute()

    async def _take(self, host: str) -> str:
        """Wait until *host* is free and due, take its lock and return the token."""
        token = secrets.token_hex(16)
        keys = [streams.key("host", host), streams.key("host-lock", host)]
        args = [token, int(self._lock_ttl * 1000), self._delay_ms, self._poll_ms, STATE_TTL_MS]
        while wait_ms := await self._acquire(keys=keys, args=args):
            await asyncio.sleep(wait_ms / 1000)
        return token

    async def _keep(self, host: str, token: str, owner: asyncio.Task | None) -> None:
        """Renew *host*'s lock while *owner* runs; stop if it ended without releasing."""
        key = streams.key("host-lock", host)
        log = get_logger(host=host)
        while True:
            await asyncio.sleep(self._lock_ttl / 3)
            if owner is not None and owner.done():
                log.warning("host_lock_abandoned")  # left to expire after lock_ttl
                return
            try:
                if not await self._renew(keys=[key], args=[token, int(self._lock_ttl * 1000)]):
                    log.warning("host_lock_lost", lock_ttl_s=self._lock_ttl)
                    return
            except RedisError as exc:  # try again next round; the TTL covers us till then
                log.warning("host_lock_renew_failed", error=str(exc))
