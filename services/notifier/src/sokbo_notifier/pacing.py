"""A per-channel token bucket in Redis, shared by every notifier replica.

Slack's "Rate limits" page allows an incoming webhook about one message per second
(short bursts tolerated) and answers more with HTTP 429 and ``Retry-After``; a
webhook hammered past that is disabled.  The bucket is kept in its virtual-scheduling
form (GCRA): one key holds the theoretical arrival time of the next message, in
microseconds of Redis ``TIME``, so every replica (and a replica that takes over after
another died) sees the same schedule whatever its own clock says.  With capacity 1,
messages are spaced at least ``1 / per_second`` seconds apart.  The sender also calls
:meth:`TokenBucket.settle` when Slack answers, which restarts the interval from the
answer: a post delayed on its way (a new connection, a slow network) then cannot
arrive right before the next one, so the rate holds as Slack measures it, at the cost
of one round trip per message.  A second key holds a pause (after a 429, or a
backoff after a failure) that every replica honours.  All scripts are atomic.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

from sokbo import streams

__all__ = ["TokenBucket"]

_TAKE = """
local t = redis.call('time')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local paused = tonumber(redis.call('get', KEYS[2]) or '0')
if paused > now then return paused - now end
local tat = tonumber(redis.call('get', KEYS[1]) or '0')
if tat < now then tat = now end
local allowed_at = tat - (capacity - 1) * interval
if allowed_at > now then return allowed_at - now end
tat = tat + interval
redis.call('set', KEYS[1], string.format('%.0f', tat), 'PX',
           math.ceil((tat - now) / 1000) + 1000)
return 0
"""
_SETTLE = """
local t = redis.call('time')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = now + tonumber(ARGV[1])
if tat > tonumber(redis.call('get', KEYS[1]) or '0') then
  redis.call('set', KEYS[1], string.format('%.0f', tat), 'PX',
             math.ceil(tonumber(ARGV[1]) / 1000) + 1000)
end
return 0
"""
_PAUSE = """
local t = redis.call('time')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local till = now + tonumber(ARGV[1])
local current = tonumber(redis.call('get', KEYS[1]) or '0')
if till > current then
  redis.call('set', KEYS[1], string.format('%.0f', till), 'PX',
             math.ceil(tonumber(ARGV[1]) / 1000) + 1000)
  return tonumber(ARGV[1])
end
return current - now
"""


class TokenBucket:
    """Tokens for messages to each channel: ``sokbo:bucket:<channel_id>`` (+ ``:paused``)."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self._take = redis.register_script(_TAKE)
        self._pause = redis.register_script(_PAUSE)
        self._settle = redis.register_script(_SETTLE)

    @staticmethod
    def _keys(channel_id: str) -> list[str]:
        return [streams.key("bucket", channel_id), streams.key("bucket", channel_id, "paused")]

    async def take(self, channel_id: str, per_second: float, capacity: int = 1) -> float:
        """Take one token if one is free; return 0.0, or else the seconds until one is.

        Args:
            per_second: the sustained rate, messages per second (> 0).
            capacity: messages that may go out back to back (≥ 1).
        """
        if per_second <= 0 or capacity < 1:
            raise ValueError(f"need per_second > 0 and capacity >= 1, not {per_second}, "
                             f"{capacity}")
        interval_us = max(int(1_000_000 / per_second), 1)
        wait_us = await self._take(keys=self._keys(channel_id), args=[interval_us, capacity])
        return int(wait_us) / 1_000_000

    async def wait(self, channel_id: str, per_second: float, *, capacity: int = 1,
                   sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> float:
        """Sleep until a token is free and take it; return the seconds waited (by *sleep*)."""
        waited = 0.0
        while (delay := await self.take(channel_id, per_second, capacity)) > 0:
            await sleep(delay)
            waited += delay
        return waited

    async def settle(self, channel_id: str, per_second: float) -> None:
        """Give the next token no sooner than ``1 / per_second`` s from now (Redis time).

        Called when the remote side answered a message, so the spacing holds where it
        is measured even when a message took long to arrive.
        """
        interval_us = max(int(1_000_000 / per_second), 1)
        await self._settle(keys=self._keys(channel_id)[:1], args=[interval_us])

    async def pause(self, channel_id: str, seconds: float) -> float:
        """Give no token for *channel_id* for *seconds* from now (Redis time), for everyone.

        A longer pause already in force is kept.  Returns the pause now in force, s.
        """
        micros = max(int(seconds * 1_000_000), 0)
        left = await self._pause(keys=self._keys(channel_id)[1:], args=[micros])
        return int(left) / 1_000_000
