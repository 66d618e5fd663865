#!/usr/bin/env bash
# What auth costs the read path: GET /api/state/{key} through an access key on a server with
# an admin token and a rate limit that the run never reaches, against the same GET on an open
# server (no token, no key, no limit), measured next to each other in every round.
# Usage: load/auth.sh [ROUNDS]   (default 3; the figures reported are medians)
# Env: KOOR_BIN (else cargo build --release), WRK_THREADS (2), WRK_CONNECTIONS (64),
#      WRK_DURATION (10s). Needs wrk (Debian: apt-get install wrk).
set -euo pipefail
SCRIPT=auth.sh
source "$(dirname "$0")/lib.sh"
ROUNDS="${1:-3}"
need_wrk
koor_bin

# rps TOKEN URL: requests/s of one wrk run (TOKEN may be empty); fails on any non-2xx/3xx.
rps() { KOOR_TOKEN="$1" wrk_rps -s load/wrk/auth.lua "$2"; }

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
