"""deploy/k8s: every kustomization renders, every object is valid, the pods are hardened.

Built-in kinds are validated against the Kubernetes OpenAPI schemas (kubernetes-validate,
strict: an unknown field is an error). KEDA's ScaledObject and TriggerAuthentication and
the Prometheus Operator's ServiceMonitor and PrometheusRule are validated against JSON
schemas of their CRDs, made strict the same way: scripts/tools.sh writes them into
.run/tools/crd-schemas from the wheels cloudcoil-models-keda and
cloudcoil-models-prometheus-operator (models generated from the projects' published CRDs).
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from sokbo import streams
from sokbo.config import load_settings
from tests.deploy.conftest import KUSTOMIZATIONS, ROOT, SERVICES, by_kind

#: oldest Kubernetes the manifests support (matchLabelKeys in topology spread: 1.27+)
K8S_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
CRD_SCHEMAS = ROOT / ".run/tools/crd-schemas"
CUSTOM_KINDS = {
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}
CONSUMERS = {group: stream for stream, group in streams.GROUPS.items()}


def _strict(schema: Any) -> Any:
    """Forbid properties a schema does not name, everywhere (as kubectl --validate=strict)."""
    if isinstance(schema, dict):
        schema = {key: _strict(value) for key, value in schema.items()}
        if "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        schema = [_strict(item) for item in schema]
    return schema


@functools.cache
def _crd_validator(api_version: str, kind: str) -> jsonschema.Draft202012Validator:
    path = CRD_SCHEMAS / f"{api_version.replace('/', '_')}_{kind}.json"
    if not path.is_file():
        pytest.fail(f"{path.relative_to(ROOT)} is missing: run scripts/tools.sh (installs "
                    "the CRD models from PyPI and writes their schemas)", pytrace=False)
    return jsonschema.Draft202012Validator(_strict(json.loads(path.read_text())))


def _validate(obj: dict[str, Any]) -> list[str]:
    """Return the schema errors of one object (empty when it is valid)."""
    key = (obj["apiVersion"], obj["kind"])
    if key in CUSTOM_KINDS:
        return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                for e in _crd_validator(*key).iter_errors(obj)]
    errors = []
    for version in K8S_VERSIONS:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(f"no schema for {key} in Kubernetes {version}: an unknown kind?")
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"Kubernetes {version}: {exc.message} at "
                          f"{'/'.join(map(str, exc.absolute_path))}")
    return errors


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_object_is_valid(render, kustomization):
    objects = render(kustomization)
    assert objects
    problems = {f"{o['kind']}/{o['metadata']['name']}": errs
                for o in objects if (errs := _validate(o))}
    assert not problems


def test_strict_validation_catches_a_misspelt_field(render):
    deployment = copy.deepcopy(by_kind(render("base"), "Deployment")["sokbo-parser"])
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"][
        "readOnlyRootFilesytem"] = True
    assert _validate(deployment)
    scaled = copy.deepcopy(by_kind(render("overlays/prod"), "ScaledObject")["sokbo-parser"])
    scaled["spec"]["minReplicas"] = 2
    assert _validate(scaled)
    del scaled["spec"]["minReplicas"], scaled["spec"]["triggers"]
    assert any("triggers" in error for error in _validate(scaled))


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_each_service_has_a_hardened_deployment_with_probes_and_resources(render,
                                                                          kustomization):
    deployments = by_kind(render(kustomization), "Deployment")
    assert sorted(deployments) == sorted(f"sokbo-{s}" for s in SERVICES)
    for service in SERVICES:
        spec = deployments[f"sokbo-{service}"]["spec"]["template"]["spec"]
        container = _container(deployments[f"sokbo-{service}"])
        assert container["args"][:2] == ["run", service]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] != 0
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert spec["automountServiceAccountToken"] is False
        hardening = container["securityContext"]
        assert hardening["readOnlyRootFilesystem"] is True
        assert hardening["allowPrivilegeEscalation"] is False
        assert hardening["capabilities"]["drop"] == ["ALL"]
        for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"),
                            ("readinessProbe", "/readyz")):
            assert container[probe]["httpGet"] == {"path": path, "port": "metrics"}
        for kind in ("requests", "limits"):
            assert set(container["resources"][kind]) == {"cpu", "memory"}
        spreads = {c["topologyKey"] for c in spec["topologySpreadConstraints"]}
        assert spreads == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
        assert container["ports"] == [{"name": "metrics", "containerPort": 9464,
                                       "protocol": "TCP"}]
        assert "--metrics-port" in container["args"]
        assert container["args"][container["args"].index("--metrics-port") + 1] == "9464"


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_each_deployment_has_its_service_account_metrics_service_and_disruption_budget(
        render, kustomization):
    objects = render(kustomization)
    accounts, services = by_kind(objects, "ServiceAccount"), by_kind(objects, "Service")
    budgets = by_kind(objects, "PodDisruptionBudget")
    for name, deployment in by_kind(objects, "Deployment").items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= labels.items()
        assert deployment["spec"]["template"]["spec"]["serviceAccountName"] in accounts
        assert services[name]["spec"]["selector"] == selector
        assert services[name]["spec"]["ports"] == [
            {"name": "metrics", "port": 9464, "targetPort": "metrics", "protocol": "TCP"}]
        assert services[name]["metadata"]["labels"]["app.kubernetes.io/part-of"] == "sokbo"
        assert budgets[name]["spec"]["selector"]["matchLabels"] == selector
        # maxUnavailable, not minAvailable: a single replica must not block a node drain
        assert budgets[name]["spec"] == {"maxUnavailable": 1,
                                         "selector": {"matchLabels": selector}}


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("valueFrom", e.get("value")) for e in container["env"]}


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_pods_take_the_secrets_redis_url_and_their_pod_name_from_kubernetes(render,
                                                                          kustomization):
    for deployment in by_kind(render(kustomization), "Deployment").values():
        env = _env(_container(deployment))
        # the consumer name is service@<pod name> (sokbo.streams.default_instance)
        assert env["HOSTNAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
        assert env["REDIS_URL"] == {"secretKeyRef": {"name": "sokbo-redis", "key": "url"}}
        for name in ("SLACK_WEBHOOK_URL", "SMTP_PASSWORD"):
            assert env[name] == {"secretKeyRef": {"name": "sokbo-secrets", "key": name}}


def _config(objects: list[dict[str, Any]], tmp_path: Path, monkeypatch):
    (config_map,) = [o for o in objects if o["kind"] == "ConfigMap"
                     and o["metadata"]["name"] == "sokbo-config"]
    path = tmp_path / "sokbo.yaml"
    path.write_text(config_map["data"]["sokbo.yaml"], encoding="utf-8")
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T0/B0/x")
    monkeypatch.setenv("SMTP_PASSWORD", "secret")
    monkeypatch.setenv("REDIS_URL", "redis://redis:6379/0")
    return load_settings(path)


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_the_config_map_is_a_valid_config_and_pods_outlive_its_shutdown_grace(
        render, kustomization, tmp_path, monkeypatch):
    objects = render(kustomization)
    settings = _config(objects, tmp_path, monkeypatch)
    assert settings.metrics_port == 9464
    for deployment in by_kind(objects, "Deployment").values():
        spec = deployment["spec"]["template"]["spec"]
        # shutdown_grace for in-flight entries, then handing pending entries back and
        # closing: at least 10 s more before Kubernetes sends SIGKILL
        assert spec["terminationGracePeriodSeconds"] >= settings.delivery.shutdown_grace + 10
        mounts = {m["name"]: m for m in _container(deployment)["volumeMounts"]}
        # a directory mount, not subPath: an edited ConfigMap reaches the pod (live reload)
        assert mounts["config"] == {"name": "config", "mountPath": "/etc/sokbo",
                                    "readOnly": True}
        assert _container(deployment)["args"][2:4] == ["--config", "/etc/sokbo/sokbo.yaml"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert volumes["config"]["configMap"]["name"] == "sokbo-config"


def test_dev_runs_one_replica_each_on_its_own_append_only_redis(render, tmp_path,
                                                                 monkeypatch):
    objects = render("overlays/dev")
    assert {d["spec"]["replicas"] for d in by_kind(objects, "Deployment").values()} == {1}
    redis = by_kind(objects, "StatefulSet")["redis"]
    assert redis["spec"]["replicas"] == 1
    args = _container(redis)["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    assert args[args.index("--maxmemory-policy") + 1] == "noeviction"
    assert redis["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    assert by_kind(objects, "Service")["redis"]["spec"]["clusterIP"] == "None"
    secrets = by_kind(objects, "Secret")
    assert set(secrets["sokbo-redis"]["data"]) == {"url", "address", "password"}
    assert set(secrets["sokbo-secrets"]["data"]) == {"SLACK_WEBHOOK_URL", "SMTP_PASSWORD"}
    settings = _config(objects, tmp_path, monkeypatch)
    assert {c.kind for c in settings.channels} == {"console"}


def test_prod_takes_redis_from_a_secret_and_runs_more_replicas(render):
    objects = render("overlays/prod")
    assert not by_kind(objects, "Secret")  # created by the operator, never committed
    assert not by_kind(objects, "StatefulSet")
    deployments = by_kind(objects, "Deployment")
    assert deployments["sokbo-crawler"]["spec"]["replicas"] >= 2
    scaled = by_kind(objects, "ScaledObject")
    for name, scaled_object in scaled.items():
        assert scaled_object["spec"]["minReplicaCount"] >= 2
        # KEDA owns the consumers' replica count: none in the Deployment to fight over
        assert "replicas" not in deployments[name]["spec"]
    images = {_container(d)["image"] for d in deployments.values()}
    assert len(images) == 1 and not images.pop().endswith(":latest")  # one pinned image


def test_keda_scales_each_consumer_on_its_own_group_lag(render):
    objects = render("overlays/prod")
    scaled = by_kind(objects, "ScaledObject")
    assert sorted(scaled) == sorted(f"sokbo-{group}" for group in CONSUMERS)
    deployments = by_kind(objects, "Deployment")
    (auth,) = by_kind(objects, "TriggerAuthentication").values()
    for name, scaled_object in scaled.items():
        group = name.removeprefix("sokbo-")
        spec = scaled_object["spec"]
        assert spec["scaleTargetRef"] == {"name": name}
        assert spec["minReplicaCount"] >= 1  # never to 0: replicas also claim and report
        assert spec["maxReplicaCount"] > spec["minReplicaCount"]
        (trigger,) = spec["triggers"]
        assert trigger["type"] == "redis-streams"
        assert trigger["authenticationRef"] == {"name": auth["metadata"]["name"]}
        metadata = trigger["metadata"]
        assert metadata["stream"] == CONSUMERS[group]
        assert metadata["consumerGroup"] == group
        assert int(metadata["lagCount"]) > 0
        # KEDA resolves the address from the scale target's environment
        assert metadata["addressFromEnv"] in _env(_container(deployments[name]))
        assert set(metadata) <= {"addressFromEnv", "databaseIndex", "stream", "consumerGroup",
                                 "lagCount", "activationLagCount", "enableTLS"}
        assert all(isinstance(value, str) for value in metadata.values())
    assert auth["spec"]["secretTargetRef"] == [
        {"parameter": "password", "name": "sokbo-redis", "key": "password"}]


def test_the_service_monitor_scrapes_every_service_as_job_sokbo(render):
    objects = render("overlays/prod")
    (monitor,) = by_kind(objects, "ServiceMonitor").values()
    selector = monitor["spec"]["selector"]["matchLabels"]
    selected = [s for s in by_kind(objects, "Service").values()
                if selector.items() <= s["metadata"]["labels"].items()]
    assert sorted(s["metadata"]["name"] for s in selected) == sorted(
        f"sokbo-{s}" for s in SERVICES)
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    # job="sokbo" as in deploy/prometheus/prometheus.yaml: the rules use up{job="sokbo"}
    label = monitor["spec"]["jobLabel"]
    assert {s["metadata"]["labels"][label] for s in selected} == {"sokbo"}
