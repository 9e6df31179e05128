"""Consumer-group upkeep on Redis Streams: what FastStream's stream subscriber leaves to us.

FastStream reads a group with ``XREADGROUP … >`` and, in a second subscriber, claims
entries idle for ``min_idle_time`` with ``XAUTOCLAIM`` (see :mod:`sokbo.context`).
Everything else a group needs to survive crashes is here, in plain Redis commands
(Redis 7.0 or later; atomic steps are Lua scripts):

* :func:`keep_claimed` — while a handler works on an entry, its idle time is reset
  (``XCLAIM … JUSTID``, only if the entry is still this consumer's) every third of
  ``claim_idle``, so another replica's claimer takes entries of dead consumers only,
  never a slow but live one's;
* :func:`trim_and_audit` — ``XTRIM MAXLEN ~`` and, in the same script,
  ``XAUTOCLAIM … JUSTID`` with a minimum idle time no entry reaches: it claims
  nothing, so live entries are neither stolen nor delayed, but Redis (7.0+) drops
  from the pending entries list (PEL) every id whose entry no longer exists and
  returns it.  FastStream's claimer runs the same command and ignores that part of
  the reply, so an entry trimmed while pending would vanish without a word; run in
  one script with the trim, every pending entry our trimming removes is seen, logged
  and counted.  Entries someone else deletes (an operator's ``XTRIM``, ``XDEL``) are
  seen by the next audit, unless FastStream's claimer passed over them first;
* :func:`group_states` — ``XINFO GROUPS``: each group's pending count and lag;
* :func:`forget_idle_consumers` — ``XGROUP DELCONSUMER`` of consumers with no pending
  entries that have not read for ``consumer_expiry``, checked and deleted in one
  script, so a consumer with pending entries is never deleted (B23);
* :func:`own_pending` — ``XREADGROUP … 0``: a consumer's own pending entries, which a
  restarted replica with a stable name resumes at once;
* :func:`hand_back` — ``XCLAIM … IDLE``: on shutdown, make this consumer's pending
  entries claimable by another replica now rather than after ``claim_idle``;
* :func:`upkeep` — the loop every service runs: trim and audit, lag metrics and
  warnings, idle consumers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from sokbo.logs import get_logger
from sokbo.observability import (
    CONSUMER_GROUP_LAG,
    CONSUMER_GROUP_PENDING,
    CONSUMERS_REMOVED,
    PENDING_ENTRIES_LOST,
    STREAM_LENGTH,
)

__all__ = [
    "GroupState",
    "forget_idle_consumers",
    "group_states",
    "hand_back",
    "keep_claimed",
    "lost_while_pending",
    "own_pending",
    "raise_if_cancelled",
    "trim_and_audit",
    "trim_and_report",
    "upkeep",
]

#: a minimum idle time (ms, about 31,700 years) that no pending entry reaches
NEVER_IDLE_MS = 10**15
#: consumer name the audit passes to XAUTOCLAIM; it never claims, so it is never created
AUDITOR = "sokbo-audit"
#: a group whose lag passes this share of the stream cap is warned about
LAG_WARNING = 0.8
#: at most one lag warning per (stream, group) and process in this many seconds
WARN_EVERY = 300.0

#: KEYS[1] stream; ARGV group, consumer, entry id. Reset the idle time if still ours.
_KEEP = """
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if p[1] and p[1][2] == ARGV[2] then
  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
  return 1
end
return 0
"""

#: KEYS[1] stream; ARGV maxlen, min idle (ms), auditor. Returns {trimmed, {group, id, …}}.
_TRIM_AND_AUDIT = """
local trimmed = redis.call('XTRIM', KEYS[1], 'MAXLEN', '~', ARGV[1])
local lost = {}
local groups = redis.pcall('XINFO', 'GROUPS', KEYS[1])
if groups.err then return {trimmed, lost} end
for _, info in ipairs(groups) do
  local f = {}
  for i = 1, #info, 2 do f[info[i]] = info[i + 1] end
  local cursor, rounds = '0-0', 0
  repeat
    local reply = redis.pcall('XAUTOCLAIM', KEYS[1], f['name'], ARGV[3], ARGV[2], cursor,
                              'COUNT', 1000, 'JUSTID')
    if reply.err then break end
    cursor, rounds = reply[1], rounds + 1
    for _, id in ipairs(reply[3]) do
      table.insert(lost, f['name'])
      table.insert(lost, id)
    end
  until cursor == '0-0' or rounds >= 100
end
return {trimmed, lost}
"""

#: KEYS[1] stream; ARGV group, min idle (ms). Delete idle consumers with nothing pending.
_FORGET = """
local removed = {}
local consumers = redis.pcall('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
if consumers.err then return removed end
for _, info in ipairs(consumers) do
  local f = {}
  for i = 1, #info, 2 do f[info[i]] = info[i + 1] end
  if f['pending'] == 0 and f['idle'] >= tonumber(ARGV[2]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], f['name'])
    table.insert(removed, f['name'])
  end
