"""When each source is polled next, and how its polls went — kept in Redis.

All crawler replicas share one schedule, a sorted set ``sokbo:schedule`` of source
ids scored by the Unix time they are next due.  A replica *claims* a due source with
one Lua script that reads the earliest due member and pushes its score a lease into
the future, so two replicas never poll one source at once, and a source whose
replica died becomes due again when the lease runs out.  After a poll the replica
sets the next due time: ``interval`` after a poll that found something new, twice
the last period (at most ``max_interval``) after one that did not (adaptive polling).

Per source, the hash ``sokbo:source:<id>`` keeps what ``sokbo sources`` prints:
``last_success``, ``last_error``, ``last_error_at``, ``consecutive_failures``,
``items_seen``, ``last_new_at``, ``period`` (the current poll period in seconds) and,
after a permanent redirect, ``effective_url`` for ``configured_url``.  Times are
Unix seconds.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import redis.asyncio as aioredis

from sokbo import streams
from sokbo.config import Source

__all__ = ["SCHEDULE", "Scheduler", "SourceStatus", "read_status", "status_key"]

SCHEDULE = streams.key("schedule")

#: pop the earliest due source (score ≤ now) and lease it until now + lease
_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 1)
if #due == 0 then return false end
redis.call('ZADD', KEYS[1], 'XX', ARGV[2], due[1])
return due[1]
"""


def status_key(source_id: str) -> str:
    """Return the Redis hash holding *source_id*'s poll status."""
    return streams.key("source", source_id)


@dataclass(frozen=True)
class SourceStatus:
    """One source's poll history, as ``sokbo sources`` shows it (times: Unix seconds)."""

    source_id: str
    kind: str
    enabled: bool
    last_success: float | None
    last_error: str | None
    last_error_at: float | None
    consecutive_failures: int
    items_seen: int
    last_new_at: float | None
    period: float | None
    next_poll: float | None


class Scheduler:
    """The shared poll schedule (see the module docstring)."""

    def __init__(self, redis: aioredis.Redis, *, lease: float = 60.0) -> None:
        """*lease*: seconds a claimed source stays with its replica without renewal (the
        crawler passes ``delivery.claim_idle``: a dead replica's sources come back as
        fast as its stream entries do); :meth:`extend` renews it every third of that."""
        self._redis = redis
        self._lease = lease
        self._claim = redis.register_script(_CLAIM)

    async def sync(self, sources: Iterable[Source]) -> None:
        """Make the schedule hold exactly the enabled *sources*; new ones are due now.

        A source already scheduled keeps its due time (a restart does not re-poll
        everything at once); disabled and removed sources leave the schedule.
        """
        enabled = {s.id for s in sources if s.enabled}
        known = {member.decode() for member in await self._redis.zrange(SCHEDULE, 0, -1)}
        now = time.time()
        if enabled - known:
            await self._redis.zadd(SCHEDULE, dict.fromkeys(enabled - known, now), nx=True)
        if known - enabled:
            await self._redis.zrem(SCHEDULE, *(known - enabled))

    async def claim(self) -> str | None:
        """Claim the earliest due source for this replica; ``None`` if none is due."""
        now = time.time()
        found = await self._claim(keys=[SCHEDULE], args=[now, now + self._lease])
        return found.decode() if isinstance(found, bytes) else found

    @property
    def lease(self) -> float:
        """Seconds a claim lasts without renewal."""
        return self._lease

    async def extend(self, source_id: str) -> None:
        """Push the lease of a source still being polled (long polls) another lease."""
        await self._redis.zadd(SCHEDULE, {source_id: time.time() + self._lease}, xx=True)

    async def seconds_until_due(self) -> float | None:
        """Return the time until the earliest source is due (≤ 0: due), ``None`` if empty."""
        first = await self._redis.zrange(SCHEDULE, 0, 0, withscores=True)
        return first[0][1] - time.time() if first else None

    async def done(self, source: Source, *, new_items: int | None,
                   wait: float | None = None) -> float:
        """Schedule *source*'s next poll after one that found *new_items* (``None``: failed).

        Returns:
            the seconds until the next poll: ``interval`` after news, the last period
            doubled (capped at ``max_interval``) after none, the last period after a
            failure, or *wait* (a server's ``Retry-After``) when longer.
        """
        key = status_key(source.id)
        raw = await self._redis.hget(key, "period")
        period = float(raw) if raw else source.interval
        if new_items:
            period = source.interval
        elif new_items == 0:
            period = min(max(period * 2, source.interval), source.longest_interval)
        else:
            period = min(max(period, source.interval), source.longest_interval)
        delay = max(period, wait or 0.0)
        await self._redis.hset(key, "period", period)
        await self._redis.zadd(SCHEDULE, {source.id: time.time() + delay}, xx=True)
        return delay


async def read_status(redis: aioredis.Redis, sources: Iterable[Source]) -> list[SourceStatus]:
    """Return the status of each of *sources* (in the given order) from Redis."""
    out = []
    for source in sources:
        fields = {k.decode(): v.decode() for k, v in (await redis.hgetall(
            status_key(source.id))).items()}
        due = await redis.zscore(SCHEDULE, source.id)

        def number(name: str, fields: dict[str, str] = fields) -> float | None:
            return float(fields[name]) if fields.get(name) else None

        out.append(SourceStatus(
            source_id=source.id, kind=source.kind, enabled=source.enabled,
            last_success=number("last_success"), last_error=fields.get("last_error"),
            last_error_at=number("last_error_at"),
            consecutive_failures=int(fields.get("consecutive_failures") or 0),
            items_seen=int(fields.get("items_seen") or 0), last_new_at=number("last_new_at"),
            period=number("period"), next_poll=due))
    return out


def render_status(statuses: list[SourceStatus], now: float) -> str:
    """Return a plain-text table of *statuses* for people (times in KST, ages in words)."""
    from datetime import datetime, timedelta, timezone

    kst = timezone(timedelta(hours=9))

    def when(t: float | None) -> str:
        if t is None:
            return "never"
        stamp = datetime.fromtimestamp(t, kst).strftime("%m-%d %H:%M:%S")
        return f"{stamp} ({_age(now - t)} ago)"

    def next_poll(t: float | None, enabled: bool) -> str:
        if not enabled:
            return "disabled"
        if t is None:
            return "not scheduled (no crawler has run with this config)"
        return "due now" if t <= now else f"in {_age(t - now)}"

    rows = [("SOURCE", "KIND", "LAST SUCCESS", "FAILURES", "ITEMS", "PERIOD", "NEXT POLL",
             "LAST ERROR")]
    for s in statuses:
        error = ""
        if s.last_error and (s.last_success is None or (s.last_error_at or 0) > s.last_success):
            error = f"{when(s.last_error_at)}: {s.last_error}"[:120]
        rows.append((s.source_id, s.kind, when(s.last_success), str(s.consecutive_failures),
                     str(s.items_seen), _age(s.period) if s.period else "-",
                     next_poll(s.next_poll, s.enabled), error))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths,
                                                                         strict=False))
                     + "  " + row[-1] for row in rows)


def _age(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"
