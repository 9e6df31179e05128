#!/usr/bin/env bash
# Install what sokbo needs into .venv: uv (if missing, into .run/uv with pip: this works
# where the system Python refuses pip installs, PEP 668) then the locked workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v uv >/dev/null 2>&1 && [[ ! -x .run/uv/bin/uv ]]; then
  echo "installing uv (the Python package manager sokbo uses) into .run/uv ..." >&2
  python3 -m venv .run/uv
  .run/uv/bin/pip install --quiet uv
fi
scripts/uv.sh sync --all-packages --locked --quiet
