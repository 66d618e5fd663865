#!/usr/bin/env bash
# Fuzzing of the REST API with schemathesis, driven by the server's own OpenAPI document
# (GET /openapi.json): every operation gets 15 generated requests (fixed seed), and every
# answer must be documented (status code, content type, schema) and never a 5xx. The
# server must still be healthy afterwards.
#
# Usage: tests/fuzz/run.sh [KOOR_BIN] [schemathesis args...]
#   KOOR_BIN     default: ${CARGO_TARGET_DIR:-target}/release/koor (relative to the repo root)
#   FUZZ_VENV    virtualenv to create/reuse (default: ~/.cache/koor-fuzz-venv)
#   FUZZ_SEED    default 20261206; FUZZ_EXAMPLES default 15
#
# Left out: operations that wait by design (long polls, lock and claim waits) and the two
# that call out to a URL from the request (creating a webhook, contract /test), so that a
# generated URL is never contacted.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${FUZZ_VENV:-$HOME/.cache/koor-fuzz-venv}"

if [ $# -gt 0 ] && [[ "$1" != -* ]]; then
    bin="$1"
    shift
    case "$bin" in /*) ;; *) bin="$PWD/$bin" ;; esac
else
    bin="${CARGO_TARGET_DIR:-target}/release/koor"
    case "$bin" in /*) ;; *) bin="$root/$bin" ;; esac
fi
if [ ! -x "$bin" ]; then
    echo "run.sh: no koor binary at $bin: build it first (cargo build --release) or pass its path" >&2
    exit 1
fi

if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
stamp="$venv/.koor-requirements.sha256"
want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
    echo "$want" >"$stamp"
fi

work="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
token="fuzz-$RANDOM-$RANDOM"
base="http://127.0.0.1:$port"
"$bin" serve --bind "127.0.0.1:$port" --dashboard-bind "" --data-dir "$work/data" \
    --auth-token "$token" --log-level warn >"$work/server.log" 2>&1 &
server=$!
cleanup() {
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

for _ in $(seq 1 100); do
    curl -fsS "$base/health" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fsS "$base/health" >/dev/null

status=0
# schemathesis keeps a cache in its working directory: keep it out of the repository.
cd "$work"
"$venv/bin/schemathesis" run "$base/openapi.json" \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --seed "${FUZZ_SEED:-20261206}" \
    --max-examples "${FUZZ_EXAMPLES:-15}" \
    --generation-database none \
    --request-timeout 20 \
    --workers 2 \
    --no-color \
    --exclude-operation-id get_api_events_wait \
    --exclude-operation-id post_api_tasks_claim \
    --exclude-operation-id get_api_tasks_groups_group_wait \
    --exclude-operation-id post_api_locks \
    --exclude-operation-id post_api_webhooks \
    --exclude-operation-id post_api_contracts_project_name_test \
    "$@" || status=$?

if ! curl -fsS "$base/health"; then
    echo "run.sh: the server is not healthy after fuzzing; its log:" >&2
    tail -50 "$work/server.log" >&2
    exit 1
fi
echo
if grep -q "panicked" "$work/server.log"; then
    echo "run.sh: the server logged a panic:" >&2
    grep -A5 "panicked" "$work/server.log" >&2
    exit 1
fi
exit "$status"
