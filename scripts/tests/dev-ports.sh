#!/usr/bin/env bash
# scripts/dev.sh with its server or worker port already taken stops at once,
# non-zero, naming the busy variable and port, before it builds or starts
# anything. A fake `cargo` on PATH fails the test if the build is reached.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
holder=""
cleanup() {
  if [[ -n $holder ]]; then kill "$holder" 2>/dev/null || true; wait "$holder" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/bin" "$work/tmp"
cat >"$work/bin/cargo" <<'SH'
#!/bin/sh
echo "fake cargo: reached the build" >&2
exit 99
SH
chmod +x "$work/bin/cargo"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Holds a listening socket on 0.0.0.0:PORT until killed.
python3 -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 0)); s.listen(); print(s.getsockname()[1], flush=True)
time.sleep(600)' >"$work/held" &
holder=$!
for _ in $(seq 50); do [[ -s $work/held ]] && break; sleep 0.1; done
held=$(cat "$work/held")
free=$(free_port)

fail() { echo "dev-ports: FAIL: $*" >&2; exit 1; }

check() { # name, PORT, WORKER_PORT, expected text
  local name=$1 rc=0
  local start=$SECONDS
  env -u HOST -u DATABASE_URL -u REDIS_URL -u CLICKHOUSE_DSN \
    PATH="$work/bin:$PATH" TMPDIR="$work/tmp" PORT=$2 WORKER_PORT=$3 \
    timeout 20 "$root/scripts/dev.sh" >"$work/out" 2>&1 || rc=$?
  [[ $rc -ne 0 ]] || fail "$name: dev.sh exited 0"
  [[ $rc -ne 124 ]] || fail "$name: dev.sh still running after 20 s"
  grep -qF -- "$4" "$work/out" || fail "$name: output lacks '$4':$(printf '\n')$(cat "$work/out")"
  if grep -q "fake cargo" "$work/out"; then fail "$name: dev.sh started the build"; fi
  [[ -z $(ls -A "$work/tmp") ]] || fail "$name: dev.sh started services"
  (( SECONDS - start <= 5 )) || fail "$name: took $((SECONDS - start)) s"
  echo "dev-ports: $name ok"
}

check "server port busy" "$held" "$free" "PORT $held on 0.0.0.0 is not free"
check "worker port busy" "$free" "$held" "WORKER_PORT $held on 0.0.0.0 is not free"
check "same port twice" "$free" "$free" "PORT and WORKER_PORT are both $free"