end
return removed
"""


def raise_if_cancelled() -> None:
    """Re-raise a cancellation that a library turned into another error.

    A Redis command cancelled mid-flight can surface as a timeout or connection error
    (redis-py's read timeout wraps it); a loop that logs those and goes on would then
    never stop.  Call it in such ``except`` blocks.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@contextlib.asynccontextmanager
async def keep_claimed(client: aioredis.Redis, stream: str, group: str, consumer: str,
                       entry_id: str, *, every: float) -> AsyncIterator[None]:
    """Keep *entry_id* from looking abandoned while the body of the ``async with`` runs.

    Every *every* seconds (a third of ``claim_idle``) the entry's idle time is reset
    with ``XCLAIM stream group consumer 0 id JUSTID`` (which does not count a
    delivery), but only while ``XPENDING`` shows it is still *consumer*'s; Redis
    errors are ignored (the entry is then claimed as if this replica had died).
    """
    script = client.register_script(_KEEP)

    async def beat() -> None:
        while True:
            await asyncio.sleep(every)
            try:
                if not await script(keys=[stream], args=[group, consumer, entry_id]):
                    return  # acked, or claimed by another replica
            except (RedisError, OSError):
                raise_if_cancelled()

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()


async def trim_and_audit(client: aioredis.Redis, stream: str, maxlen: int
                         ) -> tuple[int, list[tuple[str, str]]]:
    """Trim *stream* to about *maxlen* entries and find pending entries that no longer exist.

    ``XTRIM stream MAXLEN ~ maxlen``, then for every group ``XAUTOCLAIM stream group
    sokbo-audit 10^15 … COUNT 1000 JUSTID`` until its cursor returns to ``0-0``, in
    one Lua script (so no claimer sees a trimmed entry first).

    Returns:
        (entries trimmed, [(group, entry id), …] of pending entries found deleted,
        now removed from their group's PEL: each was lost before being handled).

    Raises:
        redis.exceptions.RedisError: Redis failed.
    """
    script = client.register_script(_TRIM_AND_AUDIT)
    trimmed, lost = await script(keys=[stream], args=[maxlen, NEVER_IDLE_MS, AUDITOR])
    pairs = [(_text(lost[i]), _text(lost[i + 1])) for i in range(0, len(lost), 2)]
    return int(trimmed), pairs


def lost_while_pending(stream: str, group: str, entry_ids: list[str]) -> None:
    """Log and count pending entries of *group* that were deleted before being acked."""
    if not entry_ids:
        return
    PENDING_ENTRIES_LOST.labels(stream=stream, group=group).inc(len(entry_ids))
    get_logger().error("pending_entries_lost", stream=stream, group=group,
                       count=len(entry_ids), entry_ids=entry_ids[:20],
                       reason="deleted (trimmed by MAXLEN or XDEL) before being acked; "
                       "raise streams.maxlen or fix the slow consumer")


@dataclass(frozen=True)
class GroupState:
    """One consumer group of a stream: ``pending`` entries delivered and not acked,
    ``lag`` entries not yet delivered (``None`` when Redis cannot tell)."""

    stream: str
    group: str
    consumers: int
    pending: int
    lag: int | None


async def group_states(client: aioredis.Redis, stream: str) -> tuple[int, list[GroupState]]:
    """Return (*stream*'s length, its groups) from ``XINFO STREAM`` and ``XINFO GROUPS``.

    ``lag`` is Redis's own (7.0+); when Redis reports it unknown (entries deleted
    after the group's last read), ``entries-added - entries-read``, which counts
    deleted entries too.  A missing stream gives ``(0, [])``.
    """
    try:
        info = await client.xinfo_stream(stream)
        groups = await client.xinfo_groups(stream)
    except ResponseError as exc:
        if "no such key" in str(exc).lower():
            return 0, []
        raise
    added = info.get("entries-added")
    states = []
    for group in groups:
        lag, read = group.get("lag"), group.get("entries-read")
        if lag is None and added is not None and read is not None:
            lag = max(int(added) - int(read), 0)
        states.append(GroupState(stream=stream, group=_text(group["name"]),
                                 consumers=int(group["consumers"]),
                                 pending=int(group["pending"]),
                                 lag=None if lag is None else int(lag)))
    return int(info["length"]), states


async def forget_idle_consumers(client: aioredis.Redis, stream: str, group: str,
                                idle: float) -> list[str]:
    """Delete *group*'s consumers that have no pending entries and have been idle *idle* s.

    Checked and deleted in one Lua script (``XINFO CONSUMERS``, ``XGROUP
    DELCONSUMER``), so a consumer that took an entry meanwhile is kept: deleting a
    consumer drops its pending entries (B23).  Redis 7.0 resets a consumer's idle
    time only when it is given entries, so a live replica of a quiet stream can be
    removed too: harmless, it has nothing pending and its next read recreates it
    (checked: a blocked XREADGROUP still gets its entry).  Returns the names deleted.
    """
    script = client.register_script(_FORGET)
    removed = await script(keys=[stream], args=[group, int(idle * 1000)])
    return [_text(name) for name in removed]


async def own_pending(client: aioredis.Redis, stream: str, group: str, consumer: str, *,
                      after: str = "0", count: int = 10) -> list[tuple[str, dict | None]]:
    """Return up to *count* of *consumer*'s pending entries with ids above *after*.

    ``XREADGROUP GROUP group consumer COUNT count STREAMS stream after``: each entry
    counts as delivered again.  An entry deleted while pending comes back as
    ``(id, None)``.
    """
    reply = await client.xreadgroup(group, consumer, {stream: after}, count=count)
    if not reply:
        return []
    return [(_text(entry_id), fields or None) for entry_id, fields in reply[0][1]]


async def hand_back(client: aioredis.Redis, stream: str, group: str, consumer: str,
                    idle: float) -> int:
    """Make *consumer*'s pending entries claimable now; return how many there were.

    ``XPENDING stream group - + 1000 consumer``, then ``XCLAIM … IDLE idle·1000
    JUSTID`` to the same consumer: the entries keep their owner and delivery count,
    but look idle for *idle* seconds (``claim_idle``), so a live replica's claimer
    takes them on its next poll.
    """
    pending = await client.xpending_range(stream, group, min="-", max="+", count=1000,
                                          consumername=consumer)
    ids = [entry["message_id"] for entry in pending]
    if ids:
        await client.xclaim(stream, group, consumer, min_idle_time=0, message_ids=ids,
                            idle=int(idle * 1000), justid=True)
    return len(ids)


async def upkeep(client: aioredis.Redis, names: Iterable[str], *, maxlen: int,
                 consumer_expiry: float, period: float = 10.0) -> None:
    """Every *period* seconds, for each stream: trim and audit, export lag, forget consumers.

    Runs in every service; each step is atomic in Redis, so replicas doing it at once
    do no harm.  Sets ``sokbo_stream_length``, ``sokbo_consumer_group_lag`` and
    ``sokbo_consumer_group_pending``; warns ``consumer_group_lag_near_cap`` when a
    group's lag passes 80 % of *maxlen* (at most every 5 minutes); never raises.
    """
    log = get_logger()
    warned: dict[tuple[str, str], float] = {}
    while True:
        for stream in names:
            try:
                await _upkeep_stream(client, stream, maxlen, consumer_expiry, warned)
            except (RedisError, OSError) as exc:
                raise_if_cancelled()
                log.warning("stream_upkeep_failed", stream=stream, error=str(exc))
        await asyncio.sleep(period)


async def trim_and_report(client: aioredis.Redis, stream: str, maxlen: int) -> int:
    """Run :func:`trim_and_audit` and log and count what it found; return the entries lost.

    Also called once before a service's subscribers start, so that pending entries
    deleted while it was down are seen before FastStream's claimer drops them.
    """
    _, lost = await trim_and_audit(client, stream, maxlen)
    for group in sorted({group for group, _ in lost}):
        lost_while_pending(stream, group, [entry for g, entry in lost if g == group])
    return len(lost)


async def _upkeep_stream(client: aioredis.Redis, stream: str, maxlen: int,
                         consumer_expiry: float, warned: dict[tuple[str, str], float]) -> None:
    log = get_logger(stream=stream)
    await trim_and_report(client, stream, maxlen)
    length, states = await group_states(client, stream)
    STREAM_LENGTH.labels(stream=stream).set(length)
    for state in states:
        CONSUMER_GROUP_PENDING.labels(stream=stream, group=state.group).set(state.pending)
        if state.lag is not None:
            CONSUMER_GROUP_LAG.labels(stream=stream, group=state.group).set(state.lag)
            key, now = (stream, state.group), time.monotonic()
            if state.lag >= LAG_WARNING * maxlen and now - warned.get(key, -WARN_EVERY) >= \
                    WARN_EVERY:
                warned[key] = now
                log.warning("consumer_group_lag_near_cap", group=state.group, lag=state.lag,
                            pending=state.pending, maxlen=maxlen,
                            detail="entries past the cap are trimmed before this group "
                            "reads them; start more replicas or raise streams.maxlen")
        removed = await forget_idle_consumers(client, stream, state.group, consumer_expiry)
        if removed:
            CONSUMERS_REMOVED.labels(stream=stream, group=state.group).inc(len(removed))
            log.info("idle_consumers_removed", group=state.group, consumers=removed,
                     idle_s=consumer_expiry)
