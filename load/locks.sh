#!/usr/bin/env bash
# Locks (API §24), against a fresh server on 127.0.0.1:
#   1. acquire+release throughput: wrk, every connection acquiring a lock of its own and
#      releasing it with its token (load/wrk/locks.lua); pairs/s = requests/s / 2;
#   2. POST /api/locks/check of PATHS paths against GLOBS held globs of other holders, three
#      ways: realistic globs (literal first segments, as agents lock folders and files),
#      anchored (every glob starts with `**` but names a folder or file: `**/m7/*.rs`) and
#      the worst case (no literal segment at all: `**/*m7*.rs`, so every glob is a
#      candidate for every path). Prints min / median / max of CHECKS timed checks and
#      fails (exit 1) when the realistic median is not under LIMIT_MS.
# Usage: load/locks.sh
# Env: KOOR_BIN (else cargo build --release), WRK_THREADS (2), WRK_CONNECTIONS (32),
#      WRK_DURATION (10s), PATHS (1000), GLOBS (1000), CHECKS (20), LIMIT_MS (50).
# Needs wrk (Debian: apt-get install wrk) and python3.
set -euo pipefail
SCRIPT=locks.sh
CONNS=32
source "$(dirname "$0")/lib.sh"
export PATHS="${PATHS:-1000}" GLOBS="${GLOBS:-1000}" CHECKS="${CHECKS:-20}" LIMIT_MS="${LIMIT_MS:-50}"
need_wrk
koor_bin

register() {
  curl -sf -X POST "$BASE/api/instances/register" -d "{\"name\":\"$1\"}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}

echo "== acquire+release: wrk -t$THREADS -c$CONNS -d$DURATION"
start
HOLDERS="$(for i in $(seq 8); do register "bench-$i"; done | paste -sd, -)"
out="$(HOLDERS="$HOLDERS" wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s load/wrk/locks.lua "$BASE")"
echo "$out"
if grep -q "Non-2xx or 3xx" <<<"$out"; then
  echo "locks.sh: errors during the run" >&2; exit 1
fi
awk '/^Requests\/sec/ {printf "SUMMARY locks acquire+release pairs/s %.0f (requests/s %.0f)\n", $2/2, $2}' <<<"$out"
stop

check() { # check realistic|worst
  start
  KIND="$1" BASE="$BASE" python3 - <<'PY'
import http.client, json, os, statistics, sys, time, urllib.parse

base = urllib.parse.urlparse(os.environ["BASE"])
conn = http.client.HTTPConnection(base.hostname, base.port)
def call(method, path, body=None):
    conn.request(method, path, body=None if body is None else json.dumps(body),
                 headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    if resp.status != 200:
        sys.exit(f"{method} {path}: {resp.status} {data[:200]!r}")
    return json.loads(data)

kind, paths_n, globs_n = os.environ["KIND"], int(os.environ["PATHS"]), int(os.environ["GLOBS"])
holders = [call("POST", "/api/instances/register", {"name": f"owner-{i}"})["id"] for i in range(10)]
me = call("POST", "/api/instances/register", {"name": "me"})["id"]
# Globs as agents take them: a module's folder, its Rust files, a doc page, a generated file.
def glob(i):
    if kind == "anchored":
        return [f"**/m{i}/*.rs", f"**/doc{i}.md", f"**/gen{i}/**"][i % 3]
    if kind == "worst":
        return [f"**/*m{i}*.rs", f"**/doc{i}*.md", f"*/gen{i}*/**"][i % 3]
    return [f"src/m{i}/**", f"crates/c{i % 50}/src/m{i}/*.rs", f"docs/d{i % 20}/page{i}.md",
            f"gen/**/out{i}.json", f"src/m{i}/[a-f]*.rs"][i % 5]
for i in range(globs_n):
    # Wildcard-first globs overlap each other (`**/gen1/**` x `**/m0/*.rs`): all shared.
    shared = kind != "realistic" or i % 2 == 1
    call("POST", "/api/locks", {"resource": glob(i), "holder": holders[i % 10], "mode": "shared" if shared else "exclusive"})
# Paths as a commit stages them: half under a locked module, the rest free.
def path(j):
    k = j % globs_n
    return [f"src/m{k}/lib.rs", f"crates/c{k % 50}/src/m{k}/a.rs", f"docs/d{k % 20}/page{k}.md",
            f"gen/x/y/out{k}.json", f"src/free{j}/b.rs", f"src/m{k}/doc{k}.md", f"tests/gen{k}/t.rs"][j % 7]
paths = [path(j) for j in range(paths_n)]
times, blocked = [], 0
for _ in range(int(os.environ["CHECKS"])):
    t0 = time.perf_counter()
    report = call("POST", "/api/locks/check", {"paths": paths, "holder": me})
    times.append((time.perf_counter() - t0) * 1000)
    blocked = len(report["blocked"])
median = statistics.median(times)
print(f"SUMMARY locks check {kind}: {paths_n} paths x {globs_n} globs, {blocked} blocked entries, "
      f"ms min {min(times):.1f} median {median:.1f} max {max(times):.1f}")
if kind == "realistic" and median >= float(os.environ["LIMIT_MS"]):
    sys.exit(f"locks.sh: median {median:.1f} ms is not under {os.environ['LIMIT_MS']} ms")
PY
  stop
}

echo "== check: $PATHS paths against $GLOBS held globs"
check realistic
check anchored
check worst
