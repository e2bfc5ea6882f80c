#!/usr/bin/env bash
# Throwaway PostgreSQL, Redis and ClickHouse on free loopback ports.
#
#   scripts/services.sh start DIR   start all three with their data in DIR,
#                                   write their URLs to DIR/env
#   scripts/services.sh stop DIR    stop them and remove DIR
#   scripts/services.sh stop-one DIR pg|redis|ch    stop one (fault tests)
#   scripts/services.sh start-one DIR pg|redis|ch   start it again, same port
#
# Missing servers are installed from Debian's packages (postgresql,
# redis-server, clickhouse-server) when running as root; otherwise the
# script says what to install and stops. Postgres refuses to run as root,
# so as root it runs as the `postgres` user.
set -euo pipefail

log() { echo "services: $*" >&2; }

pg_bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

ensure_installed() {
  local need=()
  local bindir; bindir=$(pg_bindir)
  [[ -n "$bindir" && -x "$bindir/postgres" ]] || need+=(postgresql)
  command -v redis-server >/dev/null || need+=(redis-server)
  [[ -x /usr/sbin/clickhouse-server ]] || command -v clickhouse-server >/dev/null || need+=(clickhouse-server)
  command -v clickhouse-client >/dev/null || [[ -x /usr/bin/clickhouse-client ]] || need+=(clickhouse-client)
  command -v python3 >/dev/null || need+=(python3)
  [[ ${#need[@]} -eq 0 ]] && return 0
  if [[ $(id -u) -ne 0 ]]; then
    log "missing: ${need[*]}. Install them with: sudo apt-get install -y ${need[*]}"
    exit 1
  fi
  log "installing ${need[*]} from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
}

wait_for() { # what, tries, command...
  local what=$1 tries=$2; shift 2
  for _ in $(seq "$tries"); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  log "$what did not come up"; return 1
}

as_pg() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# Each service starts from its data and config in DIR, on the port recorded
# in DIR/ports, so a stopped service can be started again as it was (tests
# restart one service to inject a fault).
start_pg() {
  local dir=$1 bindir; bindir=$(pg_bindir)
  if [[ ! -d $dir/pg/data ]]; then
    mkdir -p "$dir/pg"
    [[ $(id -u) -eq 0 ]] && chown postgres:postgres "$dir/pg"
    as_pg "$bindir/initdb" -D "$dir/pg/data" -U postgres -A trust --no-sync >"$dir/pg/initdb.log" 2>&1
  fi
  # Tests trade durability for speed; PULSE_PG_DURABLE=1 (the benchmark)
  # keeps Postgres's durable defaults (fsync, synchronous commit).
  local fast=(-c fsync=off -c synchronous_commit=off -c full_page_writes=off)
  [[ ${PULSE_PG_DURABLE:-0} == 1 ]] && fast=()
  # PULSE_PG_OPTS: more settings for a measurement, e.g.
  # "-c shared_preload_libraries=pg_stat_statements".
  # shellcheck disable=SC2206
  local extra=(${PULSE_PG_OPTS:-})
  as_pg "$bindir/postgres" -D "$dir/pg/data" -p "$pg_port" -k "$dir/pg" \
    -c listen_addresses=127.0.0.1 -c max_connections=500 -c shared_buffers=128MB \
    "${fast[@]}" "${extra[@]}" >>"$dir/pg/server.log" 2>&1 &
  echo $! >"$dir/pg.pid"
  wait_for postgres 300 "$bindir/pg_isready" -h 127.0.0.1 -p "$pg_port" -U postgres
}

start_redis() {
  local dir=$1
  mkdir -p "$dir/redis"
  # No persistence: a restarted Redis comes back empty.
  redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$dir/redis" --logfile "$dir/redis/server.log" &
  echo $! >"$dir/redis.pid"
  wait_for redis 300 redis-cli -p "$redis_port" ping
}

start_ch() {
  local dir=$1
  if [[ ! -f $dir/ch/config.xml ]]; then
    mkdir -p "$dir/ch/data" "$dir/ch/tmp" "$dir/ch/user_files" "$dir/ch/log"
    # Debian's 18.16: <yandex> root, passwordless default user.
    cat >"$dir/ch/users.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <profiles><default><allow_experimental_low_cardinality_type>1</allow_experimental_low_cardinality_type></default></profiles>
  <users><default><password></password><networks><ip>::/0</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default></default></quotas>
</yandex>
XML
    cat >"$dir/ch/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>$dir/ch/log/server.log</log><errorlog>$dir/ch/log/error.log</errorlog></logger>
  <http_port>$ch_http</http_port>
  <tcp_port>$ch_tcp</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>$dir/ch/data/</path>
  <tmp_path>$dir/ch/tmp/</tmp_path>
  <user_files_path>$dir/ch/user_files/</user_files_path>
  <users_config>$dir/ch/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mark_cache_size>268435456</mark_cache_size>
  <uncompressed_cache_size>268435456</uncompressed_cache_size>
  <max_concurrent_queries>200</max_concurrent_queries>
</yandex>
XML
  fi
  local ch_server=/usr/sbin/clickhouse-server
  [[ -x $ch_server ]] || ch_server=$(command -v clickhouse-server)
  "$ch_server" --config-file="$dir/ch/config.xml" >>"$dir/ch/log/stdout.log" 2>&1 &
  echo $! >"$dir/ch.pid"
  wait_for clickhouse 300 clickhouse-client --port "$ch_tcp" -q "SELECT 1"
}

load_ports() {
  # shellcheck disable=SC1091
  . "$1/ports"
}

start() {
  local dir=$1
  ensure_installed
  mkdir -p "$dir"
  chmod 755 "$dir"
  cat >"$dir/ports" <<PORTS
pg_port=$(free_port)
redis_port=$(free_port)
ch_http=$(free_port)
ch_tcp=$(free_port)
PORTS
  load_ports "$dir"
  start_pg "$dir" & local pg=$!
  start_redis "$dir" & local rd=$!
  start_ch "$dir" & local ch=$!
  wait $pg; wait $rd; wait $ch
  as_pg "$(pg_bindir)/psql" -h 127.0.0.1 -p "$pg_port" -U postgres -qc "CREATE DATABASE pulse" >/dev/null

  cat >"$dir/env" <<ENV
PULSE_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:$pg_port/postgres
PULSE_TEST_REDIS_URL=redis://127.0.0.1:$redis_port
PULSE_TEST_CLICKHOUSE_URL=http://127.0.0.1:$ch_http
PULSE_SERVICES_DIR=$dir
DATABASE_URL=postgres://postgres@127.0.0.1:$pg_port/pulse
REDIS_URL=redis://127.0.0.1:$redis_port
CLICKHOUSE_DSN=http://default@127.0.0.1:$ch_http/pulse
ENV
  log "postgres :$pg_port, redis :$redis_port, clickhouse http :$ch_http (data in $dir)"
}

# Stops one service (pg, redis or ch) and waits for it to exit.
stop_one() {
  local dir=$1 svc=$2
  local pidfile="$dir/$svc.pid"
  if [[ $svc == pg && -f $dir/pg/data/postmaster.pid ]]; then
    # The postmaster's own pid (runuser's may not pass signals on).
    head -1 "$dir/pg/data/postmaster.pid" >"$pidfile"
  fi
  [[ -f $pidfile ]] || return 0
  local pid; pid=$(cat "$pidfile")
  # SIGINT is Postgres's "fast" shutdown: it does not wait for clients.
  if [[ $svc == pg ]]; then kill -INT "$pid" 2>/dev/null || true; else kill -TERM "$pid" 2>/dev/null || true; fi
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$pidfile"
}

stop() {
  local dir=$1
  stop_one "$dir" ch & local ch=$!
  stop_one "$dir" redis & local rd=$!
  stop_one "$dir" pg & local pg=$!
  wait $ch $rd $pg || true
  rm -rf "$dir"
}

case "${1:-}" in
  start) start "${2:?usage: services.sh start DIR}" ;;
  stop) stop "${2:?usage: services.sh stop DIR}" ;;
  stop-one) stop_one "${2:?DIR}" "${3:?pg|redis|ch}" ;;
  start-one) load_ports "${2:?DIR}"; "start_${3:?pg|redis|ch}" "$2" ;;
  install) ensure_installed ;;
  *) echo "usage: $0 start DIR | stop DIR | stop-one DIR SVC | start-one DIR SVC | install" >&2; exit 2 ;;
esac
