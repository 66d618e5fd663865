#!/usr/bin/env bash
# The work queue under load (native client load/taskbench, crate koor-taskbench), each round
# on a fresh server:
#   throughput: claim+complete with WORKERS (32) holders, as a ratio to durable state PUT/s
#               measured by the same client, with as many workers, in the same run;
#   latency:    create -> long-poll claim at RATE (500) tasks/s: p50, p95, p99, max.
# Usage: load/tasks.sh [ROUNDS]   (default 3; the last line holds the medians)
# Env: KOOR_BIN (else cargo build --release), TASKBENCH_BIN (else cargo build --release
#      -p koor-taskbench), and the generator's WORKERS, DURATION (10, seconds of PUTs),
#      TASKS (20000, drained by the claimers), RATE, LATENCY_DURATION (10).
set -euo pipefail
SCRIPT=tasks.sh
# DURATION is the generator's (seconds), not wrk's: kept across lib.sh, which sets its own.
GENERATOR_DURATION="${DURATION:-10}"
source "$(dirname "$0")/lib.sh"
export DURATION="$GENERATOR_DURATION"
ROUNDS="${1:-3}"
koor_bin
if [ -z "${TASKBENCH_BIN:-}" ]; then
  cargo build --release --locked -p koor-taskbench >&2
  TASKBENCH_BIN="${CARGO_TARGET_DIR:-target}/release/koor-taskbench"
fi

# field NAME LINE: the value of NAME=... in a SUMMARY line (units stripped).
field() { sed -n "s/.* $1=\([0-9.a-z]*\).*/\1/p" <<<"$2" | sed 's/ms$//'; }

f="${TMPDIR:-/tmp}/koor-tasks-bench.$$"
: >"$f"
echo "round put_rps claim_complete_per_s ratio p50_ms p99_ms max_ms ok"
status=0
for round in $(seq "$ROUNDS"); do
  start
  if ! summary="$(BASE_URL="http://127.0.0.1:$PORT" "$TASKBENCH_BIN" | grep '^SUMMARY')"; then
    status=1
  fi
  stop
  echo "$summary" >&2
  line="$round $(field put_rps "$summary") $(field claim_complete_per_s "$summary") $(field ratio "$summary") $(field p50 "$summary") $(field p99 "$summary") $(field max "$summary") $(field ok "$summary")"
  echo "$line" | tee -a "$f"
done
col() { awk -v c="$1" '{print $c}' "$f" | median; }
echo "median $(col 2) $(col 3) $(col 4) $(col 5) $(col 6) $(col 7) -"
rm -f "$f"
exit "$status"
