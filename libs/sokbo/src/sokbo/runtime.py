"""The shell every service runs in: one broker, consumer groups, claiming, dead letters.

A service is a function ``register(ctx: ServiceContext) -> None`` exposed under the
``sokbo.services`` entry-point group.  It subscribes handlers with
:meth:`ServiceContext.subscribe` and may add background loops (the crawler's poller).
:func:`run` builds one FastStream ``RedisBroker`` for the process, registers the
requested services on it and serves ``/metrics``, ``/healthz`` and ``/readyz``.

Delivery semantics (DESIGN.md): each stream is read through a consumer group named
after the consuming service; a handler that raises leaves its entry pending
(``AckPolicy.NACK_ON_ERROR``); a second subscriber in the same group claims entries
idle longer than ``delivery.claim_idle`` (XAUTOCLAIM); an entry delivered more than
``delivery.max_deliveries`` times, or failing with :class:`PermanentError`, goes to
``sokbo.dead-letter`` and is acked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import orjson
import redis.asyncio as aioredis
from faststream import AckPolicy
from faststream.asgi import AsgiFastStream, make_ping_asgi
from faststream.redis import RedisBroker, StreamSub
from faststream.redis.annotations import RedisStreamMessage
from faststream.redis.prometheus import RedisPrometheusMiddleware
from pydantic import ValidationError
from redis.exceptions import RedisError, ResponseError

from sokbo import streams
from sokbo.config import Settings, load_settings
from sokbo.errors import ConfigError, PermanentError, StartupError
from sokbo.logs import get_logger
from sokbo.messages import DeadLettered, Message, encode
from sokbo.observability import (
    CONFIG_RELOADS,
    DEAD_LETTERED,
    REGISTRY,
    SERVICE_UP,
    metrics_app,
)

__all__ = ["SERVICES", "ServiceContext", "available_services", "build_app", "run"]

SERVICES = ("crawler", "parser", "keyword-alert", "notifier")
M = TypeVar("M", bound=Message)
Handler = Callable[[Any], Awaitable[None]]


def available_services() -> dict[str, Any]:
    """Return the installed services' entry points (``sokbo.services`` group) by name."""
    return {ep.name: ep for ep in entry_points(group="sokbo.services")}


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
                  *, service: str) -> None:
        """Consume *stream* in *service*'s group: a reader and a claimer, both calling *handler*.

        *handler* gets the validated *model*; returning acks the entry, raising
        :class:`PermanentError` dead-letters and acks it, raising anything else leaves
        it pending for the claimer (after ``delivery.claim_idle`` seconds).
        """
        group = streams.GROUPS[stream]
        consumer = streams.consumer_name(service, self.instance)
        claim_ms = int(self.settings.delivery.claim_idle * 1000)
        self.consumed.append(stream)
        for sub in (StreamSub(stream, group=group, consumer=consumer, polling_interval=500),
                    StreamSub(stream, group=group, consumer=f"{consumer}/claimer",
                              min_idle_time=claim_ms, polling_interval=1000)):
            self.broker.subscriber(stream=sub, ack_policy=AckPolicy.NACK_ON_ERROR)(
                self._wrap(stream, group, model, handler, service))

    def _wrap(self, stream: str, group: str, model: type[M],
              handler: Callable[[M], Awaitable[None]], service: str) -> Handler:
        log = get_logger(stage=service, stream=stream)
        max_deliveries = self.settings.delivery.max_deliveries

        async def consume(msg: RedisStreamMessage) -> None:
            body = msg.body
            entry_id = msg.raw_message["message_ids"][0].decode()
            deliveries = await self._deliveries(stream, group, entry_id)
            if deliveries > max_deliveries:
                await self.dead_letter(service, stream, entry_id, body, deliveries,
                                       f"gave up after {deliveries - 1} deliveries")
                return
            try:
                message = model.model_validate_json(body)
            except ValidationError as exc:
                await self.dead_letter(service, stream, entry_id, body, deliveries,
                                       f"invalid {model.__name__}: {exc.errors()[:3]}")
                return
            try:
                await handler(message)
            except PermanentError as exc:
                await self.dead_letter(service, stream, entry_id, body, deliveries, str(exc))
            except Exception as exc:
                log.warning("entry_left_pending", entry_id=entry_id, deliveries=deliveries,
                            error=f"{type(exc).__name__}: {exc}")
                raise

        consume.__name__ = f"{service}_{stream.replace('.', '_').replace('-', '_')}"
        return consume

    async def _deliveries(self, stream: str, group: str, entry_id: str) -> int:
        """Return how many times *entry_id* has been delivered to *group* (XPENDING)."""
        pending = await self.redis.xpending_range(stream, group, min=entry_id, max=entry_id,
                                                  count=1)
        return int(pending[0]["times_delivered"]) if pending else 1

    async def dead_letter(self, stage: str, stream: str, entry_id: str | None, body: bytes,
                          deliveries: int, error: str) -> None:
        """Append a :class:`DeadLettered` entry for *body* to ``sokbo.dead-letter``."""
        try:
            original = orjson.loads(body)
        except ValueError:
            original = {"raw": body[:4096].decode("utf-8", "replace")}
        entry = DeadLettered(stage=stage, stream=stream, entry_id=entry_id, error=error,
                             deliveries=deliveries, original=original,
                             failed_at=datetime.now(UTC))
        await self.publish(entry, streams.DEAD_LETTER)
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


