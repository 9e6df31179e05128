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



# notifier: Slack pacing and coalescing, e-mail digests (channel ids come from the config)
SLACK_MESSAGES = Counter(
    "sokbo_slack_messages_total", "Messages posted to Slack webhooks, by channel, kind "
    "(single, digest) and outcome (sent, rate_limited, retryable_error, permanent_error).",
    ["channel_id", "kind", "outcome"], registry=REGISTRY)
SLACK_PACING_WAIT = Counter(
    "sokbo_slack_pacing_wait_seconds_total", "Time Slack senders waited for their channel's "
    "token bucket (max_per_second, Retry-After and backoff pauses), by channel.",
    ["channel_id"], registry=REGISTRY)
NOTIFIER_WAITING = Gauge(
    "sokbo_notifier_waiting_alerts", "Alerts taken from sokbo.alerts that wait for their "
    "channel (a Slack channel's queue, or e-mail digests not yet sent), by channel.",
    ["channel_id"], registry=REGISTRY)
EMAIL_DIGESTS = Counter(
    "sokbo_email_digests_total", "E-mail digests, by channel and outcome (sent, "
    "retryable_error, permanent_error).", ["channel_id", "outcome"], registry=REGISTRY)

__all__ += ["EMAIL_DIGESTS", "NOTIFIER_WAITING", "SLACK_MESSAGES", "SLACK_PACING_WAIT"]


# consumer groups: recovery, trimming and lag (labels: stream and group names from streams.py)
STREAM_ERRORS = Counter(
    "sokbo_stream_errors_total", "Errors that stopped a stream subscriber, by stream and "
    "error (NOGROUP: its consumer group vanished, Redis restarted or flushed).",
    ["stream", "error"], registry=REGISTRY)
PENDING_ENTRIES_LOST = Counter(
    "sokbo_pending_entries_lost_total", "Pending entries found deleted (trimmed by MAXLEN, "
    "or XDEL) before their group acked them, by stream and group: each was lost.",
    ["stream", "group"], registry=REGISTRY)
PENDING_ENTRIES_RESUMED = Counter(
    "sokbo_pending_entries_resumed_total", "Entries a restarted replica found pending under "
    "its own consumer name and handled again at start, by stream.", ["stream"],
    registry=REGISTRY)
CONSUMERS_REMOVED = Counter(
    "sokbo_consumers_removed_total", "Consumers with no pending entries removed from their "
    "group after delivery.consumer_expiry without reading, by stream and group.",
    ["stream", "group"], registry=REGISTRY)
STREAM_LENGTH = Gauge(
    "sokbo_stream_length", "Entries in the stream (XLEN), by stream.", ["stream"],
    registry=REGISTRY)
CONSUMER_GROUP_LAG = Gauge(
    "sokbo_consumer_group_lag", "Entries of the stream not yet delivered to the group "
    "(XINFO GROUPS lag), by stream and group; near streams.maxlen means entries are about "
    "to be trimmed unread.", ["stream", "group"], registry=REGISTRY)
CONSUMER_GROUP_PENDING = Gauge(
    "sokbo_consumer_group_pending", "Entries delivered to the group and not acked yet, "
    "by stream and group.", ["stream", "group"], registry=REGISTRY)

__all__ += ["CONSUMERS_REMOVED", "CONSUMER_GROUP_LAG", "CONSUMER_GROUP_PENDING",
            "PENDING_ENTRIES_LOST", "PENDING_ENTRIES_RESUMED", "STREAM_ERRORS",
            "STREAM_LENGTH"]


# per-stage latency and domain timings (crawler, parser, keyword-alert)
STAGE_LATENCY = Histogram(
    "sokbo_stage_latency_seconds", "Time an article spends between two points of the "
    "pipeline, by stage: publication_to_discovery (the source's date to the crawler seeing "
    "the link), discovery_to_fetch, fetch_to_parse, parse_to_match (alert raised), "
    "match_to_delivery (channel accepted); discovery to delivery end to end is "
    "sokbo_end_to_end_latency_seconds.", ["stage"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 21600),
    registry=REGISTRY)
EXTRACTION_DURATION = Histogram(
    "sokbo_extraction_duration_seconds", "Time to decode and extract one page (parser).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5), registry=REGISTRY)
EXTRACTION_FULL = Counter(
    "sokbo_extraction_full_total", "Pages on which trafilatura's fast mode found too little "
    "text and its full extraction (readability and jusText compared) found more (parser).",
    registry=REGISTRY)
EXTRACTION_WORKER_RESTARTS = Counter(
    "sokbo_extraction_worker_restarts_total", "Times the parser's pool of extraction "
    "processes was restarted because one of them died (parser.workers above 1).",
    registry=REGISTRY)
MATCH_DURATION = Histogram(
    "sokbo_match_duration_seconds", "Time to evaluate every rule against one article "
    "(keyword-alert).", buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                 0.05, 0.1), registry=REGISTRY)
FETCH_RETRIES = Counter(
    "sokbo_fetch_retries_total", "HTTP fetches retried after a network error or a 5xx "
    "without Retry-After (jittered exponential backoff).", registry=REGISTRY)
SOURCE_LAST_NEW = Gauge(
    "sokbo_source_last_new_article_timestamp_seconds", "Unix time a source last yielded a "
    "new article (read from Redis, so every crawler replica reports the same); "
    "time() minus it is the source's silence.", ["source_id"], registry=REGISTRY)

__all__ += ["EXTRACTION_DURATION", "EXTRACTION_FULL", "EXTRACTION_WORKER_RESTARTS",
            "FETCH_RETRIES", "MATCH_DURATION", "SOURCE_LAST_NEW", "STAGE_LATENCY"]
