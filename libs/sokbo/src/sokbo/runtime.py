"""The shell every service runs in: one broker, its consumer groups, health and reload.

A service is a function ``register(ctx: ServiceContext) -> None`` exposed under the
``sokbo.services`` entry-point group (see :mod:`sokbo.context`).  :func:`run` builds
one FastStream ``RedisBroker`` for the process, registers the requested services on
it and serves ``/metrics``, ``/healthz`` and ``/readyz`` on the metrics port.  While
it runs it keeps the consumer groups alive (a Redis restart or flush that drops a
group — NOGROUP — gets it recreated and the subscriber restarted, with backoff),
looks after the streams and groups (:func:`sokbo.groups.upkeep`: caps, pending
entries lost to trimming, lag, idle consumers), and reloads the config file on
change or SIGHUP.

Start and stop (B26): before the broker starts, the replica notes its own pending
entries (a previous run under the same consumer name left them) and handles them
first; on SIGTERM FastStream stops reading, waits up to ``delivery.shutdown_grace``
for the entries in flight (acked when done), and whatever is still pending is
handed to the other replicas (:meth:`ServiceContext.hand_back`); the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
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

from sokbo import groups, streams
from sokbo.config import Settings, load_settings
from sokbo.context import ServiceContext, ensure_groups
from sokbo.errors import ConfigError, StartupError
from sokbo.logs import get_library_logger, get_logger
from sokbo.observability import (
    CONFIG_RELOADS,
    GROUPS_RECREATED,
    REGISTRY,
    SERVICE_UP,
    STREAM_ERRORS,
    metrics_app,
)

__all__ = ["SERVICES", "available_services", "build_app", "run", "watch_config"]

SERVICES = ("crawler", "parser", "keyword-alert", "notifier")
#: settings a running process cannot change; a reload that changes them says so
_RESTART_ONLY = ("redis_url", "metrics_port", "streams", "crawler", "parser", "delivery")


def available_services() -> dict[str, Any]:
    """Return the installed services' entry points (``sokbo.services`` group) by name."""
    return {ep.name: ep for ep in entry_points(group="sokbo.services")}


