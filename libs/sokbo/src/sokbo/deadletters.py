"""The dead-letter stream ``sokbo.dead-letter``: written by every stage, read by operators.

An entry holds what a stage gave up on (:class:`~sokbo.messages.DeadLettered`: the
stage, the stream it came from, the error, the delivery count and the original
message) as plain fields — ``stage``, ``stream``, ``error`` and ``data`` (the JSON of
the whole record) — so ``redis-cli XRANGE sokbo.dead-letter - +`` is readable.  It
is not consumed by any service: ``sokbo dead-letter list|show|replay|purge`` is how
an operator looks at and re-drives entries.

Replaying puts the original back where it failed:

* a page the crawler gave up on (``stage: crawler``) goes back into its source's
  pending links (and out of its seen-set and attempt counter), so the next poll
  fetches it again whether or not the source's document changed;
* a message of ``sokbo.pages``, ``sokbo.articles`` or ``sokbo.alerts`` is published to
  its stream again (through FastStream, as the services publish);
* an alert a channel refused (``channel_id`` set) goes back for that channel only,
  with the channel's ``dead-lettered`` delivery mark cleared.

A replayed entry is deleted from the dead-letter stream.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

import orjson
import redis.asyncio as aioredis

from sokbo import streams
from sokbo.messages import DeadLettered

__all__ = ["DeadLetter", "purge", "read", "replay", "write"]

#: ``publish(body, stream)``: how replay puts a message back on a service stream
Publish = Callable[[bytes, str], Awaitable[object]]


class DeadLetter:
    """One entry of the dead-letter stream: its stream id and the record."""

    __slots__ = ("entry_id", "record")

    def __init__(self, entry_id: str, record: DeadLettered) -> None:
        self.entry_id = entry_id
        self.record = record

    def summary(self) -> dict[str, object]:
        """Return the fields ``sokbo dead-letter list`` prints (no original body)."""
        original = self.record.original or {}
        return {"id": self.entry_id, "stage": self.record.stage, "stream": self.record.stream,
                "channel_id": self.record.channel_id, "deliveries": self.record.deliveries,
                "failed_at": self.record.failed_at.isoformat(),
                "error": self.record.error[:300],
                "about": {k: original[k] for k in ("alert_id", "article_id", "source_id",
                                                   "url", "title") if k in original}}


async def write(redis: aioredis.Redis, record: DeadLettered, *, maxlen: int) -> str:
    """Append *record* to ``sokbo.dead-letter`` (``MAXLEN ~`` *maxlen*); return its id."""
    entry_id = await redis.xadd(streams.DEAD_LETTER, {
        "stage": record.stage, "stream": record.stream, "error": record.error[:2000],
        "data": record.model_dump_json()}, maxlen=maxlen, approximate=True)
    return entry_id.decode() if isinstance(entry_id, bytes) else entry_id


def _parse(entry_id: bytes | str, fields: dict[bytes, bytes]) -> DeadLetter | None:
    data = fields.get(b"data")
    if data is None:  # not written by sokbo (or an older format): skip, don't crash
        return None
    key = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return DeadLetter(key, DeadLettered.model_validate_json(data))


async def read(redis: aioredis.Redis, *, entry_id: str | None = None, count: int = 100,
               stage: str | None = None, since: datetime | None = None) -> list[DeadLetter]:
    """Return dead letters, oldest first: one by *entry_id*, or up to *count* of *stage*."""
    if entry_id is not None:
        found = await redis.xrange(streams.DEAD_LETTER, entry_id, entry_id, count=1)
    else:
        start = f"{int(since.timestamp() * 1000)}-0" if since else "-"
        found = await redis.xrange(streams.DEAD_LETTER, start, "+")
    letters = [letter for raw_id, fields in found if (letter := _parse(raw_id, fields))]
    if stage:
        letters = [letter for letter in letters if letter.record.stage == stage]
    return letters[:count]


async def replay(redis: aioredis.Redis, letter: DeadLetter, publish: Publish) -> str:
    """Put *letter*'s original back where it failed (see the module docstring).

    Returns:
        what was done, for the operator.

    Raises:
        ValueError: the entry has no original to replay.
    """
    record, original = letter.record, letter.record.original
    if not original or "raw" in original and len(original) == 1:
        raise ValueError(f"dead letter {letter.entry_id} holds no readable original "
                         "(it was not valid JSON); nothing to replay")
    if record.stage == "crawler" and "url" in original and "source_id" in original:
        source, url = str(original["source_id"]), str(original["url"])
        await redis.zrem(streams.key("seen", source), url)
        await redis.hdel(streams.key("attempts", source), url)
        await redis.hset(streams.key("pending-links", source), url,
                         orjson.dumps({"title": None, "published": None}))
        done = f"{url} will be fetched again on the next poll of source {source}"
    elif record.channel_id and record.stream == streams.ALERTS:
        alert = dict(original, channels=[record.channel_id])
        await redis.delete(streams.key("delivered", str(original.get("alert_id")),
                                       record.channel_id))
        await publish(orjson.dumps(alert), streams.ALERTS)
        done = f"alert {original.get('alert_id')} sent back for channel {record.channel_id}"
    elif record.stream in streams.ALL and record.stream != streams.DEAD_LETTER:
        await publish(orjson.dumps(original), record.stream)
        done = f"published again to {record.stream}"
    else:
        raise ValueError(f"dead letter {letter.entry_id} came from {record.stream!r}, "
                         "which sokbo does not consume; nothing to replay")
    await redis.xdel(streams.DEAD_LETTER, letter.entry_id)
    return done


async def purge(redis: aioredis.Redis, *, entry_id: str | None = None,
                before: datetime | None = None) -> int:
    """Delete one dead letter, those older than *before*, or all; return how many."""
    if entry_id is not None:
        return int(await redis.xdel(streams.DEAD_LETTER, entry_id))
    if before is None:
        count = int(await redis.xlen(streams.DEAD_LETTER))
        await redis.delete(streams.DEAD_LETTER)
        return count
    old = await redis.xrange(streams.DEAD_LETTER, "-", f"{int(before.timestamp() * 1000)}-0")
    return int(await redis.xdel(streams.DEAD_LETTER, *[i for i, _ in old])) if old else 0
