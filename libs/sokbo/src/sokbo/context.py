"""What a service registers with: settings, the broker, Redis, and a subscribe helper.

Delivery semantics (DESIGN.md): each stream is read through a consumer group named
after the consuming service; entries are acked explicitly (``AckPolicy.MANUAL``)
once their effect is durable, so a handler that raises, or is cancelled by a
shutdown, leaves its entry pending; an entry delivered more than
``delivery.max_deliveries`` times, or failing with :class:`PermanentError`, goes to
``sokbo.dead-letter`` and is acked.

Per stream, a replica runs two FastStream subscribers in the group:

* the reader, ``XREADGROUP … COUNT 1 … >``: one entry at a time, so a shutdown or
  a crash never strands entries fetched in a batch but not started (B26), and a
  busy replica does not hoard entries an idle one could take (a service that asks
  for *concurrency* N, the parser with ``parser.workers``, holds at most 2N: N
  handled, N waiting, all pending until acked and handed back on shutdown).  An
  entry read with ``>`` is on its first delivery, so no ``XPENDING`` is asked;
* the claimer (``min_idle_time``), ``XAUTOCLAIM`` of entries idle longer than
  ``delivery.claim_idle``.  While a handler runs, its entry's idle time is kept
  fresh (:func:`sokbo.groups.keep_claimed`), so only a dead replica's entries are
  claimed, not a slow live one's.

A replica restarted under the same consumer name (:func:`sokbo.streams.default_instance`)
first handles its own pending entries (:meth:`ServiceContext.resume_pending`,
``XREADGROUP … 0``); one that stops hands its pending entries over
(:meth:`ServiceContext.hand_back`).  Redis 8.4's ``XREADGROUP … CLAIM`` could replace
the claimer subscriber; XAUTOCLAIM works on every Redis from 7.0.
"""

from __future__ import annotations

import contextlib
from collections import Counter
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
from faststream.redis.message import DefaultStreamMessage
from pydantic import ValidationError
from redis.exceptions import RedisError, ResponseError

from sokbo import deadletters, groups, streams
from sokbo.config import Settings
from sokbo.errors import PermanentError
from sokbo.logs import get_logger
from sokbo.messages import DeadLettered, Message, encode
from sokbo.observability import DEAD_LETTERED, PENDING_ENTRIES_RESUMED

__all__ = ["ServiceContext", "Subscription", "ensure_groups"]

M = TypeVar("M", bound=Message)
_IDS = ("source_id", "article_id", "alert_id")  # bound to every log event of a handler
Handler = Callable[[Any], Awaitable[None]]
#: own pending entries re-read at start, at most (the rest go to the claimer); reads are
#: one entry at a time, so a replica that died holds one or two
RESUME_LIMIT = 100


@dataclass(frozen=True)
class Subscription:
    """One stream a replica consumes: its group, and per consumer name the FastStream
    subscriber reading as that consumer (the reader, then the claimer)."""

    stream: str
    group: str
    subscribers: dict[str, Any]


