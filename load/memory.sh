#!/usr/bin/env bash
# Memory per key: for each count N, a fresh server gets N keys of VALUE_BYTES each (wrk,
# load/wrk/put.lua, every key written at least once), then the server's RSS is read, and
# read again after a restart on the same data (the StateStore loads every current value at
# start-up; no write-time buffers). Prints the RSS of an empty server, and per N the RSS
# after the writes and after the restart, and the growth per key over the empty server.
# Usage: load/memory.sh [N...]   (default 10000 100000)
# Env: KOOR_BIN (else cargo build --release), VALUE_BYTES (1024), WRK_THREADS (2),
#      WRK_CONNECTIONS (64). Needs wrk (Debian: apt-get install wrk).
set -euo pipefail
SCRIPT=memory.sh
source "$(dirname "$0")/lib.sh"
[ $# -gt 0 ] || set -- 10000 100000
export VALUE_BYTES="${VALUE_BYTES:-1024}"
need_wrk
koor_bin

rss_mb() { awk '/^VmRSS/ {printf "%.1f", $2 * 1024 / 1e6}' "/proc/$PID/status"; }
# keys: how many keys the server holds (read after the RSS: the listing allocates).
keys() {
  curl -sf "$BASE/api/state" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'
}

start
sleep 1
empty="$(rss_mb)"
stop
echo "keys value_bytes rss_empty_mb rss_after_writes_mb rss_after_restart_mb bytes_per_key"
for n in "$@"; do
  start
  # Each wrk thread writes its keys <thread>-0 .. <thread>-(KEYS-1) in turn: one run long
  # enough for 30 % more writes than keys (at the rate of a 2 s probe) covers them all.
  export KEYS=$((n / THREADS))
  rate="$(wrk_rps -d2s -s load/wrk/put.lua "$BASE" | cut -d. -f1)"
  long=$((n * 13 / 10 / rate + 2))
  DURATION="${long}s" wrk_rps -s load/wrk/put.lua "$BASE" >/dev/null
  after="$(rss_mb)"
  data="$DIR"
  # The same data directory, served by a new process.
  kill -TERM "$PID"; wait "$PID" 2>/dev/null || true
  DIR=""; PID=""
  (cd "$data" && exec env -u KOOR_AUTH_TOKEN -u KOOR_BIND -u KOOR_DATA_DIR -u KOOR_DASHBOARD_BIND \
    "$KOOR_BIN" serve --bind "127.0.0.1:$PORT" --data-dir "$data" --dashboard-bind "" \
    --log-level warn --liveness-interval 0 --compliance-interval 0) >>"$data/log" 2>&1 &
  PID=$!
  DIR="$data"
  wait_up "$BASE/health" . koor
  sleep 1
  restarted="$(rss_mb)"
  held="$(keys)"
  [ "$held" -ge "$n" ] || fail "$held keys stored, not $n"
  awk -v n="$n" -v v="$VALUE_BYTES" -v e="$empty" -v a="$after" -v r="$restarted" \
    'BEGIN {printf "%d %d %s %s %s %.0f\n", n, v, e, a, r, (r - e) * 1e6 / n}'
  stop
done
