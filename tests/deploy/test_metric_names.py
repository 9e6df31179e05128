"""Every metric the alerting rules and the dashboard read is one sokbo exports.

METRICS is the list the rules and the dashboard were written against: name, type and
label names. A query naming a metric or a label outside it fails here; the list itself is
checked against sokbo.observability (names, types and label names), so a renamed or
removed metric fails too instead of leaving an alert that never fires.
"""

from __future__ import annotations

import re

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from sokbo import observability
from sokbo.observability import REGISTRY
from tests.deploy.conftest import DEPLOY
from tests.deploy.test_dashboard import dashboard_queries

#: name → (type, label names), as exported by sokbo.observability
METRICS: dict[str, tuple[str, set[str]]] = {
    "sokbo_pages_fetched_total": ("counter", {"source_id", "outcome"}),
    "sokbo_source_polls_total": ("counter", {"source_id", "outcome"}),
    "sokbo_fetch_duration_seconds": ("histogram", {"kind"}),
    "sokbo_articles_parsed_total": ("counter", {"outcome"}),
    "sokbo_extraction_duration_seconds": ("histogram", set()),
    "sokbo_match_duration_seconds": ("histogram", set()),
    "sokbo_alerts_raised_total": ("counter", {"rule_id"}),
    "sokbo_near_duplicates_suppressed_total": ("counter", {"rule_id"}),
    "sokbo_notifications_sent_total": ("counter", {"kind", "outcome"}),
    "sokbo_end_to_end_latency_seconds": ("histogram", {"kind"}),
    "sokbo_stage_latency_seconds": ("histogram", {"stage"}),
    "sokbo_dead_lettered_total": ("counter", {"stage"}),
    "sokbo_stream_length": ("gauge", {"stream"}),
    "sokbo_consumer_group_lag": ("gauge", {"stream", "group"}),
    "sokbo_consumer_group_pending": ("gauge", {"stream", "group"}),
    "sokbo_pending_entries_lost_total": ("counter", {"stream", "group"}),
    "sokbo_source_last_new_article_timestamp_seconds": ("gauge", {"source_id"}),
    "sokbo_service_up": ("gauge", {"service"}),
    "sokbo_config_reloads_total": ("counter", {"outcome"}),
}
#: labels Prometheus adds to every scraped series
TARGET_LABELS = {"instance", "job"}
#: series Prometheus makes itself
BUILTIN = {"up": {"job", "instance"}, "ALERTS": {"alertname", "alertstate", "severity"}}
_HISTOGRAM_PARTS = ("_bucket", "_sum", "_count")
_SELECTOR = re.compile(r"\b(sokbo_[a-z0-9_]+|up|ALERTS)\b(?:\{([^}]*)\})?")
_BY = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")


def _rule_queries() -> list[str]:
    groups = yaml.safe_load((DEPLOY / "prometheus/rules.yaml").read_text(encoding="utf-8"))
    return [rule["expr"] for group in groups["groups"] for rule in group["rules"]]


def _recorded() -> set[str]:
    groups = yaml.safe_load((DEPLOY / "prometheus/rules.yaml").read_text(encoding="utf-8"))
    return {rule["record"] for group in groups["groups"] for rule in group["rules"]
            if "record" in rule}


def _base(name: str) -> str:
    if name in METRICS:
        return name
    for part in _HISTOGRAM_PARTS:
        stem = name.removesuffix(part)
        if stem != name and METRICS.get(stem, ("",))[0] == "histogram":
            return stem
    return name


QUERIES = [pytest.param(q, id=f"rule{i}") for i, q in enumerate(_rule_queries())] + [
    pytest.param(q, id=f"dashboard{i}") for i, q in enumerate(dashboard_queries())]


@pytest.mark.parametrize("query", QUERIES)
def test_queries_read_only_known_metrics_and_labels(query):
    for name, matchers in _SELECTOR.findall(query):
        base = _base(name)
        assert base in METRICS or name in BUILTIN, f"unknown metric {name}"
        labels = BUILTIN[name] if name in BUILTIN else METRICS[base][1] | TARGET_LABELS
        if name.endswith("_bucket"):
            labels = labels | {"le"}
        used = set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", matchers))
        assert used <= labels, f"{name} has no label {used - labels}"
    for recorded in re.findall(r"\bsokbo:[a-z0-9_:]+", query):
        assert recorded in _recorded(), f"{recorded} is recorded by no rule"


def test_grouping_labels_exist():
    every_label = set().union(*(labels for _, labels in METRICS.values()), TARGET_LABELS,
                              {"le", "alertname", "severity"})
    for query in _rule_queries() + dashboard_queries():
        for group in _BY.findall(query):
            names = {label.strip() for label in group.split(",") if label.strip()}
            assert names <= every_label, f"unknown label in {query!r}"


def test_the_list_matches_what_sokbo_exports():
    exported = {family.name: family.type for family in REGISTRY.collect()}
    # label names: prometheus_client keeps them in _labelnames (no public accessor)
    labels = {metric._name: set(metric._labelnames) for metric in vars(observability).values()
              if isinstance(metric, MetricWrapperBase)}
    for name, (kind, label_names) in METRICS.items():
        family = name.removesuffix("_total") if kind == "counter" else name
        assert exported.get(family) == kind, f"sokbo does not export {kind} {name}"
        assert labels[family] == label_names, f"{name} has labels {labels[family]}"
