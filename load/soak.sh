#!/usr/bin/env bash
# Soak: many rounds of durable PUTs (wrk, load/wrk/put.lua) on ONE server, never restarted,
# to show whether write throughput holds as the history grows. After each round it prints
# the round's PUT/s, the writes so far, the database and WAL size, the server's RSS, wrk's
# timeouts, and the server's CPU time and bytes written per PUT (both are the server's own,
# so they compare between rounds even when other work shares the machine).
# Usage: load/soak.sh [ROUNDS] [extra koor serve flags...]   (default 8 rounds)
# Env: KOOR_BIN (else cargo build --release), WRK_THREADS (2), WRK_CONNECTIONS (64),
#      WRK_DURATION (10s), KEYS (1000 per wrk thread). Needs wrk (Debian: apt-get install wrk).
set -euo pipefail
SCRIPT=soak.sh
source "$(dirname "$0")/lib.sh"
ROUNDS="${1:-8}"
shift || true
need_wrk
koor_bin
start "$@"

mb() { awk -v b="$1" 'BEGIN {printf "%.1f", b/1e6}'; }
size() { stat -c %s "$1" 2>/dev/null || echo 0; }
# written: bytes the server has written so far (WAL frames, checkpoints, responses).
written() { awk '/^wchar/ {print $2}' "/proc/$PID/io"; }
TICK="$(getconf CLK_TCK)"

echo "round put_rps writes_total db_mb wal_mb rss_mb timeouts cpu_us_per_put written_kb_per_put"
total=0
first=""
for round in $(seq "$ROUNDS"); do
  cpu0="$(cpu_ticks)"
  written0="$(written)"
  out="$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" -s load/wrk/put.lua "$BASE")"
  if grep -q "Non-2xx or 3xx" <<<"$out"; then
    fail "errors during round $round: $out"
  fi
  rps="$(awk '/^Requests\/sec/ {print $2}' <<<"$out")"
  reqs="$(awk '/requests in/ {print $1}' <<<"$out")"
  total=$((total + reqs))
  timeouts="$(awk '/Socket errors/ {print $NF}' <<<"$out")"
  first="${first:-$rps}"
  rss_kb="$(awk '/^VmRSS/ {print $2}' "/proc/$PID/status")"
  cpu_us="$(awk -v t="$(($(cpu_ticks) - cpu0))" -v hz="$TICK" -v n="$reqs" 'BEGIN {printf "%.0f", t * 1e6 / hz / n}')"
  kb="$(awk -v b="$(($(written) - written0))" -v n="$reqs" 'BEGIN {printf "%.1f", b / 1024 / n}')"
  printf '%d %.0f %d %s %s %s %d %s %s\n' "$round" "$rps" "$total" \
    "$(mb "$(size "$DIR/data.db")")" "$(mb "$(size "$DIR/data.db-wal")")" "$(mb $((rss_kb * 1024)))" \
    "${timeouts:-0}" "$cpu_us" "$kb"
done
awk -v f="$first" -v l="$rps" 'BEGIN {printf "last/first: %.2f\n", l/f}'
