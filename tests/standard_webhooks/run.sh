#!/usr/bin/env bash
# Verifies koor's webhook signatures with the reference Standard Webhooks library.
# Usage: tests/standard_webhooks/run.sh --koor target/release/koor
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${KOOR_SW_VENV:-$HOME/.cache/koor-sw-venv}"

if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check standardwebhooks httpx

exec "$venv/bin/python" "$here/verify.py" "$@"
