#!/usr/bin/env bash
# Throughput ratios with wrk, each measured next to its reference in the same run:
#   reads:  GET /api/state/{key} (current value from memory) vs GET /health (the ceiling)
#   writes: PUT /api/state at 64 connections, group commit on vs --write-batch-max 1
# Usage: load/bench.sh [ROUNDS]   (default 3; the figures reported are medians)
# Env: KOOR_BIN (else cargo build --release), WRK_THREADS (2), WRK_CONNECTIONS (64),
#      WRK_DURATION (10s). Needs wrk (Debian: apt-get install wrk).
set -euo pipefail
SCRIPT=bench.sh
source "$(dirname "$0")/lib.sh"
ROUNDS="${1:-3}"
need_wrk
koor_bin

echo "round health_rps state_get_rps read_ratio put_batched_rps put_unbatched_rps write_ratio"
: >"${TMPDIR:-/tmp}/koor-bench.$$"
for round in $(seq "$ROUNDS"); do
  start
  curl -sf -X PUT "http://127.0.0.1:$PORT/api/state/bench/read" -d '{"config":{"replicas":3,"region":"eu"}}' >/dev/null
  health="$(wrk_rps "http://127.0.0.1:$PORT/health" -s load/wrk/auth.lua)"
  state="$(wrk_rps "http://127.0.0.1:$PORT/api/state/bench/read" -s load/wrk/auth.lua)"
  batched="$(wrk_rps "http://127.0.0.1:$PORT" -s load/wrk/put.lua)"
  stop
  start --write-batch-max 1
  unbatched="$(wrk_rps "http://127.0.0.1:$PORT" -s load/wrk/put.lua)"
  stop
  line="$(awk -v r="$round" -v h="$health" -v s="$state" -v b="$batched" -v u="$unbatched" \
    'BEGIN {printf "%d %.0f %.0f %.2f %.0f %.0f %.2f", r, h, s, s/h, b, u, b/u}')"
  echo "$line" | tee -a "${TMPDIR:-/tmp}/koor-bench.$$"
done
f="${TMPDIR:-/tmp}/koor-bench.$$"
echo "median - $(awk '{print $2}' "$f" | median) $(awk '{print $3}' "$f" | median) $(awk '{print $4}' "$f" | median) $(awk '{print $5}' "$f" | median) $(awk '{print $6}' "$f" | median) $(awk '{print $7}' "$f" | median)"
rm -f "$f"
