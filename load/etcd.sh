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
SCRIPT=etcd.sh
source "$(dirname "$0")/lib.sh"

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
export KEYS=1000

# --- tools ----------------------------------------------------------------------------
need=()
command -v wrk >/dev/null || need+=(wrk)
if [ -z "$ETCD" ] && ! command -v etcd >/dev/null; then need+=(etcd-server); fi
install_missing "${need[@]}"
ETCD="${ETCD:-$(command -v etcd)}"
[ -x "$KOOR" ] || fail "koor binary not found: $KOOR (cargo build --release --locked, or --koor PATH)"
[ -x "$ETCD" ] || fail "etcd binary not found: $ETCD"

# --- servers --------------------------------------------------------------------------
KOOR_BIN="$KOOR"
WORK="$(mktemp -d)"
trap 'stop; rm -rf "$WORK"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start_koor: a fresh koor (lib.sh's start); sets URL.
start_koor() {
  start
  URL="$BASE"
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
