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
# - Needs psql, wrk and curl (Debian packages postgresql-client, wrk, curl).
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET="${CARGO_TARGET_DIR:-$HOME/.cache/koor-target}"
KOOR="${KOOR_BIN:-$TARGET/release/koor}"
FANOUT="${KOOR_FANOUT_BIN:-$TARGET/release/koor-fanout}"
ROUNDS=3
PG_ADMIN="${KOOR_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
while [ $# -gt 0 ]; do
  case "$1" in
    --koor) KOOR="$2"; shift 2 ;;
    --fanout) FANOUT="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --postgres) PG_ADMIN="$2"; shift 2 ;;
    *) echo "usage: load/cluster.sh [--koor PATH] [--fanout PATH] [--postgres URL] [--rounds N]" >&2; exit 2 ;;
  esac
done
THREADS="${WRK_THREADS:-2}"
CONNS="${WRK_CONNECTIONS:-64}"
DURATION="${WRK_DURATION:-10s}"
export KEYS=1000
WRK_TIMEOUT=$((${DURATION%s} + 60))

log() { echo "cluster.sh: $*" >&2; }
fail() { log "$*"; exit 1; }

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v psql >/dev/null || need+=(postgresql-client)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || fail "missing ${need[*]}: run as root, or apt-get install ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  timeout 600 apt-get install -y --no-install-recommends "${need[@]}" >&2 ||
    { timeout 600 apt-get update >&2; timeout 600 apt-get install -y --no-install-recommends "${need[@]}" >&2; }
fi
[ -x "$KOOR" ] || fail "koor binary not found: $KOOR (cargo build --release --locked, or --koor PATH)"
if [ ! -x "$FANOUT" ]; then
  log "building the fan-out generator (cargo build --release --locked -p koor-fanout)"
  timeout 3600 cargo build --release --locked -p koor-fanout >&2
  FANOUT="$TARGET/release/koor-fanout"
fi

WORK="$(mktemp -d)"
PG_DB="koor_cluster_$$_$RANDOM"
PIDS=()
WRK_PID=""
cleanup() {
  if [ -n "$WRK_PID" ]; then kill -TERM "$WRK_PID" 2>/dev/null || true; fi
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_member NAME: a member on the database; sets URL_<NAME>.
start_member() {
  local name="$1" port dir
  port="$(free_port)"; dir="$WORK/$name"; mkdir -p "$dir"
  (cd "$dir" && exec env -u KOOR_AUTH_TOKEN -u KOOR_BIND -u KOOR_DATA_DIR -u KOOR_DASHBOARD_BIND \
    "$KOOR" serve --bind "127.0.0.1:$port" --data-dir "$dir" --dashboard-bind "" \
    --log-level warn --liveness-interval 0 --compliance-interval 0 \
    --database-url "${PG_ADMIN%/*}/$PG_DB") >"$dir/log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 300); do
    curl -sf --max-time 1 "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -sf --max-time 1 "http://127.0.0.1:$port/health" >/dev/null || { cat "$dir/log" >&2; fail "$name did not start"; }
  printf -v "URL_$name" '%s' "http://127.0.0.1:$port"
}

# run_wrk NAME URL: sets RPS.
run_wrk() {
  timeout "$WRK_TIMEOUT" wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s load/wrk/get.lua "$2" \
    >"$WORK/wrk.out" 2>&1 &
  WRK_PID=$!
  wait "$WRK_PID" || { WRK_PID=""; cat "$WORK/wrk.out" >&2; fail "$1: wrk failed"; }
  WRK_PID=""
  if grep -qE "Non-2xx or 3xx|Socket errors" "$WORK/wrk.out"; then
    cat "$WORK/wrk.out" >&2; fail "$1: failed requests during the run"
  fi
  RPS="$(awk '/^Requests\/sec/ {print $2}' "$WORK/wrk.out")"
  [ -n "$RPS" ] || { cat "$WORK/wrk.out" >&2; fail "$1: no requests answered"; }
}

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

psql "$PG_ADMIN" -qc "CREATE DATABASE $PG_DB" || fail "cannot create database $PG_DB"
start_member leader
start_member follower
role="$(curl -sf "$URL_follower/health" | sed -n 's/.*"role":"\([a-z]*\)".*/\1/p')"
[ "$role" = follower ] || fail "the second member is a $role, not a follower"
log "leader $URL_leader, follower $URL_follower; seeding $KEYS keys"
for i in $(seq 0 $((KEYS - 1))); do
  printf 'PUT /api/state/read/%d\n' "$i"
done | while read -r _ path; do
  curl -sf --max-time 5 -X PUT -H 'content-type: application/json' -d "{\"v\":\"${path##*/}\"}" \
    "$URL_follower$path" >/dev/null || exit 1
done || fail "seeding failed"
# Written through the follower: the follower and the leader read them back.
curl -sf "$URL_follower/api/state/read/$((KEYS - 1))" | grep -q "\"$((KEYS - 1))\"" || fail "follower lacks its write"
curl -sf "$URL_leader/api/state/read/$((KEYS - 1))" | grep -q "\"$((KEYS - 1))\"" || fail "leader lacks the write"

: >"$WORK/ratios"; : >"$WORK/rps-leader"; : >"$WORK/rps-follower"
for r in $(seq "$ROUNDS"); do
  if [ $((r % 2)) -eq 1 ]; then order="leader follower"; else order="follower leader"; fi
  for who in $order; do
    url_var="URL_$who"
    run_wrk "$who" "${!url_var}"
    printf -v "RPS_$who" '%s' "$RPS"
    echo "$RPS" >>"$WORK/rps-$who"
  done
  ratio="$(awk -v f="$RPS_follower" -v l="$RPS_leader" 'BEGIN {printf "%.2f", f / l}')"
  echo "$ratio" >>"$WORK/ratios"
  echo "round $r: GET/s leader $RPS_leader, follower $RPS_follower, follower/leader $ratio"
done
echo "median: GET/s leader $(median <"$WORK/rps-leader"), follower $(median <"$WORK/rps-follower"), follower/leader $(median <"$WORK/ratios") (rounds: $(paste -sd, "$WORK/ratios"))"

fanout() {
  BASE_URL="$URL_leader" SUBSCRIBE_URLS="$1" SUBSCRIBERS="${SUBSCRIBERS:-100}" RATE="${RATE:-1000}" \
    DURATION="${FANOUT_SECONDS:-10}" P99_MS="${P99_MS:-1000}" timeout 300 "$FANOUT" >"$WORK/fanout.out" 2>&1 ||
    { cat "$WORK/fanout.out" >&2; fail "fan-out over $1 lost events or failed"; }
  grep SUMMARY "$WORK/fanout.out"
}
echo "fan-out, every subscriber on the leader:"
fanout "$URL_leader"
echo "fan-out, subscribers spread over leader and follower:"
fanout "$URL_leader,$URL_follower"
