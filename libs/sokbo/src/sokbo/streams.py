"""Names of every Redis stream, consumer group and key prefix sokbo uses.

Defined once here; no service spells a stream or group name itself.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

__all__ = [
    "ALERTS",
    "ALL",
    "ARTICLES",
    "DEAD_LETTER",
    "GROUPS",
    "PAGES",
    "consumer_name",
    "default_instance",
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


def default_instance(environ: Mapping[str, str]) -> str:
    """Return a name for this replica that survives a restart when the platform gives one.

    ``SOKBO_INSTANCE`` if set; else ``HOSTNAME`` when the environment sets it: the pod
    name on Kubernetes (kept when a container restarts in its pod), the container id
    on Docker; else ``hostname:pid``, unique on the host but new after every restart.
    Two live processes must not share a name (they would share their pending
    entries, and each would hand the other's back on shutdown, so entries get
    handled twice): where several run on one host with ``HOSTNAME`` exported, set
    ``SOKBO_INSTANCE`` for each.
    """
    return (environ.get("SOKBO_INSTANCE") or environ.get("HOSTNAME")
            or f"{socket.gethostname()}:{os.getpid()}")


def consumer_name(service: str, instance: str | None = None) -> str:
    """Return this replica's consumer name in a group: ``service@instance``.

    *instance* defaults to ``hostname:pid``; a stable one (see :func:`default_instance`)
    lets a restarted replica find its own pending entries (XREADGROUP … 0) at once
    instead of waiting ``delivery.claim_idle`` for the claimer.
    """
    return f"{service}@{instance or f'{socket.gethostname()}:{os.getpid()}'}"


def key(*parts: str) -> str:
    """Return a namespaced Redis key, e.g. ``key("seen", "fetv")`` → ``sokbo:seen:fetv``."""
    return ":".join(("sokbo", *parts))
