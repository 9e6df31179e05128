"""The shell every service runs in: one broker, its consumer groups, health and reload.

A service is a function ``register(ctx: ServiceContext) -> None`` exposed under the
``sokbo.services`` entry-point group (see :mod:`sokbo.context`).  :func:`run` builds
one FastStream ``RedisBroker`` for the process, registers the requested services on
it and serves ``/metrics``, ``/healthz`` and ``/readyz`` on the metrics port.  While
it runs it keeps the consumer groups alive (a Redis restart or flush that drops a
group — NOGROUP — gets it recreated and the subscriber restarted), caps the
streams, and reloads the config file on change or SIGHUP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.redis import RedisBroker
from faststream.redis.prometheus import RedisPrometheusMiddleware
from redis.exceptions import RedisError

from sokbo import streams
from sokbo.config import Settings, load_settings
from sokbo.context import ServiceContext, ensure_groups
from sokbo.errors import ConfigError, StartupError
from sokbo.logs import get_library_logger, get_logger
from sokbo.observability import (
    CONFIG_RELOADS,
    GROUPS_RECREATED,
    REGISTRY,
    SERVICE_UP,
    metrics_app,
)

__all__ = ["SERVICES", "available_services", "build_app", "run", "watch_config"]

SERVICES = ("crawler", "parser", "keyword-alert", "notifier")
#: settings a running process cannot change; a reload that changes them says so
_RESTART_ONLY = ("redis_url", "metrics_port", "streams", "crawler", "delivery")


def available_services() -> dict[str, Any]:
    """Return the installed services' entry points (``sokbo.services`` group) by name."""
    return {ep.name: ep for ep in entry_points(group="sokbo.services")}


async def trim_streams(client: aioredis.Redis, names: list[str], maxlen: int,
                       period: float = 30.0) -> None:
    """Cap each stream in *names* with ``XTRIM MAXLEN ~ maxlen`` every *period* seconds."""
    log = get_logger()
    while True:
        for name in names:
            try:
                await client.xtrim(name, maxlen=maxlen, approximate=True)
            except RedisError as exc:
                log.warning("stream_trim_failed", stream=name, error=str(exc))
        await asyncio.sleep(period)


async def supervise(ctx: ServiceContext, period: float = 2.0) -> None:
    """Restart any subscriber that stopped, recreating its consumer group first.

    FastStream stops a stream subscriber for good when its group vanished (NOGROUP:
    Redis restarted without persistence, flushed, or the stream was deleted); this
    recreates the group at id 0 and starts the subscriber again, once per *period*.
    """
    log = get_logger()
    while True:
        await asyncio.sleep(period)
        for subscriber in ctx.broker.subscribers:
            if subscriber.running:
                continue
            stream = subscriber.stream_sub.name
            try:
                await ensure_groups(ctx.redis, [stream])
                await subscriber.start()
            except (RedisError, OSError) as exc:
                log.error("subscriber_restart_failed", stream=stream, error=str(exc))
                continue
            GROUPS_RECREATED.labels(stream=stream).inc()
            log.warning("subscriber_restarted", stream=stream,
                        group=subscriber.stream_sub.group,
                        reason="consumer group missing (Redis restarted or flushed?)")


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
    _on_sighup(wake.set)
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
    restart_needed = [key for key in _RESTART_ONLY
                      if getattr(new, key) != getattr(ctx.settings, key)]
    ctx.settings = new
    CONFIG_RELOADS.labels(outcome="ok").inc()
    log.info("config_reloaded", rules=len(new.rules), channels=len(new.channels),
             synonyms=len(new.synonyms))
    if restart_needed:
        log.warning("config_change_needs_restart", keys=restart_needed,
                    detail="these settings apply at start-up only")


def _on_sighup(callback: Callable[[], object]) -> None:
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, callback)


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
    middleware = RedisPrometheusMiddleware(registry=REGISTRY, app_name="sokbo",
                                           metrics_prefix="sokbo")
    broker = RedisBroker(settings.redis_url, graceful_timeout=10.0, log_level=logging.DEBUG,
                         middlewares=[middleware], logger=get_library_logger("faststream"))
    state = aioredis.from_url(settings.redis_url)
    ctx = ServiceContext(settings=settings, broker=broker, redis=state)
    for name in names:
        registry[name].load()(ctx)
    tasks: list[asyncio.Task[None]] = []
    log = get_logger()

    async def startup() -> None:
        await ensure_groups(state, sorted(set(ctx.consumed)))

    async def started() -> None:
        loops = [*ctx.background, lambda: supervise(ctx),
                 lambda: trim_streams(state, list(streams.ALL), settings.streams.maxlen)]
        if config_path is not None and ctx.reloaders:
            loops.append(lambda: watch_config(ctx, config_path))
        else:
            _on_sighup(lambda: log.info("sighup_ignored", reason="nothing to reload here"))
        for loop in loops:
            task = asyncio.create_task(loop())
            task.add_done_callback(_report_crash)
            tasks.append(task)
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

    @get(include_in_schema=False)
    async def healthz(scope: Any) -> AsgiResponse:
        return AsgiResponse(b"ok\n", 200)

    @get(include_in_schema=False)
    async def readyz(scope: Any) -> AsgiResponse:
        problems = [f"task {t.get_name()} stopped" for t in tasks if t.done()]
        problems += [f"subscriber {s.stream_sub.name} stopped"
                     for s in broker.subscribers if not s.running]
        if not await broker.ping(2.0):
            problems.append("Redis does not answer")
        return AsgiResponse(("\n".join(problems) or "ready").encode() + b"\n",
                            503 if problems else 200)

    return AsgiFastStream(
        broker,
        asgi_routes=[("/metrics", metrics_app()), ("/healthz", healthz), ("/readyz", readyz)],
        on_startup=[startup], after_startup=[started],
        on_shutdown=[shutdown], after_shutdown=[stopped],
        logger=None,
    )


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        get_logger().error("background_task_crashed", task=task.get_name(),
                           error=repr(task.exception()))


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
