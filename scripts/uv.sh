#!/usr/bin/env bash
# Run uv: the one on PATH, else the one scripts/bootstrap.sh installed under .run/uv.
here=$(cd "$(dirname "$0")/.." && pwd)
if command -v uv >/dev/null 2>&1; then exec uv "$@"; else exec "$here/.run/uv/bin/uv" "$@"; fi
