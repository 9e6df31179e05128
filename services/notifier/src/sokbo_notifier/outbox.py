"""Each Slack channel's outbox: a queue of alerts in Redis, drained by one sender at a time.

1. The ``sokbo.alerts`` handler calls :meth:`SlackOutbox.put`: one Lua script sets the
   delivery mark ``sokbo:delivered:<alert_id>:<channel_id>`` to ``queued:slack`` and
   adds the alert to the channel's queue, unless the mark exists (queued, sent or
   dead-lettered: a duplicate, B15).  The handler returns, and the stream entry is
   acked, only after that; so an alert is durably queued before its entry is acked.
2. :class:`SlackSender` (:mod:`sokbo_notifier.sender`) drains the queue while it holds
   the channel's lease, one message per token of the channel's bucket.
3. After Slack's 200, and before anything else, :meth:`SlackOutbox.done` sets each
   posted alert's mark to ``sent:<UTC time>`` and removes the alerts from the queue,
   in one MULTI/EXEC transaction.

Keys (``<c>`` is the channel id): ``sokbo:slack:queue:<c>`` (sorted set of alert ids,
scored by Redis time in µs: oldest first), ``sokbo:slack:alerts:<c>`` (hash: alert id →
:class:`~sokbo.messages.AlertRaised` JSON), ``sokbo:slack:channels`` (set of channel ids
that have had a queue) and ``sokbo:slack:failures:<c>`` (consecutive failed posts).
"""

from __future__ import annotations

import redis.asyncio as aioredis

from sokbo import streams
from sokbo.messages import AlertRaised

__all__ = ["DELIVERED_TTL", "SlackOutbox"]

#: how long a delivery mark is kept, seconds (30 days)
DELIVERED_TTL = 30 * 86400

_PUT = """
local state = redis.call('get', KEYS[1])
if state then return state end
local t = redis.call('time')
local score = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('set', KEYS[1], 'queued:slack', 'EX', ARGV[4])
redis.call('hset', KEYS[3], ARGV[1], ARGV[2])
redis.call('zadd', KEYS[2], 'NX', score, ARGV[1])
redis.call('sadd', KEYS[4], ARGV[3])
return false
"""


def mark_key(alert_id: str, channel_id: str) -> str:
    """Return ``sokbo:delivered:<alert_id>:<channel_id>``, the once-per-(alert, channel) mark."""
    return streams.key("delivered", alert_id, channel_id)


class SlackOutbox:
    """The queues of alerts waiting for Slack channels, in Redis."""

    def __init__(self, redis: aioredis.Redis, *, mark_ttl: int = DELIVERED_TTL) -> None:
        self.redis = redis
        self.mark_ttl = mark_ttl
        self._put = redis.register_script(_PUT)

    @staticmethod
    def queue_key(channel_id: str) -> str:
        return streams.key("slack", "queue", channel_id)

    @staticmethod
    def alerts_key(channel_id: str) -> str:
        return streams.key("slack", "alerts", channel_id)

    @staticmethod
    def failures_key(channel_id: str) -> str:
        return streams.key("slack", "failures", channel_id)

    async def put(self, channel_id: str, alert: AlertRaised) -> str:
        """Queue *alert* for *channel_id* unless its delivery mark exists.

        Returns:
            ``"queued"``; ``"duplicate"`` when the alert is already queued, sent or
            dead-lettered for this channel; ``"in_flight"`` when an older notifier
            holds the mark as an in-flight lease (retry later).
        """
        keys = [mark_key(alert.alert_id, channel_id), self.queue_key(channel_id),
                self.alerts_key(channel_id), streams.key("slack", "channels")]
        state = await self._put(keys=keys, args=[alert.alert_id, alert.model_dump_json(),
                                                 channel_id, self.mark_ttl])
        if state is None:
            return "queued"
        text = state.decode() if isinstance(state, bytes) else str(state)
        return "in_flight" if text.startswith("inflight:") else "duplicate"

    async def size(self, channel_id: str) -> int:
        """Return how many alerts wait for *channel_id*."""
        return int(await self.redis.zcard(self.queue_key(channel_id)))

    async def head(self, channel_id: str, limit: int) -> tuple[list[tuple[str, bytes | None]],
                                                            int]:
        """Return the oldest *limit* entries ``(alert_id, JSON or None)`` and the queue size."""
        ids, total = await self.peek(channel_id, limit)
        return await self.entries(channel_id, ids), total

    async def peek(self, channel_id: str, limit: int) -> tuple[list[str], int]:
        """Return the ids of the oldest *limit* alerts and the queue size (one round trip)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrange(self.queue_key(channel_id), 0, limit - 1)
            pipe.zcard(self.queue_key(channel_id))
            raw_ids, total = await pipe.execute()
        return [i.decode() if isinstance(i, bytes) else str(i) for i in raw_ids], int(total)

    async def entries(self, channel_id: str, alert_ids: list[str]
                      ) -> list[tuple[str, bytes | None]]:
        """Return ``(alert_id, JSON or None)`` of queued *alert_ids* (None: gone meanwhile)."""
        if not alert_ids:
            return []
        bodies = await self.redis.hmget(self.alerts_key(channel_id), alert_ids)
        return list(zip(alert_ids, bodies, strict=True))

    async def done(self, channel_id: str, alert_ids: list[str], state: str) -> None:
        """Set the alerts' marks to *state*, then remove them from the queue: one transaction.

        *state* is ``sent:<UTC time>`` after Slack's 200 (which also clears the
        channel's failure count) or ``dead-lettered``.
        """
        if not alert_ids:
            return
        async with self.redis.pipeline(transaction=True) as pipe:
            for alert_id in alert_ids:
                pipe.set(mark_key(alert_id, channel_id), state, ex=self.mark_ttl)
            pipe.zrem(self.queue_key(channel_id), *alert_ids)
            pipe.hdel(self.alerts_key(channel_id), *alert_ids)
            if state.startswith("sent:"):
                pipe.delete(self.failures_key(channel_id))
            await pipe.execute()

    async def channel_ids(self) -> set[str]:
        """Return every channel id that has had a queue (configured or not any more)."""
        members = await self.redis.smembers(streams.key("slack", "channels"))
        return {m.decode() if isinstance(m, bytes) else str(m) for m in members}
