#!/usr/bin/env bash
# `make test`: install, find or start Redis, run unit, integration and end-to-end tests.
# Tests use Redis database 13 of the Redis found (they empty it), or
# $SOKBO_TEST_REDIS_URL if set; pass pytest
# arguments through PYTEST_ARGS, e.g. make test PYTEST_ARGS="-k matching".
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
if [[ -z "${SOKBO_TEST_REDIS_URL:-}" ]]; then
  redis_url=$(scripts/ensure_redis.sh)
  export SOKBO_TEST_REDIS_URL="${redis_url%/*}/13"
fi
exec .venv/bin/python -m pytest tests ${PYTEST_ARGS:-}