@dataclass
class ServiceContext:
    """What a service's ``register`` gets: settings, the broker and a Redis client."""

    settings: Settings
    broker: RedisBroker
    redis: aioredis.Redis
    background: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    cleanup: list[Callable[[], Awaitable[object]]] = field(default_factory=list)
    consumed: list[str] = field(default_factory=list)
    subscriptions: list[Subscription] = field(default_factory=list)
    instance: str | None = None
    reloaders: list[Callable[[Settings], None]] = field(default_factory=list)
    #: (stream, entry id) of own pending entries being re-read
    _resuming: set[tuple[str, str]] = field(default_factory=set)

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
                  *, service: str, delete_done: bool = False, concurrency: int = 1) -> None:
        """Consume *stream* in *service*'s group: a reader and a claimer, both calling *handler*.

        *handler* gets the validated *model*; returning acks the entry (XACK), raising
        :class:`PermanentError` dead-letters and acks it, raising anything else leaves
        it pending for the claimer (after ``delivery.claim_idle`` seconds), logged once
        as ``entry_left_pending``; acks are explicit (``AckPolicy.MANUAL``), so an entry
        is acked only once its effect is durable, and never when the handler is
        cancelled by a shutdown.  While *handler* runs, its entry is kept from being
        claimed (:func:`sokbo.groups.keep_claimed`).  With *delete_done*, a handled
        entry is also deleted (XDEL): for ``sokbo.pages``, whose raw bodies are large
        and useless once parsed.  Consumers are ``service@instance`` (reader) and
        ``service@instance/claimer``.  With *concurrency* above 1 the reader hands
        entries to that many handler calls at once (FastStream's ``max_workers``; it
        then holds up to twice as many entries, all pending until handled).
        """
        group = streams.GROUPS[stream]
        consumer = streams.consumer_name(service, self.instance)
        claim_ms = int(self.settings.delivery.claim_idle * 1000)
        self.consumed.append(stream)
        subscribers: dict[str, Any] = {}
        for sub in (StreamSub(stream, group=group, consumer=consumer, polling_interval=500,
                              max_records=1),
                    StreamSub(stream, group=group, consumer=f"{consumer}/claimer",
                              min_idle_time=claim_ms, polling_interval=1000)):
            workers = concurrency if sub.min_idle_time is None and concurrency > 1 else None
            subscriber = self.broker.subscriber(stream=sub, ack_policy=AckPolicy.MANUAL,
                                                max_workers=workers)
            subscriber(self._wrap(stream, group, sub.consumer or consumer, model, handler,
                                  service, delete_done, fresh=sub.min_idle_time is None))
            subscribers[sub.consumer or consumer] = subscriber
        self.subscriptions.append(Subscription(stream, group, subscribers))

    def _wrap(self, stream: str, group: str, consumer: str, model: type[M],
              handler: Callable[[M], Awaitable[None]], service: str,
              delete_done: bool, *, fresh: bool) -> Handler:
        """Return the FastStream handler of one consumer; *fresh*: it reads with ``>``."""
        every = self.settings.delivery.claim_idle / 3

        async def consume(msg: RedisStreamMessage) -> None:
            body = msg.body
            entry_id = msg.raw_message["message_ids"][0].decode()
            # read with ">": delivered for the first time, no XPENDING needed to know it
            first = fresh and (stream, entry_id) not in self._resuming
            self._resuming.discard((stream, entry_id))
            with structlog.contextvars.bound_contextvars(service=service, entry_id=entry_id):
                try:
                    async with groups.keep_claimed(self.redis, stream, group, consumer,
                                                   entry_id, every=every):
                        await self._consume(stream, group, model, handler, service, entry_id,
                                            body, first=first)
                except Exception as exc:  # leave it pending: the claimer retries it
                    await self._left_pending(stream, entry_id, exc)
                    return
                finally:
                    structlog.contextvars.unbind_contextvars(*_IDS)
                if delete_done:  # XACK and XDEL in one round trip
                    async with self.redis.pipeline(transaction=False) as pipe:
                        pipe.xack(stream, group, entry_id)
                        pipe.xdel(stream, entry_id)
                        await pipe.execute()
                else:
                    await msg.ack()

        consume.__name__ = f"{service}_{stream.replace('.', '_').replace('-', '_')}"
        return consume

    async def _consume(self, stream: str, group: str, model: type[M],
                       handler: Callable[[M], Awaitable[None]], service: str, entry_id: str,
                       body: bytes, *, first: bool = False) -> None:
        deliveries = 1 if first else await self._deliveries(stream, group, entry_id)
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

    async def take_own_pending(self) -> list[tuple[Subscription, str, str, dict]]:
        """Re-read what a previous run under this replica's consumer names left pending.

        ``XREADGROUP GROUP group consumer COUNT 10 STREAMS stream 0`` (then from the last
        id), for each consumer name, up to :data:`RESUME_LIMIT` entries in all (the rest
        go to the claimer); each read counts as a delivery, so an entry that kills the
        process every time is dead-lettered after ``delivery.max_deliveries``.  Call it
        before the broker starts, so only a previous run's entries are found.  An entry
        deleted while pending is logged, counted and acked here.

        Returns:
            ``[(subscription, consumer, entry id, fields), …]`` for :meth:`resume_pending`.
        """
        found: list[tuple[Subscription, str, str, dict]] = []
        for sub in self.subscriptions:
            for consumer in sub.subscribers:
                after = "0"
                while len(found) < RESUME_LIMIT:
                    entries = await groups.own_pending(self.redis, sub.stream, sub.group,
                                                       consumer, after=after)
                    if not entries:
                        break
                    gone = [entry_id for entry_id, fields in entries if fields is None]
                    if gone:
                        groups.lost_while_pending(sub.stream, sub.group, gone)
                        await self.redis.xack(sub.stream, sub.group, *gone)
                    found += [(sub, consumer, entry_id, fields) for entry_id, fields in entries
                              if fields is not None]
                    after = entries[-1][0]
        return found

    async def resume_pending(self, entries: list[tuple[Subscription, str, str, dict]]) -> int:
        """Handle the entries :meth:`take_own_pending` found, oldest first per consumer.

        Each goes to the FastStream subscriber of the consumer that held it, as if just
        read (same handler, ack, heartbeat and dead-lettering).  Stops when the
        subscriber stops (shutdown; the rest stay pending).  Returns how many were
        handled.
        """
        handled: Counter[str] = Counter()
        for sub, consumer, entry_id, fields in entries:
            subscriber = sub.subscribers[consumer]
            if not subscriber.running:
                continue
            # read again, not with ">": its deliveries come from XPENDING
            self._resuming.add((sub.stream, entry_id))
            await subscriber.consume_one(DefaultStreamMessage(
                type="stream", channel=sub.stream, message_ids=[entry_id.encode()],
                data=fields))
            handled[sub.stream] += 1
        for stream, count in handled.items():
            PENDING_ENTRIES_RESUMED.labels(stream=stream).inc(count)
            get_logger().info("pending_entries_resumed", stream=stream, count=count)
        return sum(handled.values())

    async def hand_back(self) -> int:
        """Make this replica's pending entries claimable by another one now (on shutdown).

        See :func:`sokbo.groups.hand_back`; Redis errors are logged, not raised (the
        entries are then claimed after ``claim_idle`` as usual).  Returns the count.
        """
        count = 0
        for sub in self.subscriptions:
            for consumer in sub.subscribers:
                try:
                    count += await groups.hand_back(self.redis, sub.stream, sub.group,
                                                    consumer, self.settings.delivery.claim_idle)
                except (RedisError, OSError) as exc:
                    get_logger().warning("hand_back_failed", stream=sub.stream,
                                         consumer=consumer, error=str(exc))
        if count:
            get_logger().info("pending_entries_handed_back", count=count)
        return count

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

    ``XGROUP CREATE stream group 0 MKSTREAM``; created at ``0`` rather than ``$`` so
    entries written before the consumer's first start (or, after a flush, before the
    group was recreated) are not skipped.

    Raises:
        redis.exceptions.RedisError: anything but BUSYGROUP (the group exists).
    """
    for name in stream_names:
        try:
            await client.xgroup_create(name, streams.GROUPS[name], id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