async def supervise(ctx: ServiceContext, period: float = 2.0, max_delay: float = 60.0
                    ) -> None:
    """Restart any subscriber that stopped, recreating its consumer group first (B21).

    FastStream stops a stream subscriber for good when its group vanished (NOGROUP:
    Redis restarted without persistence, flushed, or the stream was deleted).  This
    looks every *period* seconds, counts the stop (``sokbo_stream_errors_total``,
    ``error="NOGROUP"``), recreates the group at id 0 (``XGROUP CREATE … MKSTREAM``)
    and starts the subscriber again.  A restart that fails (Redis still away) is
    retried after *period*, then twice as long each time up to *max_delay* seconds:
    logged once per attempt, never in a hot loop.  ``/readyz`` is 503 meanwhile.
    """
    log = get_logger()
    loop = asyncio.get_running_loop()
    retry: dict[int, tuple[float, float, int]] = {}  # subscriber → (next try, delay, tries)
    while True:
        await asyncio.sleep(period)
        for subscriber in ctx.broker.subscribers:
            if subscriber.running:
                retry.pop(id(subscriber), None)
                continue
            stream = subscriber.stream_sub.name
            if id(subscriber) not in retry:
                STREAM_ERRORS.labels(stream=stream, error="NOGROUP").inc()
                retry[id(subscriber)] = (loop.time(), period, 0)
            at, delay, tries = retry[id(subscriber)]
            if loop.time() < at:
                continue
            try:
                await ensure_groups(ctx.redis, [stream])
                await subscriber.start()
            except (RedisError, OSError) as exc:
                groups.raise_if_cancelled()
                retry[id(subscriber)] = (loop.time() + delay, min(2 * delay, max_delay),
                                         tries + 1)
                log.error("subscriber_restart_failed", stream=stream, error=str(exc),
                          attempt=tries + 1, retry_in_s=round(delay, 1))
                continue
            retry.pop(id(subscriber), None)
            GROUPS_RECREATED.labels(stream=stream).inc()
            log.warning("subscriber_restarted", stream=stream,
                        group=subscriber.stream_sub.group, consumer=subscriber.stream_sub.consumer,
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


def build_app(settings: Settings, names: list[str], config_path: Path | None = None, *,
              instance: str | None = None, upkeep_period: float = 10.0) -> AsgiFastStream:
    """Build one FastStream ASGI app running the services *names* on one broker.

    *instance* names this replica in its consumer groups (``service@instance``);
    default :func:`sokbo.streams.default_instance` (``SOKBO_INSTANCE``, else
    ``HOSTNAME``, else ``hostname:pid``).  *upkeep_period* is the seconds between two rounds of
    :func:`sokbo.groups.upkeep`.

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
    broker = RedisBroker(settings.redis_url, graceful_timeout=settings.delivery.shutdown_grace,
                         log_level=logging.DEBUG, middlewares=[middleware],
                         logger=get_library_logger("faststream"))
    state = aioredis.from_url(settings.redis_url)
    ctx = ServiceContext(settings=settings, broker=broker, redis=state,
                         instance=instance or streams.default_instance(os.environ))
    for name in names:
        registry[name].load()(ctx)
    tasks: list[asyncio.Task[None]] = []
    resuming: list[asyncio.Task[int]] = []
    left: list = []  # what a previous run under these consumer names left pending
    log = get_logger()

    async def startup() -> None:  # before the subscribers start
        await ensure_groups(state, sorted(set(ctx.consumed)))
        for stream in sorted(set(ctx.consumed)):  # see what was lost before the claimer does
            await groups.trim_and_report(state, stream, settings.streams.maxlen)
        left.extend(await ctx.take_own_pending())

    async def started() -> None:
        if left:  # a previous run under this name left entries: handle them first
            resuming.append(asyncio.create_task(ctx.resume_pending(left)))
            resuming[0].add_done_callback(_report_crash)
        loops = [*ctx.background, lambda: supervise(ctx),
                 lambda: groups.upkeep(state, list(streams.ALL), maxlen=settings.streams.maxlen,
                                       consumer_expiry=settings.delivery.consumer_expiry,
                                       period=upkeep_period)]
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
        log.info("service_started", services=names, metrics_port=settings.metrics_port,
                 instance=ctx.instance)

    async def shutdown() -> None:  # before the broker stops: it finishes in-flight entries
        await _cancel(tasks)

    async def stopped() -> None:  # after: nothing is read any more
        await _cancel(resuming)
        await ctx.hand_back()
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


async def _cancel(tasks: list[asyncio.Task[Any]], timeout: float = 5.0) -> None:
    """Cancel *tasks* and wait for them, at most *timeout* seconds (one that does not
    stop is logged and left behind rather than holding up the shutdown)."""
    for task in tasks:
        task.cancel()
    if not tasks:
        return
    _, stuck = await asyncio.wait(tasks, timeout=timeout)
    for task in stuck:
        get_logger().warning("task_did_not_stop", task=task.get_name(), waited_s=timeout)


def _report_crash(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        get_logger().error("background_task_crashed", task=task.get_name(),
                           error=repr(task.exception()))


async def run(settings: Settings, names: list[str], config_path: Path | None = None, *,
              instance: str | None = None) -> None:
    """Run services *names* until SIGTERM/SIGINT, serving metrics on ``settings.metrics_port``.

    *instance*: this replica's name in its consumer groups (see :func:`build_app`).

    Raises:
        ConfigError: the metrics port is taken or a service is unknown.
    """
    _check_port_free(settings.metrics_port)
    await _check_redis(settings.redis_url)
    app = build_app(settings, names, config_path, instance=instance)
    # uvicorn handles SIGTERM/SIGINT (graceful shutdown), then re-raises the signal to the
    # handler that was installed before it; a no-op one lets the process exit 0.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)
    await app.run(log_level=30, run_extra_options={"host": "0.0.0.0",
                                                   "port": settings.metrics_port,
                                                   "access_log": "false"})
    await _stop_leftovers()


async def _stop_leftovers(timeout: float = 5.0) -> None:
    """Cancel tasks that outlived the app; exit at once (0) if some do not stop.

    A service's background loop may leave tasks behind (a gather returns at the first
    cancelled child) and a task that turns its cancellation into another error and
    carries on would keep ``asyncio.run`` waiting for ever, so the process would
    never exit.  Everything that matters is done by now (in-flight entries finished
    or left pending, pending entries handed back), so after *timeout* seconds such
    tasks are logged as ``task_did_not_stop`` and the process ends with ``os._exit``.
    """
    leftovers = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    if not leftovers:
        return
    for task in leftovers:
        task.cancel()
    _, stuck = await asyncio.wait(leftovers, timeout=timeout)
    if stuck:
        names = sorted({getattr(t.get_coro(), "__qualname__", t.get_name()) for t in stuck})
        get_logger().error("task_did_not_stop", tasks=names, waited_s=timeout, exiting=True)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(0)
