# What the wrk scripts of load/ share (auth.sh, bench.sh, cluster.sh, etcd.sh, locks.sh,
# memory.sh, postgres.sh, soak.sh, tasks.sh). Sourced, never run: a script sets SCRIPT (its name, for
# messages), runs `set -euo pipefail`, then `source "$(dirname "$0")/lib.sh"`, which moves
# to the repository's root.
#
#   THREADS CONNS DURATION  wrk's -t -c -d: WRK_THREADS (2), WRK_CONNECTIONS (CONNS as set
#                           before sourcing, else 64), WRK_DURATION (10s)
#   log MSG / fail MSG      a message on stderr (fail also exits 1)
#   need_wrk                exits 2 when wrk is missing
#   koor_bin                sets KOOR_BIN: as given, else `cargo build --release --locked`
#   free_ports N            N distinct free ports on 127.0.0.1, one per line
#   wait_up URL PATTERN NAME  until URL answers a body matching PATTERN (30 s at most)
#   start [FLAGS...]        a fresh `koor serve` on a free loopback port, in a temporary data
#                           directory it runs from (no ./settings.json is read), background
#                           timers off, extra serve FLAGS; sets PID, DIR, PORT and BASE
#   stop                    stops wrk and the server (TERM, KILL after 10 s), removes DIR,
#                           then runs the script's `on_stop` if it defines one; runs at exit
#   wrk_rps ARGS...         requests/s of one wrk run against ARGS (URL, -s script, ...);
#                           any non-2xx/3xx answer fails the script
#   median                  the median of the numbers on stdin, one per line
#   cpu_ticks               user + system clock ticks the server has used so far
#   run_wrk NAME SCRIPT     one wrk run of SCRIPT against $URL, stopped after WRK_TIMEOUT;
#                           sets RPS, REQUESTS and CPU (% of a core); fails on any error
#   install_missing PKG...  apt-get install of missing Debian packages (needs root)
#   start_etcd              a fresh single-member etcd on loopback ports; sets URL
#   etcd_put KEY VALUE      one put through etcd's gateway at $PUT_PATH; prints the revision

cd "$(dirname "${BASH_SOURCE[0]}")/.."
THREADS="${WRK_THREADS:-2}"
CONNS="${WRK_CONNECTIONS:-${CONNS:-64}}"
DURATION="${WRK_DURATION:-10s}"

log() { echo "$SCRIPT: $*" >&2; }
fail() { log "$*"; exit 1; }

need_wrk() {
  command -v wrk >/dev/null || { log "wrk not found (Debian: apt-get install wrk)"; exit 2; }
}

koor_bin() {
  if [ -z "${KOOR_BIN:-}" ]; then
    cargo build --release --locked >&2
    KOOR_BIN="${CARGO_TARGET_DIR:-target}/release/koor"
  fi
  [ -x "$KOOR_BIN" ] || fail "koor binary not found: $KOOR_BIN"
}

free_ports() {
  python3 -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print("\n".join(str(s.getsockname()[1]) for s in socks))' "$1"
}

PID=""
DIR=""
WRK_PID=""

wait_up() {
  for _ in $(seq 300); do
    curl -sf --max-time 1 "$1" 2>/dev/null | grep -q "$2" && return 0
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
  done
  log "$3 did not start; its log:"; cat "$DIR/log" >&2; exit 1
}

start() {
  DIR="$(mktemp -d)"
  PORT="$(free_ports 1)"
  BASE="http://127.0.0.1:$PORT"
  (cd "$DIR" && exec env -u KOOR_AUTH_TOKEN -u KOOR_BIND -u KOOR_DATA_DIR -u KOOR_DASHBOARD_BIND \
    -u KOOR_RATE_LIMIT -u KOOR_RATE_BURST "$KOOR_BIN" serve \
    --bind "127.0.0.1:$PORT" --data-dir "$DIR" --dashboard-bind "" --log-level warn \
    --liveness-interval 0 --compliance-interval 0 "$@") >"$DIR/log" 2>&1 &
  PID=$!
  wait_up "$BASE/health" . koor
}

stop() {
  if [ -n "$WRK_PID" ]; then kill -TERM "$WRK_PID" 2>/dev/null || true; wait "$WRK_PID" 2>/dev/null || true; fi
  WRK_PID=""
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$PID" 2>/dev/null || true
  fi
  if [ -n "$PID" ]; then wait "$PID" 2>/dev/null || true; fi
  if [ -n "$DIR" ]; then rm -rf "$DIR"; fi
  if [ -n "${WRK_OUT:-}" ]; then rm -f "$WRK_OUT"; fi
  PID=""; DIR=""; WRK_OUT=""
  if declare -F on_stop >/dev/null; then on_stop; fi
}
trap stop EXIT

