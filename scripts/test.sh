#!/usr/bin/env bash
# `make test`: install, find or start Redis, run unit, integration, end-to-end and
# deployment (tests/deploy: manifests, rules, dashboard, image) tests.
# Tests use database 13 of the Redis found (they empty it), or $SOKBO_TEST_REDIS_URL.
# PYTEST_ARGS replaces the default `tests`, e.g. PYTEST_ARGS="tests/unit -k matching".
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
# promtool and the CRD schemas for tests/deploy (cached in .run/tools); if one cannot be
# had, the other tests still run and the deploy tests that need it fail, naming it
scripts/tools.sh || echo "scripts/tools.sh: a tool is missing, see above" >&2
started=""
if [[ -z "${SOKBO_TEST_REDIS_URL:-}" ]]; then
  redis_url=$(scripts/ensure_redis.sh)
  [[ -f .run/redis/started-here ]] && started=yes
  SOKBO_TEST_REDIS_URL=$(scripts/with_db.sh "$redis_url" 13)
  export SOKBO_TEST_REDIS_URL
fi
status=0
# shellcheck disable=SC2086
.venv/bin/python -m pytest ${PYTEST_ARGS:-tests} || status=$?
if [[ -n $started && -f .run/redis/redis.pid ]]; then
  kill "$(cat .run/redis/redis.pid)" 2>/dev/null || true
  rm -f .run/redis/started-here .run/redis/port
fi
exit $status