async def trim_streams(client: aioredis.Redis, names: list[str], maxlen: int,
                       period: float = 30.0) -> None:
    """Cap each stream in *names* with ``XTRIM MAXLEN ~ maxlen`` every *period* seconds."""
    while True:
        for name in names:
            with contextlib.suppress(Exception):
                await client.xtrim(name, maxlen=maxlen, approximate=True)
        await asyncio.sleep(period)


def _check_port_free(port: int) -> None:
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))
        except OSError as exc:
            raise StartupError(
                f"metrics port {port} is not free ({exc.strerror}); pass --metrics-port N "
                "or set metrics_port in the config (each process on a host needs its own)"
            ) from None


async def _check_redis(url: str) -> None:
    client = aioredis.from_url(url, socket_connect_timeout=3)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        shown = urlsplit(url)._replace(netloc=urlsplit(url).hostname or "").geturl()
        raise StartupError(f"cannot reach Redis at {shown} ({exc}); start Redis or set "
                          "REDIS_URL / redis_url to one that answers") from None
    finally:
        await client.aclose()


async def watch_config(ctx: ServiceContext, path: Path, period: float = 2.0) -> None:
    """Reload *path* when it changes (checked every *period* s) or on SIGHUP.

    A new config that does not validate, or that a service's reloader refuses, is
    logged as ``config_reload_refused`` and the running settings stay active.
    """
    log = get_logger(config=str(path))
    wake = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGHUP, wake.set)
    seen = _stamp(path)
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), period)
        stamp = _stamp(path)
        if not wake.is_set() and stamp == seen:
            continue
        wake.clear()
        seen = stamp
        _reload(ctx, path, log)


def _stamp(path: Path) -> tuple[float, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime, stat.st_size


def _reload(ctx: ServiceContext, path: Path, log: Any) -> None:
    try:
        new = load_settings(path).model_copy(
            update={"metrics_port": ctx.settings.metrics_port})
        for callback in ctx.reloaders:
            callback(new)
    except Exception as exc:  # a bad file must never stop a running service
        CONFIG_RELOADS.labels(outcome="refused").inc()
        log.error("config_reload_refused", error=str(exc), keeping="the running config")
        return
    ctx.settings = new
    CONFIG_RELOADS.labels(outcome="ok").inc()
    log.info("config_reloaded", rules=len(new.rules), channels=len(new.channels))


def build_app(settings: Settings, names: list[str], config_path: Path | None = None
              ) -> AsgiFastStream:
    """Build one FastStream ASGI app running the services *names* on one broker.

    Raises:
        ConfigError: a service name is unknown or not installed.
    """
    registry = available_services()
    missing = [n for n in names if n not in registry]
    if missing:
        raise ConfigError(f"unknown or uninstalled service {missing[0]!r}; "
                          f"choose from {', '.join(SERVICES)} or all")
    broker = RedisBroker(settings.redis_url, graceful_timeout=10.0, log_level=logging.DEBUG,
                         middlewares=[RedisPrometheusMiddleware(registry=REGISTRY,
                                                                app_name="sokbo")],
                         logger=get_logger(component="faststream"))
    state = aioredis.from_url(settings.redis_url)
    ctx = ServiceContext(settings=settings, broker=broker, redis=state)
    for name in names:
        registry[name].load()(ctx)
    tasks: list[asyncio.Task[None]] = []
    log = get_logger()

    async def startup() -> None:
        await ensure_groups(state, sorted(set(ctx.consumed)))

    async def started() -> None:
        loops = [*ctx.background, lambda: trim_streams(state, list(streams.ALL),
                                                       settings.streams.maxlen)]
        if config_path is not None and ctx.reloaders:
            loops.append(lambda: watch_config(ctx, config_path))
        tasks.extend(asyncio.create_task(loop()) for loop in loops)
        for name in names:
            SERVICE_UP.labels(service=name).set(1)
        log.info("service_started", services=names, metrics_port=settings.metrics_port)

    async def shutdown() -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def stopped() -> None:
        for close in ctx.cleanup:
            await close()
        await state.aclose()
        log.info("service_stopped", services=names)

    async def healthz(scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok\n"})

    return AsgiFastStream(
        broker,
        asgi_routes=[("/metrics", metrics_app()), ("/healthz", healthz),
                     ("/readyz", make_ping_asgi(broker, timeout=2.0))],
        on_startup=[startup], after_startup=[started],
        on_shutdown=[shutdown], after_shutdown=[stopped],
        logger=None,
    )


async def run(settings: Settings, names: list[str], config_path: Path | None = None) -> None:
    """Run services *names* until SIGTERM/SIGINT, serving metrics on ``settings.metrics_port``.

    Raises:
        ConfigError: the metrics port is taken or a service is unknown.
    """
    _check_port_free(settings.metrics_port)
    await _check_redis(settings.redis_url)
    app = build_app(settings, names, config_path)
    # uvicorn handles SIGTERM/SIGINT (graceful shutdown), then re-raises the signal to the
    # handler that was installed before it; a no-op one lets the process exit 0.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)
    await app.run(log_level=30, run_extra_options={"host": "0.0.0.0",
                                                   "port": settings.metrics_port,
                                                   "access_log": "false"})
