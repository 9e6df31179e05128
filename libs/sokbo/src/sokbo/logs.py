"""structlog set-up: JSON lines on stdout in production, pretty output on a TTY.

Follows structlog's "production-ready" recipe: a filtering bound logger, context
variables merged in, ISO-8601 UTC timestamps and ``JSONRenderer`` with orjson
writing bytes.  Every event carries ``service`` and ``event``; handlers bind the
ids that let one article be followed across services (``source_id``,
``article_id``, ``alert_id``).
"""

from __future__ import annotations

import logging
import sys

import orjson
import structlog

__all__ = ["configure_logging", "get_library_logger", "get_logger", "quiet_extraction_libraries"]

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


def configure_logging(level: str = "info", *, service: str, json: bool | None = None) -> None:
    """Configure structlog (and the stdlib loggers of libraries) for one process.

    Args:
        level: one of debug, info, warning, error, critical.
        service: the value of the ``service`` key on every event.
        json: force JSON lines (True) or console output (False); default: JSON
            unless stdout is a TTY.
    """
    numeric = _LEVELS[level.lower()]
    use_json = (not sys.stdout.isatty()) if json is None else json
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if use_json:
        renderer: list = [
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ]
        factory: structlog.typing.WrappedLogger = structlog.BytesLoggerFactory()
    else:
        renderer = [structlog.dev.ConsoleRenderer()]
        factory = structlog.PrintLoggerFactory()
    structlog.configure(
        processors=[*shared, *renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=factory,
        cache_logger_on_first_use=False,
    )
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service)
    # libraries (faststream, uvicorn, httpx) log through the stdlib: keep them terse
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for name in ("httpx", "httpcore", "charset_normalizer"):
        logging.getLogger(name).setLevel(logging.WARNING)
    quiet_extraction_libraries()


def quiet_extraction_libraries() -> None:
    """Silence trafilatura, htmldate, courlan and jusText: they log ordinary bad pages
    as warnings and errors (the parser reports what it makes of a page itself).

    Called by :func:`configure_logging`, and in each of the parser's extraction
    processes, which do not inherit it.
    """
    for name in ("trafilatura", "htmldate", "courlan", "justext"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def get_logger(**bind: object) -> structlog.typing.FilteringBoundLogger:
    """Return a structlog logger with *bind* key/values on every event."""
    return structlog.get_logger().bind(**bind)


def get_library_logger(component: str, level: int = logging.WARNING
                       ) -> structlog.typing.FilteringBoundLogger:
    """Return a logger for a library's own messages (FastStream's per-message chatter).

    It writes through the same processors as every sokbo event but drops anything
    below *level* (default WARNING), whatever the service's log level.
    """
    config = structlog.get_config()
    return structlog.wrap_logger(
        config["logger_factory"](), processors=config["processors"],
        wrapper_class=structlog.make_filtering_bound_logger(level),
    ).bind(component=component)
