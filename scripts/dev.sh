#!/usr/bin/env bash
# Runs Pulse locally without Docker: the server and one worker, against the
# services named in the environment / .env (DATABASE_URL, REDIS_URL,
# CLICKHOUSE_DSN), or, when those are not set, against throwaway services
# started by scripts/services.sh and removed on exit. Ctrl-C stops it all.
# It first checks that the server's and worker's ports (PORT, default 8080;
# WORKER_PORT, default 8081) are free, and stops naming the busy one.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
cd "$root"

if [[ -f .env ]]; then
  # .env fills in what the environment does not set (the environment wins,
  # as in the binaries).
  saved=$(export -p)
  set -a; . ./.env; set +a
  eval "$saved" || true
fi

export PORT=${PORT:-8080} WORKER_PORT=${WORKER_PORT:-8081}
host=${HOST:-0.0.0.0}

# Whether HOST:PORT can be bound, as the binaries will (SO_REUSEADDR, like
# tokio's listener, so a port in TIME_WAIT counts as free).
port_free() {
  python3 - "$host" "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind((sys.argv[1], int(sys.argv[2])))
except OSError as e:
    print(e.strerror, file=sys.stderr)
    sys.exit(1)
PY
}

if [[ $PORT == "$WORKER_PORT" ]]; then
  echo "dev: PORT and WORKER_PORT are both $PORT; set one of them to another port" >&2
  exit 1
fi
for var in PORT WORKER_PORT; do
  if ! why=$(port_free "${!var}" 2>&1); then
    echo "dev: $var ${!var} on $host is not free ($why): stop what uses it, or run e.g. $var=$(( ${!var} + 10 )) make dev" >&2
    exit 1
  fi
done

cargo build --bins
bin=${CARGO_TARGET_DIR:-target}/debug

pids=()
dir=""
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [[ -n $dir ]]; then "$here/services.sh" stop "$dir"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ -z ${DATABASE_URL:-} || -z ${REDIS_URL:-} || -z ${CLICKHOUSE_DSN:-} ]]; then
  dir=$(mktemp -d "${TMPDIR:-/tmp}/pulse-dev.XXXXXX")
  "$here/services.sh" start "$dir"
  set -a; . "$dir/env"; set +a
fi

"$bin/server" & server=$!; pids+=($server)
"$bin/worker" & pids+=($!)
for _ in $(seq 300); do
  if ! kill -0 "$server" 2>/dev/null; then
    echo "dev: the server exited before it answered on port $PORT (see its log above)" >&2
    exit 1
  fi
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.1
done
key=$("$bin/server" create-api-key --name "dev-$(date +%s)")
cat >&2 <<MSG
dev: API on http://localhost:$PORT, worker health on http://localhost:$WORKER_PORT (Ctrl-C to stop)
dev: an API key for this session; in another terminal run:
  export PULSE_API_KEY=$key
MSG
wait -n "${pids[@]}"
