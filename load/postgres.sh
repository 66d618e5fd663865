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
cd "$(dirname "$0")/.."

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
THREADS="${WRK_THREADS:-2}"
CONNS="${WRK_CONNECTIONS:-64}"
DURATION="${WRK_DURATION:-10s}"
export KEYS=1000
# wrk's own bound: the duration (wrk's syntax: 10, 10s, 2m, 1h) plus a minute.
case "$DURATION" in
  *h) WRK_TIMEOUT=$((${DURATION%h} * 3600 + 60)) ;;
  *m) WRK_TIMEOUT=$((${DURATION%m} * 60 + 60)) ;;
  *) WRK_TIMEOUT=$((${DURATION%s} + 60)) ;;
esac

log() { echo "postgres.sh: $*" >&2; }
fail() { log "$*"; exit 1; }

# --- tools ----------------------------------------------------------------------------
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v psql >/dev/null || need+=(postgresql-client)
if [ -z "$ETCD" ] && ! command -v etcd >/dev/null; then need+=(etcd-server); fi
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || fail "missing ${need[*]}: run as root, or apt-get install ${need[*]}"
  log "apt-get install ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! timeout 600 apt-get install -y --no-install-recommends "${need[@]}" >&2; then
    timeout 600 apt-get update >&2
    timeout 600 apt-get install -y --no-install-recommends "${need[@]}" >&2
  fi
fi
ETCD="${ETCD:-$(command -v etcd)}"
[ -x "$KOOR" ] || fail "koor binary not found: $KOOR (cargo build --release --locked, or --koor PATH)"
[ -x "$ETCD" ] || fail "etcd binary not found: $ETCD"

# --- servers --------------------------------------------------------------------------
PID=""
DIR=""
PG_DB=""
WRK_PID=""
WORK="$(mktemp -d)"
stop() {
  if [ -n "$WRK_PID" ]; then kill -TERM "$WRK_PID" 2>/dev/null || true; wait "$WRK_PID" 2>/dev/null || true; fi
  WRK_PID=""
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$PID" 2>/dev/null || true
  fi
  if [ -n "$PID" ]; then wait "$PID" 2>/dev/null || true; fi
  if [ -n "$DIR" ]; then rm -rf "$DIR"; fi
  if [ -n "$PG_DB" ]; then psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 || true; fi
  PID=""; DIR=""; PG_DB=""
}
trap 'stop; rm -rf "$WORK"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# free_ports N: N distinct free ports on 127.0.0.1, one per line.
free_ports() {
  python3 -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print("\n".join(str(s.getsockname()[1]) for s in socks))' "$1"
}

# wait_up URL PATTERN NAME: until URL answers with a body matching PATTERN (30 s at most).
wait_up() {
  for _ in $(seq 300); do
    curl -sf --max-time 1 "$1" 2>/dev/null | grep -q "$2" && return 0
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
  done
  log "$3 did not start; its log:"; cat "$DIR/log" >&2; exit 1
}

# start_koor [ARGS...]: a fresh koor, as load/bench.sh starts it, with extra ARGS; sets URL.
start_koor() {
  DIR="$(mktemp -d)"
  local port; port="$(free_ports 1)"
  URL="http://127.0.0.1:$port"
  (cd "$DIR" && exec env -u KOOR_AUTH_TOKEN -u KOOR_BIND -u KOOR_DATA_DIR -u KOOR_DASHBOARD_BIND \
    "$KOOR" serve --bind "127.0.0.1:$port" --data-dir "$DIR" --dashboard-bind "" \
    --log-level warn --liveness-interval 0 --compliance-interval 0 "$@") >"$DIR/log" 2>&1 &
  PID=$!
  wait_up "$URL/health" . koor
}

# start_etcd: a fresh single-member etcd, client and peer URLs on loopback, default
# durability; sets URL. ETCD_* variables (read by etcd as flags) are removed.
start_etcd() {
  DIR="$(mktemp -d)"
  local ports client peer
  ports="$(free_ports 2)"; client="${ports%%$'\n'*}"; peer="${ports##*$'\n'}"
  URL="http://127.0.0.1:$client"
  local unset=()
  for v in $(compgen -e | grep '^ETCD_' || true); do unset+=(-u "$v"); done
  (cd "$DIR" && exec env "${unset[@]}" "$ETCD" --name bench --data-dir "$DIR/data" \
    --listen-client-urls "$URL" --advertise-client-urls "$URL" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "bench=http://127.0.0.1:$peer" --initial-cluster-state new \
    --logger zap --log-level warn) >"$DIR/log" 2>&1 &
  PID=$!
  wait_up "$URL/health" '"health":"true"' etcd
}

# etcd_put KEY VALUE: one put through the gateway at $PUT_PATH; prints the store revision.
etcd_put() {
  local body
  body="{\"key\":\"$(printf %s "$1" | base64 -w0)\",\"value\":\"$(printf %s "$2" | base64 -w0)\"}"
  curl -sf --max-time 5 -X POST "$URL$PUT_PATH" -d "$body" |
    sed -n 's/.*"revision":"\([0-9]*\)".*/\1/p'
}

# cpu_ticks: user + system clock ticks the server has used so far.
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$PID/stat"; }

# run_wrk NAME SCRIPT: one wrk run against $URL; sets RPS, REQUESTS and CPU (% of a core).
run_wrk() {
  local out c0 c1 t0 t1
  c0="$(cpu_ticks)"; t0="$(date +%s.%N)"
  # In the background, so that a signal to this script stops wrk at once (see stop).
  timeout "$WRK_TIMEOUT" wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s "$2" "$URL" \
    >"$WORK/wrk.out" 2>&1 &
  WRK_PID=$!
  wait "$WRK_PID" || { WRK_PID=""; log "$1: wrk failed or timed out:"; cat "$WORK/wrk.out" >&2; exit 1; }
  WRK_PID=""
  out="$(cat "$WORK/wrk.out")"
  c1="$(cpu_ticks)"; t1="$(date +%s.%N)"
  if grep -qE "Non-2xx or 3xx|Socket errors" <<<"$out"; then
    log "$1: failed requests during the run:"; echo "$out" >&2; exit 1
  fi
  RPS="$(awk '/^Requests\/sec/ {print $2}' <<<"$out")"
  REQUESTS="$(awk '/ requests in / {print $1}' <<<"$out")"
  [ -n "$RPS" ] && [ "${REQUESTS:-0}" -gt 0 ] || { log "$1: no requests answered:"; echo "$out" >&2; exit 1; }
  CPU="$(awk -v a="$c0" -v b="$c1" -v s="$t0" -v e="$t1" -v hz="$(getconf CLK_TCK)" \
    'BEGIN {printf "%.0f", (b - a) / hz / (e - s) * 100}')"
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

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

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
