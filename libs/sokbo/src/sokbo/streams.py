"""Names of every Redis stream, consumer group and key prefix sokbo uses.

Defined once here; no service spells a stream or group name itself.
"""

from __future__ import annotations

import os
import socket

__all__ = [
    "ALERTS",
    "ALL",
    "ARTICLES",
    "DEAD_LETTER",
    "GROUPS",
    "PAGES",
    "consumer_name",
    "key",
]

PAGES = "sokbo.pages"
ARTICLES = "sokbo.articles"
ALERTS = "sokbo.alerts"
DEAD_LETTER = "sokbo.dead-letter"

#: every stream sokbo writes, capped with MAXLEN ~ by every service
ALL = (PAGES, ARTICLES, ALERTS, DEAD_LETTER)

#: consumer group of each stream: named after the service that consumes it
GROUPS: dict[str, str] = {
    PAGES: "parser",
    ARTICLES: "keyword-alert",
    ALERTS: "notifier",
}


def consumer_name(service: str, instance: str | None = None) -> str:
    """Return this process's consumer name in a group: ``service@hostname:pid``.

    *instance* replaces ``hostname:pid`` (tests run several replicas in one process).
    """
    return f"{service}@{instance or f'{socket.gethostname()}:{os.getpid()}'}"


def key(*parts: str) -> str:
    """Return a namespaced Redis key, e.g. ``key("seen", "fetv")`` → ``sokbo:seen:fetv``."""
    return ":".join(("sokbo", *parts))
