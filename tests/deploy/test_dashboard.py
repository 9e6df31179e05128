"""deploy/grafana: the dashboard shows what the issue asks for, every query parses, the
provisioning of the compose stack points at it, and Kubernetes gets the same JSON."""

from __future__ import annotations

import json
import re

import yaml

from tests.deploy.conftest import DEPLOY, by_kind

DASHBOARD = DEPLOY / "grafana/dashboards/sokbo.json"
#: Grafana's own variables, replaced by a plausible value so promtool can parse a query
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "30s", "$__range": "6h"}


def _dashboard() -> dict:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def _panels() -> list[dict]:
    return [p for p in _dashboard()["panels"] if p["type"] != "row"]


def dashboard_queries() -> list[str]:
    """Return every PromQL expression of the dashboard."""
    return [t["expr"] for p in _panels() for t in p.get("targets", [])]


def test_it_has_every_view_an_operator_needs():
    rows = [p["title"] for p in _dashboard()["panels"] if p["type"] == "row"]
    assert rows == ["Throughput per stage", "Latency per stage",
                    "Streams and consumer groups", "Dead letters", "Sources",
                    "Alerts per rule", "Operational alerts"]
    queries = "\n".join(dashboard_queries())
    for metric in ("sokbo_pages_fetched_total", "sokbo_articles_parsed_total",
                   "sokbo_alerts_raised_total", "sokbo_notifications_sent_total",
                   "sokbo_stage_latency_seconds_bucket", "sokbo_end_to_end_latency_seconds_bucket",
                   "sokbo_consumer_group_lag", "sokbo_consumer_group_pending",
                   'sokbo_stream_length{stream="sokbo.dead-letter"}',
                   "sokbo_dead_lettered_total",
                   "sokbo_source_last_new_article_timestamp_seconds"):
        assert metric in queries
    assert "sum by (rule_id)" in queries  # alerts per rule


def test_panels_are_well_formed():
    dashboard = _dashboard()
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert dashboard["uid"] == "sokbo-pipeline"
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "source"} <= variables
    for panel in _panels():
        assert panel["title"] and panel["description"], panel["id"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert ref_ids and len(ref_ids) == len(set(ref_ids))


def test_every_query_parses(tool, tmp_path):
    # promtool parses PromQL only in rule files: make one recording rule per query
    rules = []
    for index, query in enumerate(dashboard_queries()):
        for name, value in GRAFANA_VARIABLES.items():
            query = query.replace(name, value)
        query = re.sub(r"\$\{?source\}?", ".*", query)
        assert "$" not in query, query
        rules.append({"record": f"dashboard:query_{index}", "expr": query})
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = tool("promtool", "check", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_grafana_provisions_the_prometheus_data_source_and_the_dashboard():
    provisioning = DEPLOY / "grafana/provisioning"
    (source,) = yaml.safe_load((provisioning / "datasources/prometheus.yaml").read_text())[
        "datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    (provider,) = yaml.safe_load((provisioning / "dashboards/sokbo.yaml").read_text())[
        "providers"]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards/sokbo"


def test_kubernetes_gets_the_same_dashboard(render):
    config_map = by_kind(render("overlays/prod"), "ConfigMap")["sokbo-grafana-dashboard"]
    assert config_map["metadata"]["labels"] == {"grafana_dashboard": "1"}
    assert json.loads(config_map["data"]["sokbo.json"]) == _dashboard()
