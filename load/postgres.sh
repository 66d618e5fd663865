#!/usr/bin/env bash
# Durable PUT throughput of koor on PostgreSQL next to koor on SQLite and etcd, with the
# same client, in one run.
#
#   load/postgres.sh [--koor PATH] [--etcd PATH] [--postgres URL] [--rounds N]
#
# - koor on SQLite: PUT /api/state/bench/<thread>-<i> (load/wrk/put.lua), the default
#   storage (data.db, synchronous=FULL).
# - koor on PostgreSQL: the same requests, with --database-url on a fresh database created
#   for each run on the server of --postgres URL (default
#   postgres://postgres@127.0.0.1:5432/postgres; KOOR_BENCH_POSTGRES_URL) and dropped after
#   it. Every answer is a committed PostgreSQL transaction (synchronous_commit on).
# - etcd: the same keys and values through its v3 JSON gateway (load/wrk/etcd-put.lua).
# - wrk -t$WRK_THREADS -c$WRK_CONNECTIONS -d$WRK_DURATION (default -t2 -c64 -d10s), 1000
#   keys per wrk thread; each round runs the three, in a rotating order; printed: each
#   round's req/s and the ratios PostgreSQL/SQLite and PostgreSQL/etcd, then the medians.
# - Any non-2xx answer or socket error fails the run (exit status 1).
# - Needs psql, wrk and etcd (Debian packages postgresql-client, wrk, etcd-server).
set -euo pipefail
SCRIPT=postgres.sh
source "$(dirname "$0")/lib.sh"

KOOR="${KOOR_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/koor-target}/release/koor}"
ETCD=""
ROUNDS=3
PG_ADMIN="${KOOR_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
while [ $# -gt 0 ]; do
  case "$1" in
    --koor) KOOR="$2"; shift 2 ;;
    --etcd) ETCD="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --postgres) PG_ADMIN="$2"; shift 2 ;;
    *) echo "usage: load/postgres.sh [--koor PATH] [--etcd PATH] [--postgres URL] [--rounds N]" >&2; exit 2 ;;
  esac
done
export KEYS=1000

# --- tools ----------------------------------------------------------------------------
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v psql >/dev/null || need+=(postgresql-client)
if [ -z "$ETCD" ] && ! command -v etcd >/dev/null; then need+=(etcd-server); fi
install_missing "${need[@]}"
ETCD="${ETCD:-$(command -v etcd)}"
[ -x "$KOOR" ] || fail "koor binary not found: $KOOR (cargo build --release --locked, or --koor PATH)"
[ -x "$ETCD" ] || fail "etcd binary not found: $ETCD"

# --- servers --------------------------------------------------------------------------
KOOR_BIN="$KOOR"
PG_DB=""
WORK="$(mktemp -d)"
# Run by lib.sh's stop: the database of the PostgreSQL run is dropped with its server.
on_stop() {
  if [ -n "$PG_DB" ]; then psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 || true; fi
  PG_DB=""
}
trap 'stop; rm -rf "$WORK"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start_koor [ARGS...]: a fresh koor (lib.sh's start) with extra ARGS; sets URL.
start_koor() {
  start "$@"
  URL="$BASE"
}

# bench_koor NAME [ARGS...]: one run of koor started with ARGS; sets RPS_<NAME>.
bench_koor() {
  local name="$1"; shift
  start_koor "$@"
  run_wrk "koor-$name" load/wrk/put.lua
  curl -sf --max-time 5 "$URL/api/state/bench/1-1" | grep -q '"n"' ||
    fail "koor-$name: bench/1-1 not readable after the run"
  printf -v "RPS_$name" '%s' "$RPS"
  printf -v "CPU_$name" '%s' "$CPU"
  stop
}

bench_sqlite() { bench_koor sqlite; }

bench_postgres() {
  PG_DB="koor_bench_$$_$RANDOM"
  psql "$PG_ADMIN" -qc "CREATE DATABASE $PG_DB" || fail "cannot create database $PG_DB"
  bench_koor postgres --database-url "${PG_ADMIN%/*}/$PG_DB"
}

bench_etcd() {
  start_etcd
  # The gateway's prefix: /v3 since etcd 3.4, /v3beta in 3.3 (3.4 serves both).
  local before after
  for PUT_PATH in /v3/kv/put /v3beta/kv/put; do
    before="$(etcd_put bench/probe '{"probe":true}' || true)"
    [ -n "$before" ] && break
  done
  [ -n "$before" ] || fail "etcd: neither /v3/kv/put nor /v3beta/kv/put answered a put"
  export ETCD_PUT_PATH="$PUT_PATH"
  run_wrk etcd load/wrk/etcd-put.lua
  after="$(etcd_put bench/probe '{"probe":true}')"
  # Every answered put is one revision; puts still in flight when wrk stopped add more.
  [ $((after - before - 1)) -ge "$REQUESTS" ] ||
    fail "etcd: $REQUESTS puts answered but only $((after - before - 1)) revisions added"
  # The durability behind those answers: WAL fsyncs (one per raft batch, many puts each).
  log "etcd: $REQUESTS puts answered, $(curl -sf --max-time 5 "$URL/metrics" |
    awk '/^etcd_disk_wal_fsync_duration_seconds_count/ {print $2}') WAL fsyncs"
  RPS_etcd="$RPS"; CPU_etcd="$CPU"
  stop
}

log "koor: $KOOR ($("$KOOR" --version 2>/dev/null | head -n 1 || echo '?'))"
log "etcd: $ETCD ($("$ETCD" --version 2>/dev/null | head -n 1 || echo '?'))"
log "postgres: $(psql "$PG_ADMIN" -Atc 'SHOW server_version')"
log "wrk -t$THREADS -c$CONNS -d$DURATION, $KEYS keys per thread, $ROUNDS rounds"
RESULTS="$WORK/results"
echo "round sqlite_rps postgres_rps etcd_rps pg/sqlite pg/etcd sqlite_cpu postgres_cpu etcd_cpu"
ORDERS=("sqlite postgres etcd" "postgres etcd sqlite" "etcd sqlite postgres")
for round in $(seq "$ROUNDS"); do
  for which in ${ORDERS[$(((round - 1) % 3))]}; do "bench_$which"; done
  awk -v r="$round" -v s="$RPS_sqlite" -v p="$RPS_postgres" -v e="$RPS_etcd" \
    -v sc="$CPU_sqlite" -v pc="$CPU_postgres" -v ec="$CPU_etcd" \
    'BEGIN {printf "%d %.0f %.0f %.0f %.2f %.2f %d%% %d%% %d%%\n", r, s, p, e, p / s, p / e, sc, pc, ec}' |
    tee -a "$RESULTS"
done
echo "median $(awk '{print $2}' "$RESULTS" | median) $(awk '{print $3}' "$RESULTS" | median)" \
  "$(awk '{print $4}' "$RESULTS" | median) $(awk '{print $5}' "$RESULTS" | median)" \
  "$(awk '{print $6}' "$RESULTS" | median) - - -"
