#!/usr/bin/env bash
# Install what sokbo needs into .venv: uv (if missing) then the locked workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v uv >/dev/null 2>&1; then
  if ! python3 -m uv --version >/dev/null 2>&1; then
    echo "installing uv (the Python package manager sokbo uses) with pip..." >&2
    python3 -m pip install --quiet --user uv 2>/dev/null || python3 -m pip install --quiet uv
  fi

fi
scripts/uv.sh sync --all-packages --locked --quiet
