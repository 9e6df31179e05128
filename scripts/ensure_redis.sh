#!/usr/bin/env bash
# Print a Redis URL that answers: $REDIS_URL if it answers, else 127.0.0.1:6379 if it
# answers, else a redis-server from PATH started on a free port with its files under
# .run/redis (then .run/redis/started-here is written, so the caller can stop it with
# `make stop-redis`). Exit 1 with a message saying how to install Redis if there is none.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
answers() { timeout 3 "$here/.venv/bin/python" - "$1" <<'PY' >/dev/null 2>&1
import sys, redis
redis.Redis.from_url(sys.argv[1], socket_connect_timeout=1).ping()
PY
}
run="$here/.run/redis"
rm -f "$run/started-here"
if [[ -n "${REDIS_URL:-}" ]]; then
  if answers "$REDIS_URL"; then echo "$REDIS_URL"; exit 0; fi
  echo "REDIS_URL=$REDIS_URL does not answer; looking for another Redis" >&2
fi
if answers "redis://127.0.0.1:6379/0"; then echo "redis://127.0.0.1:6379/0"; exit 0; fi
if [[ -f "$run/port" ]] && answers "redis://127.0.0.1:$(cat "$run/port")/0"; then
  echo "redis://127.0.0.1:$(cat "$run/port")/0"; exit 0
fi
if ! command -v redis-server >/dev/null; then
  echo "sokbo needs Redis 7+, and none answers at \$REDIS_URL or 127.0.0.1:6379." >&2
  echo "Install it (Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis)" >&2
  echo "or point REDIS_URL at one, then run the command again." >&2
  exit 1
fi
mkdir -p "$run"
port=$("$here/.venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --dir "$run" --daemonize yes \
  --pidfile "$run/redis.pid" --logfile "$run/redis.log" --save "" --appendonly no >/dev/null
for _ in $(seq 50); do answers "redis://127.0.0.1:$port/0" && break; sleep 0.1; done
echo "$port" > "$run/port"
touch "$run/started-here"
echo "started redis-server on 127.0.0.1:$port (files in .run/redis)" >&2
echo "redis://127.0.0.1:$port/0"