wrk_rps() {
  local out
  out="$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$@")"
  if grep -q "Non-2xx or 3xx" <<<"$out"; then
    log "errors during the run:"; echo "$out" >&2; exit 1
  fi
  awk '/^Requests\/sec/ {print $2}' <<<"$out"
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$PID/stat"; }

# wrk's own bound for run_wrk: the duration (wrk's syntax: 10, 10s, 2m, 1h) plus a minute.
case "$DURATION" in
  *h) WRK_TIMEOUT=$((${DURATION%h} * 3600 + 60)) ;;
  *m) WRK_TIMEOUT=$((${DURATION%m} * 60 + 60)) ;;
  *) WRK_TIMEOUT=$((${DURATION%s} + 60)) ;;
esac

# install_missing PACKAGE...: apt-get install the Debian packages given (needs root).
install_missing() {
  [ $# -gt 0 ] || return 0
  [ "$(id -u)" = 0 ] || fail "missing $*: run as root, or apt-get install $*"
  log "apt-get install $*"
  export DEBIAN_FRONTEND=noninteractive
  if ! timeout 600 apt-get install -y --no-install-recommends "$@" >&2; then
    timeout 600 apt-get update >&2
    timeout 600 apt-get install -y --no-install-recommends "$@" >&2
  fi
}

# start_etcd: a fresh single-member etcd, client and peer URLs on loopback, default
# durability; sets URL. ETCD_* variables (read by etcd as flags) are removed.
start_etcd() {
  DIR="$(mktemp -d)"
  local ports client peer
  ports="$(free_ports 2)"; client="${ports%%$'\n'*}"; peer="${ports##*$'\n'}"
  URL="http://127.0.0.1:$client"
  local unset=()
  for v in $(compgen -e | grep '^ETCD_' || true); do unset+=(-u "$v"); done
  (cd "$DIR" && exec env "${unset[@]}" "$ETCD" --name bench --data-dir "$DIR/data" \
    --listen-client-urls "$URL" --advertise-client-urls "$URL" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "bench=http://127.0.0.1:$peer" --initial-cluster-state new \
    --logger zap --log-level warn) >"$DIR/log" 2>&1 &
  PID=$!
  wait_up "$URL/health" '"health":"true"' etcd
}

# etcd_put KEY VALUE: one put through the gateway at $PUT_PATH; prints the store revision.
etcd_put() {
  local body
  body="{\"key\":\"$(printf %s "$1" | base64 -w0)\",\"value\":\"$(printf %s "$2" | base64 -w0)\"}"
  curl -sf --max-time 5 -X POST "$URL$PUT_PATH" -d "$body" |
    sed -n 's/.*"revision":"\([0-9]*\)".*/\1/p'
}

# run_wrk NAME SCRIPT: one wrk run against $URL; sets RPS, REQUESTS and CPU (% of a core).
run_wrk() {
  local out c0 c1 t0 t1
  WRK_OUT="${WRK_OUT:-$(mktemp)}"
  c0="$(cpu_ticks)"; t0="$(date +%s.%N)"
  # In the background, so that a signal to this script stops wrk at once (see stop).
  timeout "$WRK_TIMEOUT" wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s "$2" "$URL" \
    >"$WRK_OUT" 2>&1 &
  WRK_PID=$!
  wait "$WRK_PID" || { WRK_PID=""; log "$1: wrk failed or timed out:"; cat "$WRK_OUT" >&2; exit 1; }
  WRK_PID=""
  out="$(cat "$WRK_OUT")"
  c1="$(cpu_ticks)"; t1="$(date +%s.%N)"
  if grep -qE "Non-2xx or 3xx|Socket errors" <<<"$out"; then
    log "$1: failed requests during the run:"; echo "$out" >&2; exit 1
  fi
  RPS="$(awk '/^Requests\/sec/ {print $2}' <<<"$out")"
  REQUESTS="$(awk '/ requests in / {print $1}' <<<"$out")"
  [ -n "$RPS" ] && [ "${REQUESTS:-0}" -gt 0 ] || { log "$1: no requests answered:"; echo "$out" >&2; exit 1; }
  CPU="$(awk -v a="$c0" -v b="$c1" -v s="$t0" -v e="$t1" -v hz="$(getconf CLK_TCK)" \
    'BEGIN {printf "%.0f", (b - a) / hz / (e - s) * 100}')"
}
