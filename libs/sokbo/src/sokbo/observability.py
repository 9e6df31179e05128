"""Prometheus metrics and health endpoints shared by every service.

Names follow Prometheus conventions: ``sokbo_`` prefix, base units in the name
(``_seconds``, ``_bytes``, ``_total``), labels with bounded values only (source
and rule ids come from the config; outcomes from a fixed set).  Consume and
publish metrics for every stream come from FastStream's
``RedisPrometheusMiddleware``; the ones here count what the
middleware cannot see.  The middleware is given the ``sokbo`` prefix, so its
metrics are ``sokbo_received_messages_total``, ``sokbo_published_messages_total``
and so on, per stream.  See https://prometheus.io/docs/practices/naming/.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_asgi_app

__all__ = [
    "ALERTS_RAISED",
    "ARTICLES_PARSED",
    "CONFIG_RELOADS",
    "DEAD_LETTERED",
    "END_TO_END_LATENCY",
    "FETCH_DURATION",
    "GROUPS_RECREATED",
    "NEAR_DUPLICATES_SUPPRESSED",
    "NEAR_DUPLICATE_DISTANCE",
    "NOTIFICATIONS_SENT",
    "PAGES_FETCHED",
    "PAGE_BYTES",
    "REGISTRY",
    "RULES_LOADED",
    "SITEMAPS_FAILED",
    "SOURCE_POLLS",
    "SERVICE_UP",
    "metrics_app",
]

REGISTRY = CollectorRegistry(auto_describe=True)

_LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300, 600)

SOURCE_POLLS = Counter(
    "sokbo_source_polls_total", "Source polls (feeds, sitemaps, listing pages) by source "
    "and outcome (ok, error; not_modified for a 304, unchanged for an identical body).",
    ["source_id", "outcome"], registry=REGISTRY)
SITEMAPS_FAILED = Counter(
    "sokbo_sitemaps_failed_total", "Child sitemaps that could not be fetched or read "
    "(the other children of the index are still read).", ["source_id"], registry=REGISTRY)
PAGES_FETCHED = Counter(
    "sokbo_pages_fetched_total", "Article page fetches by source and outcome "
    "(ok, http_error, too_large, network_error, robots_disallowed, ssrf_refused, error).",
    ["source_id", "outcome"],
    registry=REGISTRY)
FETCH_DURATION = Histogram(
    "sokbo_fetch_duration_seconds", "Time to fetch one document, by kind (feed, sitemap, "
    "listing, article).",
    ["kind"], registry=REGISTRY)
PAGE_BYTES = Histogram(
    "sokbo_page_size_bytes", "Size of fetched article pages.",
    buckets=(1e4, 5e4, 1e5, 2.5e5, 5e5, 1e6, 2.5e6, 5e6), registry=REGISTRY)
ARTICLES_PARSED = Counter(
    "sokbo_articles_parsed_total", "Pages handled by the parser, by outcome "
    "(ok, no_text).", ["outcome"], registry=REGISTRY)
ALERTS_RAISED = Counter(
    "sokbo_alerts_raised_total", "Alerts raised, by rule.", ["rule_id"], registry=REGISTRY)
NOTIFICATIONS_SENT = Counter(
    "sokbo_notifications_sent_total", "Notification attempts by channel kind and outcome "
    "(sent, duplicate, retryable_error, permanent_error).", ["kind", "outcome"],
    registry=REGISTRY)
END_TO_END_LATENCY = Histogram(
    "sokbo_end_to_end_latency_seconds", "From the feed entry's discovery to the notification "
    "being accepted, by channel kind.", ["kind"], buckets=_LATENCY_BUCKETS, registry=REGISTRY)
DEAD_LETTERED = Counter(
    "sokbo_dead_lettered_total", "Entries sent to sokbo.dead-letter, by stage.", ["stage"],
    registry=REGISTRY)
CONFIG_RELOADS = Counter(
    "sokbo_config_reloads_total", "Config reloads (file change or SIGHUP), by outcome "
    "(ok, refused).", ["outcome"], registry=REGISTRY)
RULES_LOADED = Gauge(
    "sokbo_rules_loaded", "Rules compiled into keyword-alert's automaton.", registry=REGISTRY)
GROUPS_RECREATED = Counter(
    "sokbo_consumer_groups_recreated_total", "Subscribers restarted after their consumer "
    "group vanished (NOGROUP), by stream.", ["stream"], registry=REGISTRY)
SERVICE_UP = Gauge(
    "sokbo_service_up", "1 while the service runs in this process.", ["service"],
    registry=REGISTRY)


# near-duplicate stories (keyword-alert): one alert per (story, rule) within the window
NEAR_DUPLICATES_SUPPRESSED = Counter(
    "sokbo_near_duplicates_suppressed_total", "Alerts not raised because a near-duplicate "
    "of the article (same story) already raised the rule's alert, by rule; each article "
    "counted once.", ["rule_id"], registry=REGISTRY)
NEAR_DUPLICATE_DISTANCE = Histogram(
    "sokbo_near_duplicate_distance_bits", "Hamming distance between a suppressed article's "
    "fingerprint and that of the article that raised the alert (of 64 bits).",
    buckets=(0, 1, 2, 3, 4, 6, 8, 10, 12, 16, 24), registry=REGISTRY)

def metrics_app():
    """Return the ASGI app serving this process's registry in Prometheus text format."""
    return make_asgi_app(registry=REGISTRY)

