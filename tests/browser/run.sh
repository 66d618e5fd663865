#!/usr/bin/env bash
# Browser test of the web dashboard: starts the real binary and drives the system Chromium
# with playwright (never downloads a browser).
#
# Usage: tests/browser/run.sh [KOOR_BIN] [pytest args...]
#   KOOR_BIN        default: ${CARGO_TARGET_DIR:-target}/release/koor (relative to the repo root)
#   BROWSER_VENV    virtualenv to create/reuse (default: ~/.cache/koor-browser-venv)
#   SCREENSHOT_DIR  where page screenshots go (default: <repo>/target/dashboard-screenshots)
#   CHROMIUM        browser executable (default: /usr/bin/chromium)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${BROWSER_VENV:-$HOME/.cache/koor-browser-venv}"

if [ $# -gt 0 ] && [[ "$1" != -* ]]; then
    bin="$1"
    shift
    case "$bin" in /*) ;; *) bin="$PWD/$bin" ;; esac
else
    bin="${CARGO_TARGET_DIR:-target}/release/koor"
    case "$bin" in /*) ;; *) bin="$root/$bin" ;; esac
fi
export KOOR_BIN="$bin"
export SCREENSHOT_DIR="${SCREENSHOT_DIR:-$root/target/dashboard-screenshots}"
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

if [ ! -x "$CHROMIUM" ]; then
    echo "run.sh: no Chromium at $CHROMIUM: install it with 'apt-get install chromium' (or set CHROMIUM)" >&2
    exit 1
fi
if [ ! -x "$KOOR_BIN" ]; then
    echo "run.sh: no koor binary at $KOOR_BIN: build it first (cargo build --release) or pass its path" >&2
    exit 1
fi

# Install the pinned requirements only when requirements.txt changed.
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
stamp="$venv/.koor-requirements.sha256"
want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
    echo "$want" >"$stamp"
fi

mkdir -p "$SCREENSHOT_DIR"
export PYTHONDONTWRITEBYTECODE=1
cd "$root"
exec "$venv/bin/python" -m pytest "$here" -q -p no:cacheprovider "$@"
