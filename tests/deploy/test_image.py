"""deploy/Dockerfile: hadolint (which parses it with BuildKit's parser) finds nothing,
and the image is built the way the README says: multi-stage with uv from the lock,
non-root, the service chosen by the command. No Docker engine runs here, so the image is
not built; these read the Dockerfile's instructions."""

from __future__ import annotations

import json
import re
import shlex
from typing import NamedTuple

from tests.deploy.conftest import DEPLOY

DOCKERFILE = DEPLOY / "Dockerfile"


class Command(NamedTuple):
    """One instruction: ``cmd`` upper-case, ``flags`` (``--from=build``), ``value`` words."""

    cmd: str
    flags: tuple[str, ...]
    value: tuple[str, ...]
    json: bool


def _instructions() -> list[Command]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    commands = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cmd, _, rest = line.strip().partition(" ")
        rest = rest.strip()
        if rest.startswith("["):
            commands.append(Command(cmd.upper(), (), tuple(json.loads(rest)), True))
            continue
        words = shlex.split(rest, comments=False, posix=True)
        flags = tuple(w for w in words if w.startswith("--") and cmd.upper() != "RUN")
        value = tuple(w for w in words if w not in flags)
        commands.append(Command(cmd.upper(), flags, value, False))
    return commands


def _stages() -> list[list[Command]]:
    stages: list[list[Command]] = []
    for command in _instructions():
        if command.cmd == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(command)
    return stages


def test_hadolint_finds_nothing(tool):
    done = tool("hadolint", str(DOCKERFILE))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_build_stage_installs_the_locked_workspace_with_uv():
    build, _ = _stages()
    runs = " ".join(" ".join(c.value) for c in build if c.cmd == "RUN")
    assert "uv sync --frozen --no-dev --all-packages --no-install-workspace" in runs
    assert "uv sync --locked --no-dev --all-packages --no-editable" in runs
    copied = [c.value for c in build if c.cmd == "COPY"]
    assert ("libs", "libs") in copied and ("services", "services") in copied


def test_the_runtime_stage_is_unprivileged_and_chooses_the_service_by_its_command():
    _, runtime = _stages()
    commands = {c.cmd: c for c in runtime}
    (source,) = [c.flags for c in runtime if c.cmd == "COPY"]
    assert source == ("--from=build",)  # nothing but the built environment
    user = commands["USER"].value[0].split(":")[0]
    assert user.isdigit() and int(user) != 0  # numeric: runAsNonRoot can check it
    assert commands["ENTRYPOINT"].json and commands["ENTRYPOINT"].value == ("sokbo",)
    assert commands["CMD"].value == ("run", "all")
    assert commands["EXPOSE"].value == ("9464",)
    env = " ".join(commands["ENV"].value)
    assert "PYTHONDONTWRITEBYTECODE" in env and "SOKBO_CONFIG" in env


def test_the_build_context_leaves_out_the_local_environment():
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert ignored[ignored.index("*") + 1:][:4] == ["!pyproject.toml", "!uv.lock", "!libs/",
                                                   "!services/"]
    assert "**/__pycache__" in ignored
