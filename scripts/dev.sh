#!/usr/bin/env bash
# Runs Pulse locally without Docker: the server and one worker, against the
# services named in the environment / .env (DATABASE_URL, REDIS_URL,
# CLICKHOUSE_DSN), or, when those are not set, against throwaway services
# started by scripts/services.sh and removed on exit. Ctrl-C stops it all.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
cd "$root"

if [[ -f .env ]]; then set -a; . ./.env; set +a; fi

cargo build --bins

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

export PORT=${PORT:-8080} WORKER_PORT=${WORKER_PORT:-8081}
./target/debug/server & pids+=($!)
./target/debug/worker & pids+=($!)
for _ in $(seq 300); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.1
done
key=$(./target/debug/server create-api-key --name "dev-$(date +%s)")
cat >&2 <<MSG
dev: API on http://localhost:$PORT, worker health on http://localhost:$WORKER_PORT (Ctrl-C to stop)
dev: an API key for this session; in another terminal run:
  export PULSE_API_KEY=$key
MSG
wait -n "${pids[@]}"
