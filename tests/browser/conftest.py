"""Fixtures of the dashboard browser test: the real koor binary and the system Chromium.

Environment (set by run.sh): KOOR_BIN, SCREENSHOT_DIR, CHROMIUM.
"""

import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests
from playwright.sync_api import expect, sync_playwright

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STARTUP_SECONDS = 20
# The same text appears for every failed fetch/XHR; the status is what a test may expect.
RESOURCE_ERROR = re.compile(r"Failed to load resource: the server responded with a status of (\d{3})")

expect.set_options(timeout=5000)


def pytest_configure(config):
    config.addinivalue_line("markers", "koor_args(*args): extra `koor serve` arguments for the koor fixture")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Koor:
    """A running koor server: its API and dashboard base URLs and a small REST client."""

    def __init__(self, proc, api_url, dash_url, token, log_path):
        self.proc = proc
        self.api_url = api_url
        self.dash_url = dash_url
        self.token = token
        self.log_path = log_path

    def call(self, method, path, **kwargs):
        headers = kwargs.pop("headers", {})
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        res = requests.request(method, self.api_url + path, headers=headers, timeout=10, **kwargs)
        assert res.ok, f"{method} {path} -> {res.status_code} {res.text}"
        return res.json() if res.content else None

    def get(self, path, **kwargs):
        return self.call("GET", path, **kwargs)

    def post(self, path, **kwargs):
        return self.call("POST", path, **kwargs)

    def put(self, path, **kwargs):
        return self.call("PUT", path, **kwargs)

    def delete(self, path, **kwargs):
        return self.call("DELETE", path, **kwargs)

    def log(self):
        return Path(self.log_path).read_text(errors="replace")


def _wait_healthy(proc, urls, log_path):
    deadline = time.monotonic() + STARTUP_SECONDS
    for url in urls:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"koor exited with {proc.returncode}:\n{Path(log_path).read_text(errors='replace')}")
            try:
                if requests.get(url, timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"koor did not answer {url} within {STARTUP_SECONDS} s")
            time.sleep(0.1)


def _stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def koor_bin():
    path = os.environ.get("KOOR_BIN", "target/release/koor")
    if not os.access(path, os.X_OK):
        pytest.exit(f"no koor binary at {path}: build it or set KOOR_BIN (see tests/browser/run.sh)", returncode=2)
    return path


def _serve(koor_bin, tmp_path, token=None, extra=()):
    api_port, dash_port = _free_port(), _free_port()
    data_dir = tmp_path / "data"
    log_path = tmp_path / "koor.log"
    cmd = [
        koor_bin, "serve",
        "--bind", f"127.0.0.1:{api_port}",
        "--dashboard-bind", f"127.0.0.1:{dash_port}",
        "--data-dir", str(data_dir),
        "--log-level", "warn",
    ]
    if token:
        cmd += ["--auth-token", token]
    cmd += list(extra)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    api_url, dash_url = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{dash_port}"
    try:
        _wait_healthy(proc, [f"{api_url}/health", f"{dash_url}/health"], log_path)
    except BaseException:
        _stop(proc)
        raise
    return Koor(proc, api_url, dash_url, token, log_path)


@pytest.fixture
def koor(koor_bin, tmp_path, request):
    """A fresh koor server without auth (plus the test's `koor_args` marker arguments)."""
    marker = request.node.get_closest_marker("koor_args")
    server = _serve(koor_bin, tmp_path, extra=marker.args if marker else ())
    yield server
    _stop(server.proc)


@pytest.fixture
def koor_auth(koor_bin, tmp_path):
    """A fresh koor server that requires a bearer token."""
    server = _serve(koor_bin, tmp_path, token="browser-test-token")
    yield server
    _stop(server.proc)


@pytest.fixture(scope="session")
def browser():
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not os.access(chromium, os.X_OK):
        pytest.exit(f"no Chromium at {chromium}: install it with 'apt-get install chromium' (or set CHROMIUM)", returncode=2)
    with sync_playwright() as p:
        # launch() gives every run a fresh temporary profile (user-data dir).
        b = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


class UI:
    """A browser page plus what the test needs around it: console checks and screenshots."""

    def __init__(self, page):
        self.page = page
        self.errors = []
        self.allowed_statuses = set()
        page.on("console", lambda msg: msg.type == "error" and self.errors.append(msg.text))
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))

    def open(self, url):
        self.page.goto(url)
        return self.page

    def allow_status(self, *statuses):
        """Resource errors with these HTTP statuses are expected by the scenario."""
        self.allowed_statuses.update(str(s) for s in statuses)

    def wait_live(self):
        expect(self.page.get_by_test_id("live-status")).to_have_attribute("data-state", "live")

    def mark(self):
        """Marks the document, so that assert_not_reloaded can tell it is still the same one."""
        self.page.evaluate("window.__koorTestMark = 'still-here'")

    def assert_not_reloaded(self):
        assert self.page.evaluate("window.__koorTestMark") == "still-here", "the page was reloaded"

    def shot(self, name):
        out = Path(os.environ.get("SCREENSHOT_DIR", "target/dashboard-screenshots"))
        out.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(out / f"{name}.png"), full_page=True)

    def unexpected_errors(self):
        bad = []
        for text in self.errors:
            m = RESOURCE_ERROR.search(text)
            if m and m.group(1) in self.allowed_statuses:
                continue
            bad.append(text)
        return bad


@pytest.fixture
def ui(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme="light")
    helper = UI(context.new_page())
    yield helper
    context.close()
    bad = helper.unexpected_errors()
    assert not bad, f"the browser console logged errors: {bad}"
