#!/usr/bin/env bash
# Durable PUT throughput of koor next to etcd's, with the same client, in one run.
#
#   load/etcd.sh [--koor PATH] [--etcd PATH] [--rounds N]
#
# - koor: PUT /api/state/bench/<thread>-<i> (load/wrk/put.lua); every answer is a committed
#   SQLite write with synchronous=FULL.
# - etcd: the same keys and values through its v3 JSON gateway, POST /v3/kv/put
#   (load/wrk/etcd-put.lua); every answer is a raft commit whose WAL entry etcd has fsynced
#   (its default durability).
# - Both: wrk -t$WRK_THREADS -c$WRK_CONNECTIONS -d$WRK_DURATION (default -t2 -c64 -d10s),
#   1000 keys per wrk thread, a fresh server with an empty data dir in a temp folder per
#   run, on free 127.0.0.1 ports. Each round runs both, koor first in odd rounds and etcd
#   first in even ones; printed: each round's req/s, the koor/etcd ratio and each server's
#   CPU during its run (100 % = one core), then the medians.
# - Any non-2xx answer or socket error (wrk's counts), a server that does not start, or
#   fewer etcd revisions than answered PUTs fails the run (exit status 1).
# - koor: --koor PATH, else KOOR_BIN, else ${CARGO_TARGET_DIR:-$HOME/.cache/koor-target}/release/koor
#   (nothing is built: `cargo build --release --locked` first). etcd: --etcd PATH, else
#   `etcd` from PATH. Missing etcd or wrk are installed with apt-get (Debian packages
#   etcd-server and wrk; needs root).
set -euo pipefail
cd "$(dirname "$0")/.."

KOOR="${KOOR_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/koor-target}/release/koor}"
ETCD=""
ROUNDS=3
while [ $# -gt 0 ]; do
  case "$1" in
    --koor) KOOR="$2"; shift 2 ;;
    --etcd) ETCD="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    *) echo "usage: load/etcd.sh [--koor PATH] [--etcd PATH] [--rounds N]" >&2; exit 2 ;;
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

log() { echo "etcd.sh: $*" >&2; }
fail() { log "$*"; exit 1; }

# --- tools ----------------------------------------------------------------------------
need=()
command -v wrk >/dev/null || need+=(wrk)
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
  PID=""; DIR=""
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

# start_koor: a fresh koor, as load/bench.sh starts it; sets URL.
start_koor() {
  DIR="$(mktemp -d)"
  local port; port="$(free_ports 1)"
  URL="http://127.0.0.1:$port"
  (cd "$DIR" && exec env -u KOOR_AUTH_TOKEN -u KOOR_BIND -u KOOR_DATA_DIR -u KOOR_DASHBOARD_BIND \
    "$KOOR" serve --bind "127.0.0.1:$port" --data-dir "$DIR" --dashboard-bind "" \
    --log-level warn --liveness-interval 0 --compliance-interval 0) >"$DIR/log" 2>&1 &
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

bench_koor() {
  start_koor
  run_wrk koor load/wrk/put.lua
  curl -sf --max-time 5 "$URL/api/state/bench/1-1" | grep -q '"n"' ||
    fail "koor: bench/1-1 not readable after the run"
  KOOR_RPS="$RPS"; KOOR_CPU="$CPU"
  stop
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
  ETCD_RPS="$RPS"; ETCD_CPU="$CPU"
  stop
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

log "koor: $KOOR ($("$KOOR" --version 2>/dev/null | head -n 1 || echo '?'))"
log "etcd: $ETCD ($("$ETCD" --version 2>/dev/null | head -n 1 || echo '?'))"
log "wrk -t$THREADS -c$CONNS -d$DURATION, $KEYS keys per thread, $ROUNDS rounds"
RESULTS="$WORK/results"
echo "round first koor_rps etcd_rps ratio koor_cpu etcd_cpu"
for round in $(seq "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then
    first=koor; bench_koor; bench_etcd
  else
    first=etcd; bench_etcd; bench_koor
  fi
  awk -v r="$round" -v f="$first" -v k="$KOOR_RPS" -v e="$ETCD_RPS" -v kc="$KOOR_CPU" -v ec="$ETCD_CPU" \
    'BEGIN {printf "%d %s %.0f %.0f %.2f %d%% %d%%\n", r, f, k, e, k / e, kc, ec}' | tee -a "$RESULTS"
done
echo "median - $(awk '{print $3}' "$RESULTS" | median) $(awk '{print $4}' "$RESULTS" | median)" \
  "$(awk '{print $5}' "$RESULTS" | median) - -"
log "etcd put path: $PUT_PATH"
