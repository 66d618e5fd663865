#!/usr/bin/env bash
# Throughput ratios with wrk, each measured next to its reference in the same run:
#   reads:  GET /api/state/{key} (current value from memory) vs GET /health (the ceiling)
#   writes: PUT /api/state at 64 connections, group commit on vs --write-batch-max 1
# Usage: load/bench.sh [ROUNDS]   (default 3; the figures reported are medians)
# Env: KOOR_BIN (else cargo build --release), WRK_THREADS (2), WRK_CONNECTIONS (64),
#      WRK_DURATION (10s). Needs wrk (Debian: apt-get install wrk).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-3}"
THREADS="${WRK_THREADS:-2}"
CONNS="${WRK_CONNECTIONS:-64}"
DURATION="${WRK_DURATION:-10s}"
command -v wrk >/dev/null || { echo "bench.sh: wrk not found (Debian: apt-get install wrk)" >&2; exit 2; }
if [ -z "${KOOR_BIN:-}" ]; then
  cargo build --release --locked >&2
  KOOR_BIN="${CARGO_TARGET_DIR:-target}/release/koor"
fi

PID=""
DIR=""
stop() {
  if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  if [ -n "$DIR" ]; then rm -rf "$DIR"; fi
  PID=""; DIR=""
}
trap stop EXIT

# start [extra serve flags...]: a fresh server on a free loopback port; sets PORT.
start() {
  DIR="$(mktemp -d)"
  PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  (cd "$DIR" && exec env -u KOOR_AUTH_TOKEN -u KOOR_BIND -u KOOR_DATA_DIR "$KOOR_BIN" serve \
    --bind "127.0.0.1:$PORT" --data-dir "$DIR" --dashboard-bind "" --log-level warn \
    --liveness-interval 0 --compliance-interval 0 "$@" >"$DIR/log" 2>&1) &
  PID=$!
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && return 0
    sleep 0.1
  done
  echo "bench.sh: server did not start" >&2; cat "$DIR/log" >&2; exit 1
}

# rps URL [wrk args...]: requests/s of one wrk run; fails on any non-2xx/3xx answer.
rps() {
  local out
  out="$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$@")"
  if grep -q "Non-2xx or 3xx" <<<"$out"; then
    echo "bench.sh: errors during the run:" >&2; echo "$out" >&2; exit 1
  fi
  awk '/^Requests\/sec/ {print $2}' <<<"$out"
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

echo "round health_rps state_get_rps read_ratio put_batched_rps put_unbatched_rps write_ratio"
: >"${TMPDIR:-/tmp}/koor-bench.$$"
for round in $(seq "$ROUNDS"); do
  start
  curl -sf -X PUT "http://127.0.0.1:$PORT/api/state/bench/read" -d '{"config":{"replicas":3,"region":"eu"}}' >/dev/null
  health="$(rps "http://127.0.0.1:$PORT/health" -s load/wrk/auth.lua)"
  state="$(rps "http://127.0.0.1:$PORT/api/state/bench/read" -s load/wrk/auth.lua)"
  batched="$(rps "http://127.0.0.1:$PORT" -s load/wrk/put.lua)"
  stop
  start --write-batch-max 1
  unbatched="$(rps "http://127.0.0.1:$PORT" -s load/wrk/put.lua)"
  stop
  line="$(awk -v r="$round" -v h="$health" -v s="$state" -v b="$batched" -v u="$unbatched" \
    'BEGIN {printf "%d %.0f %.0f %.2f %.0f %.0f %.2f", r, h, s, s/h, b, u, b/u}')"
  echo "$line" | tee -a "${TMPDIR:-/tmp}/koor-bench.$$"
done
f="${TMPDIR:-/tmp}/koor-bench.$$"
echo "median - $(awk '{print $2}' "$f" | median) $(awk '{print $3}' "$f" | median) $(awk '{print $4}' "$f" | median) $(awk '{print $5}' "$f" | median) $(awk '{print $6}' "$f" | median) $(awk '{print $7}' "$f" | median)"
rm -f "$f"
