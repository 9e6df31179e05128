"""A lease in Redis: a lock with a time limit, held by one owner, renewed while it works.

Taken with ``SET key token NX PX ttl``; renewed and released only by the owner (a Lua
compare-and-set on the token), so a replica whose lease ran out can never release or
extend one that another replica took meanwhile.  A replica that dies simply stops
renewing: its lease expires after *ttl* seconds and another replica takes over.
See https://redis.io/docs/latest/develop/use/patterns/distributed-locks/ (the
single-instance algorithm).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from sokbo.logs import get_logger

__all__ = ["Lease", "check_cancelled", "shielded"]

T = TypeVar("T")

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class Lease:
    """One owner's claim on *key* for *ttl* seconds.

    Attributes:
        held: True from a successful :meth:`acquire` until the lease is released or a
            renewal finds it gone (expired, or taken over after expiring).
    """

    def __init__(self, redis: aioredis.Redis, key: str, ttl: float) -> None:
        if ttl <= 0:
            raise ValueError(f"a lease needs a positive ttl, not {ttl}")
        self.redis = redis
        self.key = key
        self.ttl = ttl
        self.token = uuid.uuid4().hex
        self.held = False
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    @property
    def _ttl_ms(self) -> int:
        return max(int(self.ttl * 1000), 1)

    async def acquire(self) -> bool:
        """Take the lease if nobody holds it; return whether this owner now holds it."""
        self.held = bool(await self.redis.set(self.key, self.token, nx=True, px=self._ttl_ms))
        return self.held

    async def renew(self) -> bool:
        """Extend the lease to *ttl* seconds from now if still ours; return whether it is."""
        self.held = bool(await self._renew(keys=[self.key], args=[self.token, self._ttl_ms]))
        return self.held

    async def release(self) -> None:
        """Give the lease up if still ours (a no-op otherwise); never raises RedisError."""
        self.held = False
        with contextlib.suppress(RedisError, OSError):
            await self._release(keys=[self.key], args=[self.token])

    @contextlib.asynccontextmanager
    async def kept(self) -> AsyncIterator[Lease]:
        """Renew the lease every ttl/3 seconds while the block runs.

        A renewal that finds the lease gone sets :attr:`held` to False and stops;
        the block should check :attr:`held` before each step that must be done by one
        owner only.  Redis errors during renewal are logged and retried.
        """
        async def renew_forever() -> None:
            while self.held:
                await asyncio.sleep(self.ttl / 3)
                check_cancelled()
                try:
                    if not await self.renew():
                        get_logger(lease=self.key).warning("lease_lost")
                except (RedisError, OSError) as exc:
                    get_logger(lease=self.key).warning("lease_renew_failed", error=str(exc))

        task = asyncio.create_task(renew_forever())
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def shielded(work: Coroutine[Any, Any, T]) -> T:
    """Run *work* to the end even if the caller is cancelled, then re-raise the cancel.

    For a post and the write that records it: a shutdown (SIGTERM cancels the
    sender) must let the message in flight be recorded, or the next sender would
    post it again (B26).  Exceptions of *work* propagate as usual.
    """
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await task
        raise


def check_cancelled() -> None:
    """Raise CancelledError if this task was asked to stop and the request got lost.

    On Python 3.11, ``asyncio.wait_for`` (used inside redis-py) returns the result
    instead of raising when the cancel arrives just as the awaited call completes
    (python/cpython#86296); a loop that calls this at each turn still stops, so a
    shutdown never hangs on it.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
