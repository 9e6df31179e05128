"""deploy/prometheus: promtool accepts the rules and the compose Prometheus config, each
alert's unit tests pass (tests/deploy/rules_test.yaml), and the Kubernetes PrometheusRule
carries exactly the same rules."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from tests.deploy.conftest import DEPLOY, ROOT, by_kind

RULES = DEPLOY / "prometheus/rules.yaml"
RULE_TESTS = Path(__file__).with_name("rules_test.yaml")


def _rules() -> list[dict]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_promtool_accepts_the_rules(tool):
    done = tool("promtool", "check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_accepts_the_compose_prometheus_config(tool):
    done = tool("promtool", "check", "config", str(DEPLOY / "prometheus/prometheus.yaml"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_each_rule_passes_its_unit_tests(tool):
    done = tool("promtool", "test", "rules", str(RULE_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_a_case_that_fires_and_one_that_does_not():
    alerts = {rule["alert"] for rule in _rules() if "alert" in rule}
    fires, silent = set(), set()
    for case in yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check.get("exp_alerts") else silent).add(check["alertname"])
    assert alerts - fires == set(), "alerts never shown to fire"
    assert alerts - silent == set(), "alerts never shown to stay quiet"


def test_every_alert_says_how_bad_and_what_it_means():
    for rule in _rules():
        if "alert" in rule:
            assert rule["alert"].startswith("Sokbo")
            assert rule["labels"]["severity"] in {"warning", "critical"}
            assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_the_prometheus_rule_is_the_rules_file(render):
    (rule,) = by_kind(render("overlays/prod"), "PrometheusRule").values()
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]


def test_generated_monitoring_files_are_up_to_date():
    done = subprocess.run([sys.executable, str(ROOT / "scripts/sync_monitoring.py"), "--check"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
