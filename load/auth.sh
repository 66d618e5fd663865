#!/usr/bin/env bash
# What auth costs the read path: GET /api/state/{key} through an access key on a server with
# an admin token and a rate limit that the run never reaches, against the same GET on an open
# server (no token, no key, no limit), measured next to each other in every round.
# Usage: load/auth.sh [ROUNDS]   (default 3; the figures reported are medians)
# Env: KOOR_BIN (else cargo build --release), WRK_THREADS (2), WRK_CONNECTIONS (64),
#      WRK_DURATION (10s). Needs wrk (Debian: apt-get install wrk).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-3}"
THREADS="${WRK_THREADS:-2}"
CONNS="${WRK_CONNECTIONS:-64}"
DURATION="${WRK_DURATION:-10s}"
command -v wrk >/dev/null || { echo "auth.sh: wrk not found (Debian: apt-get install wrk)" >&2; exit 2; }
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
  (cd "$DIR" && exec env -u KOOR_AUTH_TOKEN -u KOOR_BIND -u KOOR_DATA_DIR -u KOOR_RATE_LIMIT \
    -u KOOR_RATE_BURST "$KOOR_BIN" serve \
    --bind "127.0.0.1:$PORT" --data-dir "$DIR" --dashboard-bind "" --log-level warn \
    --liveness-interval 0 --compliance-interval 0 "$@" >"$DIR/log" 2>&1) &
  PID=$!
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && return 0
    sleep 0.1
  done
  echo "auth.sh: server did not start" >&2; cat "$DIR/log" >&2; exit 1
}

# rps TOKEN URL: requests/s of one wrk run (TOKEN may be empty); fails on any non-2xx/3xx.
rps() {
  local out
  out="$(KOOR_TOKEN="$1" wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s load/wrk/auth.lua "$2")"
  if grep -q "Non-2xx or 3xx" <<<"$out"; then
    echo "auth.sh: errors during the run:" >&2; echo "$out" >&2; exit 1
  fi
  awk '/^Requests\/sec/ {print $2}' <<<"$out"
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

VALUE='{"config":{"replicas":3,"region":"eu"}}'
echo "round open_rps key_rps ratio"
f="${TMPDIR:-/tmp}/koor-auth-bench.$$"
: >"$f"
for round in $(seq "$ROUNDS"); do
  start
  curl -sf -X PUT "http://127.0.0.1:$PORT/api/state/bench/read" -d "$VALUE" >/dev/null
  open="$(rps "" "http://127.0.0.1:$PORT/api/state/bench/read")"
  stop
  # A limit far above what one machine can send: configured, never reached.
  start --auth-token bench-admin --rate-limit 1000000 --rate-burst 1000000
  key="$(curl -sf -X POST "http://127.0.0.1:$PORT/api/keys" -H 'Authorization: Bearer bench-admin' \
    -d '{"name":"bench","scopes":["read","write"],"projects":["bench"]}' \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')"
  curl -sf -X PUT "http://127.0.0.1:$PORT/api/state/bench/read" -H "Authorization: Bearer $key" \
    -d "$VALUE" >/dev/null
  keyed="$(rps "$key" "http://127.0.0.1:$PORT/api/state/bench/read")"
  stop
  line="$(awk -v r="$round" -v o="$open" -v k="$keyed" 'BEGIN {printf "%d %.0f %.0f %.2f", r, o, k, k/o}')"
  echo "$line" | tee -a "$f"
done
echo "median $(awk '{print $2}' "$f" | median) $(awk '{print $3}' "$f" | median) $(awk '{print $4}' "$f" | median)"
rm -f "$f"
