#!/usr/bin/env bash
# Soak: many rounds of durable PUTs (wrk, load/wrk/put.lua) on ONE server, never restarted,
# to show whether write throughput holds as the history grows. After each round it prints
# the round's PUT/s, the database and WAL size and the server's RSS.
# Usage: load/soak.sh [ROUNDS] [extra koor serve flags...]   (default 8 rounds)
# Env: KOOR_BIN (else cargo build --release), WRK_THREADS (2), WRK_CONNECTIONS (64),
#      WRK_DURATION (10s). Needs wrk (Debian: apt-get install wrk).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-8}"
shift || true
THREADS="${WRK_THREADS:-2}"
CONNS="${WRK_CONNECTIONS:-64}"
DURATION="${WRK_DURATION:-10s}"
command -v wrk >/dev/null || { echo "soak.sh: wrk not found (Debian: apt-get install wrk)" >&2; exit 2; }
if [ -z "${KOOR_BIN:-}" ]; then
  cargo build --release --locked >&2
  KOOR_BIN="${CARGO_TARGET_DIR:-target}/release/koor"
fi

PID=""
DIR="$(mktemp -d)"
stop() {
  if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  rm -rf "$DIR"
}
trap stop EXIT

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
(cd "$DIR" && exec env -u KOOR_AUTH_TOKEN -u KOOR_BIND -u KOOR_DATA_DIR "$KOOR_BIN" serve \
  --bind "127.0.0.1:$PORT" --data-dir "$DIR" --dashboard-bind "" --log-level warn \
  --liveness-interval 0 --compliance-interval 0 "$@" >"$DIR/log" 2>&1) &
PID=$!
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break
  sleep 0.1
done
curl -sf "http://127.0.0.1:$PORT/health" >/dev/null || { echo "soak.sh: server did not start" >&2; cat "$DIR/log" >&2; exit 1; }

mb() { awk -v b="$1" 'BEGIN {printf "%.1f", b/1e6}'; }
size() { stat -c %s "$1" 2>/dev/null || echo 0; }

echo "round put_rps writes_total db_mb wal_mb rss_mb"
total=0
first=""
for round in $(seq "$ROUNDS"); do
  out="$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" -s load/wrk/put.lua "http://127.0.0.1:$PORT")"
  if grep -q "Non-2xx or 3xx" <<<"$out"; then
    echo "soak.sh: errors during round $round:" >&2; echo "$out" >&2; exit 1
  fi
  rps="$(awk '/^Requests\/sec/ {print $2}' <<<"$out")"
  reqs="$(awk '/requests in/ {print $1}' <<<"$out")"
  total=$((total + reqs))
  first="${first:-$rps}"
  rss_kb="$(awk '/^VmRSS/ {print $2}' "/proc/$PID/status")"
  printf '%d %.0f %d %s %s %s\n' "$round" "$rps" "$total" \
    "$(mb "$(size "$DIR/data.db")")" "$(mb "$(size "$DIR/data.db-wal")")" "$(mb $((rss_kb * 1000)))"
done
awk -v f="$first" -v l="$rps" 'BEGIN {printf "last/first: %.2f\n", l/f}'
