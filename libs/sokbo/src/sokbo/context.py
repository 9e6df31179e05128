"""What a service registers with: settings, the broker, Redis, and a subscribe helper.

Delivery semantics (DESIGN.md): each stream is read through a consumer group named
after the consuming service; entries are acked explicitly (``AckPolicy.MANUAL``)
once their effect is durable, so a handler that raises, or is cancelled by a
shutdown, leaves its entry pending; a second subscriber in the same group claims entries
idle longer than ``delivery.claim_idle`` (XAUTOCLAIM); an entry delivered more than
``delivery.max_deliveries`` times, or failing with :class:`PermanentError`, goes to
``sokbo.dead-letter`` and is acked.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
import redis.asyncio as aioredis
import structlog
from faststream import AckPolicy
from faststream.redis import RedisBroker, StreamSub
from faststream.redis.annotations import RedisStreamMessage
from pydantic import ValidationError
from redis.exceptions import RedisError, ResponseError

from sokbo import deadletters, streams
from sokbo.config import Settings
from sokbo.errors import PermanentError
from sokbo.logs import get_logger
from sokbo.messages import DeadLettered, Message, encode
from sokbo.observability import DEAD_LETTERED

__all__ = ["ServiceContext", "ensure_groups"]

M = TypeVar("M", bound=Message)
_IDS = ("source_id", "article_id", "alert_id")  # bound to every log event of a handler
Handler = Callable[[Any], Awaitable[None]]


@dataclass
class ServiceContext:
    """What a service's ``register`` gets: settings, the broker and a Redis client."""

    settings: Settings
    broker: RedisBroker
    redis: aioredis.Redis
    background: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    cleanup: list[Callable[[], Awaitable[object]]] = field(default_factory=list)
    consumed: list[str] = field(default_factory=list)
    instance: str | None = None
    reloaders: list[Callable[[Settings], None]] = field(default_factory=list)

    def on_reload(self, callback: Callable[[Settings], None]) -> None:
        """Call *callback* with the new settings whenever the config file is reloaded.

        The callback must be quick and must raise to refuse the new settings (the
        old ones then stay active); see :func:`watch_config`.
        """
        self.reloaders.append(callback)

    async def publish(self, message: Message, stream: str) -> None:
        """Append *message* to *stream* (orjson bytes)."""
        await self.broker.publish(encode(message), stream=stream)

    def subscribe(self, stream: str, model: type[M], handler: Callable[[M], Awaitable[None]],
                  *, service: str, delete_done: bool = False) -> None:
        """Consume *stream* in *service*'s group: a reader and a claimer, both calling *handler*.

        *handler* gets the validated *model*; returning acks the entry, raising
        :class:`PermanentError` dead-letters and acks it, raising anything else leaves
        it pending for the claimer (after ``delivery.claim_idle`` seconds), logged once
        as ``entry_left_pending``; acks are explicit (``AckPolicy.MANUAL``), so an entry
        is acked only once its effect is durable, and never when the handler is
        cancelled by a shutdown.  With
        *delete_done*, a handled entry is also deleted (XDEL): for ``sokbo.pages``,
        whose raw bodies are large and useless once parsed.
        """
        group = streams.GROUPS[stream]
        consumer = streams.consumer_name(service, self.instance)
        claim_ms = int(self.settings.delivery.claim_idle * 1000)
        self.consumed.append(stream)
        for sub in (StreamSub(stream, group=group, consumer=consumer, polling_interval=500),
                    StreamSub(stream, group=group, consumer=f"{consumer}/claimer",
                              min_idle_time=claim_ms, polling_interval=1000)):
            self.broker.subscriber(stream=sub, ack_policy=AckPolicy.MANUAL)(
                self._wrap(stream, group, model, handler, service, delete_done))

    def _wrap(self, stream: str, group: str, model: type[M],
              handler: Callable[[M], Awaitable[None]], service: str,
              delete_done: bool) -> Handler:
        async def consume(msg: RedisStreamMessage) -> None:
            body = msg.body
            entry_id = msg.raw_message["message_ids"][0].decode()
            with structlog.contextvars.bound_contextvars(service=service, entry_id=entry_id):
                try:
                    await self._consume(stream, group, model, handler, service, entry_id, body)
                except Exception as exc:  # leave it pending: the claimer retries it
                    await self._left_pending(stream, entry_id, exc)
                    return
                finally:
                    structlog.contextvars.unbind_contextvars(*_IDS)
                await msg.ack()
                if delete_done:
                    await self.redis.xdel(stream, entry_id)

        consume.__name__ = f"{service}_{stream.replace('.', '_').replace('-', '_')}"
        return consume

    async def _consume(self, stream: str, group: str, model: type[M],
                       handler: Callable[[M], Awaitable[None]], service: str, entry_id: str,
                       body: bytes) -> None:
        deliveries = await self._deliveries(stream, group, entry_id)
        max_deliveries = self.settings.delivery.max_deliveries
        if deliveries > max_deliveries:
            last = await self.redis.get(streams.key("last-error", stream, entry_id))
            reason = last.decode("utf-8", "replace") if last else "unknown"
            await self.dead_letter(service, stream, entry_id, body, deliveries,
                                   f"gave up after {deliveries - 1} deliveries; last error: "
                                   f"{reason}")
            return
        try:
            message = model.model_validate_json(body)
        except ValidationError as exc:
            await self.dead_letter(service, stream, entry_id, body, deliveries,
                                   f"invalid {model.__name__}: {exc.errors()[:3]}")
            return
        structlog.contextvars.bind_contextvars(**{
            name: getattr(message, name) for name in _IDS
            if isinstance(getattr(message, name, None), str)})
        try:
            await handler(message)
        except PermanentError as exc:
            await self.dead_letter(service, stream, entry_id, body, deliveries, str(exc))

    async def _left_pending(self, stream: str, entry_id: str, exc: Exception) -> None:
        """Log a failure that leaves *entry_id* pending, and keep its reason for the end."""
        error = f"{type(exc).__name__}: {exc}"
        get_logger().warning("entry_left_pending", stream=stream, error=error,
                             retry_after_s=self.settings.delivery.claim_idle)
        with contextlib.suppress(RedisError, OSError):
            await self.redis.set(streams.key("last-error", stream, entry_id), error[:500],
                                 ex=7 * 86400)

    async def _deliveries(self, stream: str, group: str, entry_id: str) -> int:
        """Return how many times *entry_id* has been delivered to *group* (XPENDING)."""
        pending = await self.redis.xpending_range(stream, group, min=entry_id, max=entry_id,
                                                  count=1)
        return int(pending[0]["times_delivered"]) if pending else 1

    async def dead_letter(self, stage: str, stream: str, entry_id: str | None, body: bytes,
                          deliveries: int, error: str, *, channel_id: str | None = None
                          ) -> None:
        """Append a :class:`DeadLettered` entry for *body* to ``sokbo.dead-letter``.

        Written as plain fields (see :mod:`sokbo.deadletters`), readable with redis-cli
        and by ``sokbo dead-letter``.
        """
        try:
            original = orjson.loads(body)
        except ValueError:
            original = {"raw": body[:4096].decode("utf-8", "replace")}
        entry = DeadLettered(stage=stage, stream=stream, entry_id=entry_id, error=error,
                             deliveries=deliveries, original=original, channel_id=channel_id,
                             failed_at=datetime.now(UTC))
        await deadletters.write(self.redis, entry, maxlen=self.settings.streams.maxlen)
        DEAD_LETTERED.labels(stage=stage).inc()
        get_logger(stage=stage).error("entry_dead_lettered", stream=stream, entry_id=entry_id,
                                      deliveries=deliveries, error=error)


async def ensure_groups(client: aioredis.Redis, stream_names: list[str]) -> None:
    """Create each stream's consumer group at id 0 (MKSTREAM) unless it exists.

    Created at ``0`` rather than ``$`` so entries written before the consumer's first
    start are not skipped.
    """
    for name in stream_names:
        try:
            await client.xgroup_create(name, streams.GROUPS[name], id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
