#!/usr/bin/env bash
# A two-member koor cluster on one PostgreSQL database (API §27), measured in one run:
#
#   load/cluster.sh [--koor PATH] [--fanout PATH] [--postgres URL] [--rounds N]
#
# - Follower reads: wrk -t$WRK_THREADS -c$WRK_CONNECTIONS -d$WRK_DURATION (default -t2
#   -c64 -d10s) of GET /api/state/read/<random n below 1000> (load/wrk/get.lua), against
#   the leader and against the follower in turn (the order rotates each round); printed:
#   each round's req/s and the ratio follower/leader, then the medians.
# - Fan-out: koor-fanout (load/fanout) with $SUBSCRIBERS (100) subscribers at $RATE
#   (1000) events/s for $FANOUT_SECONDS (10) s, published through the leader, once with
#   every subscriber on the leader and once spread over both members; printed: each run's
#   p99 publish→receive and whether every subscriber got every event once and in order.
# - Both members are the release binary on a fresh database created on the server of
#   --postgres URL (default postgres://postgres@127.0.0.1:5432/postgres;
#   KOOR_BENCH_POSTGRES_URL) and dropped after the run.
# - Any non-2xx answer, socket error or lost event fails the run (exit status 1).
# - Needs psql, wrk and curl (Debian packages postgresql-client, wrk, curl); the koor and
#   koor-fanout binaries are built when not given (KOOR_BIN, KOOR_FANOUT_BIN).
set -euo pipefail
SCRIPT=cluster.sh
source "$(dirname "$0")/lib.sh"

FANOUT="${KOOR_FANOUT_BIN:-}"
ROUNDS=3
PG_ADMIN="${KOOR_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
while [ $# -gt 0 ]; do
  case "$1" in
    --koor) KOOR_BIN="$2"; shift 2 ;;
    --fanout) FANOUT="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --postgres) PG_ADMIN="$2"; shift 2 ;;
    *) echo "usage: load/cluster.sh [--koor PATH] [--fanout PATH] [--postgres URL] [--rounds N]" >&2; exit 2 ;;
  esac
done
export KEYS=1000

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v psql >/dev/null || missing+=(postgresql-client)
command -v curl >/dev/null || missing+=(curl)
install_missing "${missing[@]}"
koor_bin
if [ -z "$FANOUT" ]; then
  log "building the fan-out generator (cargo build --release --locked -p koor-fanout)"
  timeout 3600 cargo build --release --locked -p koor-fanout >&2
  FANOUT="${CARGO_TARGET_DIR:-target}/release/koor-fanout"
fi
[ -x "$FANOUT" ] || fail "koor-fanout not found: $FANOUT"

WORK="$(mktemp -d)"
PG_DB="koor_cluster_$$_$RANDOM"
LEADER_PID=""
LEADER_DIR=""
# lib.sh's stop ends the follower (the last server started); this ends the leader.
on_stop() {
  if [ -n "$LEADER_PID" ]; then
    kill -TERM "$LEADER_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$LEADER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$LEADER_PID" 2>/dev/null || true
    rm -rf "$LEADER_DIR"
  fi
  LEADER_PID=""
  psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}

psql "$PG_ADMIN" -qc "CREATE DATABASE $PG_DB" || fail "cannot create database $PG_DB"
start --database-url "${PG_ADMIN%/*}/$PG_DB"
LEADER_PID="$PID"; LEADER_DIR="$DIR"; LEADER="$BASE"
start --database-url "${PG_ADMIN%/*}/$PG_DB"
FOLLOWER="$BASE"
curl -sf "$FOLLOWER/health" | grep -q '"role":"follower"' || fail "the second member is not a follower"
log "leader $LEADER, follower $FOLLOWER; writing $KEYS keys through the follower"
for i in $(seq 0 $((KEYS - 1))); do
  curl -sf --max-time 5 -X PUT -H 'content-type: application/json' -d "{\"v\":\"$i\"}" \
    "$FOLLOWER/api/state/read/$i" >/dev/null || fail "write read/$i through the follower failed"
done
last="read/$((KEYS - 1))"
curl -sf "$FOLLOWER/api/state/$last" | grep -q "\"$((KEYS - 1))\"" || fail "the follower lacks its own write"
curl -sf "$LEADER/api/state/$last" | grep -q "\"$((KEYS - 1))\"" || fail "the leader lacks the write"

: >"$WORK/ratios"; : >"$WORK/rps-leader"; : >"$WORK/rps-follower"
for r in $(seq "$ROUNDS"); do
  if [ $((r % 2)) -eq 1 ]; then order="leader follower"; else order="follower leader"; fi
  for who in $order; do
    if [ "$who" = leader ]; then url="$LEADER"; else url="$FOLLOWER"; fi
    rps="$(wrk_rps -s load/wrk/get.lua "$url")"
    [ -n "$rps" ] || fail "$who: no requests answered"
    printf -v "RPS_$who" '%s' "$rps"
    echo "$rps" >>"$WORK/rps-$who"
  done
  ratio="$(awk -v f="$RPS_follower" -v l="$RPS_leader" 'BEGIN {printf "%.2f", f / l}')"
  echo "$ratio" >>"$WORK/ratios"
  echo "round $r: GET/s leader $RPS_leader, follower $RPS_follower, follower/leader $ratio"
done
echo "median: GET/s leader $(median <"$WORK/rps-leader"), follower $(median <"$WORK/rps-follower"), follower/leader $(median <"$WORK/ratios") (rounds: $(paste -sd, "$WORK/ratios"))"

fanout() {
  BASE_URL="$LEADER" SUBSCRIBE_URLS="$1" SUBSCRIBERS="${SUBSCRIBERS:-100}" RATE="${RATE:-1000}" \
    DURATION="${FANOUT_SECONDS:-10}" P99_MS="${P99_MS:-1000}" timeout 300 "$FANOUT" >"$WORK/fanout.out" 2>&1 ||
    { cat "$WORK/fanout.out" >&2; fail "fan-out over $1 lost events or failed"; }
  grep SUMMARY "$WORK/fanout.out"
}
echo "fan-out, every subscriber on the leader:"
fanout "$LEADER"
echo "fan-out, subscribers spread over leader and follower:"
fanout "$LEADER,$FOLLOWER"
