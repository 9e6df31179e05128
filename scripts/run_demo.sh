#!/usr/bin/env bash
# `make run`: install, find or start Redis, then run the whole pipeline in one process.
# With no CONFIG: serve the bundled demo news site (config/demo/site) on a free port and
# use config/demo.yaml (config/demo-slack.yaml when SLACK_WEBHOOK_URL is set), on Redis
# database $DEMO_REDIS_DB (default 15), emptied first so the demo alerts show every run.
# With CONFIG=path.yaml: run that configuration as it is (its redis_url, or $REDIS_URL).
# Ctrl-C stops everything this started, a redis-server included.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [[ -f .run/redis/started-here && -f .run/redis/redis.pid ]]; then
    kill "$(cat .run/redis/redis.pid)" 2>/dev/null || true
    rm -f .run/redis/started-here .run/redis/port
  fi
}
trap cleanup EXIT
trap 'exit 0' INT TERM  # Ctrl-C is how the demo is meant to end
if [[ -z "${CONFIG:-}" ]]; then
  redis_url=$(scripts/ensure_redis.sh)
  mkdir -p .run
  rm -f .run/demo-site.port
  .venv/bin/python scripts/demo_site.py --root config/demo/site --port-file .run/demo-site.port &
  pids+=($!)
  for _ in $(seq 50); do [[ -s .run/demo-site.port ]] && break; sleep 0.1; done
  export DEMO_SITE="http://127.0.0.1:$(cat .run/demo-site.port)"
  REDIS_URL=$(scripts/with_db.sh "$redis_url" "${DEMO_REDIS_DB:-15}")
  export REDIS_URL
  .venv/bin/python -c 'import os, redis; redis.Redis.from_url(os.environ["REDIS_URL"]).flushdb()'
  CONFIG=config/demo.yaml
  [[ -n "${SLACK_WEBHOOK_URL:-}" ]] && CONFIG=config/demo-slack.yaml
  echo "sokbo demo: news site $DEMO_SITE, Redis $REDIS_URL (emptied), config $CONFIG;" \
       "Ctrl-C stops" >&2
fi
.venv/bin/sokbo run all --config "$CONFIG" &
pids+=($!)
wait "${pids[-1]}"
