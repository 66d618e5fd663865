"""Checks koor's webhook signatures with the reference Standard Webhooks library.

Starts `koor serve` on a free port with a fresh data directory, registers two webhooks
(a `whsec_` secret and a plain one) that point at a local receiver, publishes events,
fires test deliveries, and verifies every request the receiver gets with
`standardwebhooks` (`webhook-id`, `webhook-timestamp`, `webhook-signature`) and
`X-Koor-Signature` (hex HMAC-SHA256 of the body) with `hmac`. Exit 0 only when every
delivery verifies and none is missing.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from standardwebhooks.webhooks import Webhook

EVENTS = 20
TOPIC = "sw.check"
PATTERN = "sw.*"
STARTUP_SECONDS = 30.0
DELIVERY_SECONDS = 30.0
SW_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


@dataclass
class Hook:
    """A registered webhook and the keys its deliveries are checked with."""

    id: str
    secret: str
    verifier: Webhook

    @staticmethod
    def new(hook_id: str, secret: str) -> Hook:
        if secret.startswith("whsec_"):
            sw_secret = secret
        else:
            # A plain secret's Standard Webhooks key is its raw UTF-8 bytes.
            sw_secret = "whsec_" + base64.b64encode(secret.encode()).decode()
        return Hook(hook_id, secret, Webhook(sw_secret))


@dataclass
class Received:
    """One request the receiver got, and what the checks said."""

    hook: str
    message_id: str
    topic: str
    index: int | None
    sw_ok: bool
    koor_ok: bool
    other_key_rejected: bool
    error: str = ""


@dataclass
class Log:
    lock: threading.Lock = field(default_factory=threading.Lock)
    items: list[Received] = field(default_factory=list)

    def add(self, item: Received) -> None:
        with self.lock:
            self.items.append(item)

    def snapshot(self) -> list[Received]:
        with self.lock:
            return list(self.items)


def check(hooks: dict[str, Hook], hook_id: str, body: bytes, headers: dict[str, str], koor_sig: str) -> Received:
    hook = hooks.get(hook_id)
    if hook is None:
        return Received(hook_id, headers["webhook-id"], "", None, False, False, False, "unknown webhook path")
    error = ""
    sw_ok = False
    try:
        hook.verifier.verify(body, headers)
        sw_ok = True
    except Exception as e:  # the library raises its own error types
        error = f"standardwebhooks: {e!r}"
    expected = hmac.new(hook.secret.encode(), body, hashlib.sha256).hexdigest()
    koor_ok = hmac.compare_digest(expected, koor_sig)
    if not koor_ok:
        error = (error + "; " if error else "") + "X-Koor-Signature mismatch"
    # The check must be able to fail: another webhook's key must not verify this request.
    other_key_rejected = True
    for other in hooks.values():
        if other.id == hook_id:
            continue
        try:
            other.verifier.verify(body, headers)
            other_key_rejected = False
            error = (error + "; " if error else "") + f"{other.id}'s key also verifies"
        except Exception:
            pass
    topic = ""
    index = None
    try:
        payload = json.loads(body)
        topic = str(payload.get("topic", ""))
        data = payload.get("data")
        if topic == TOPIC and isinstance(data, dict) and isinstance(data.get("i"), int):
            index = data["i"]
    except ValueError:
        error = (error + "; " if error else "") + "body is not JSON"
    return Received(hook_id, headers["webhook-id"], topic, index, sw_ok, koor_ok, other_key_rejected, error)


def receiver(hooks: dict[str, Hook], log: Log) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            headers = {k: self.headers.get(k, "") for k in SW_HEADERS}
            koor_sig = self.headers.get("X-Koor-Signature", "")
            hook_id = self.path.rstrip("/").rsplit("/", 1)[-1]
            item = check(hooks, hook_id, body, headers, koor_sig)
            log.add(item)
            ok = item.sw_ok and item.koor_ok and item.other_key_rejected
            self.send_response(200 if ok else 401)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def resolve(binary: str) -> str:
    if os.sep in binary or (os.altsep and os.altsep in binary):
        path = Path(binary).resolve()
        if not path.is_file():
            sys.exit(f"verify: no koor binary at {binary}")
        return str(path)
    found = shutil.which(binary)
    if found is None:
        sys.exit(f"verify: {binary} is not on PATH")
    return found


def server_env() -> dict[str, str]:
    """The environment without KOOR_* settings and proxies, so only the flags apply."""
    proxies = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
    return {k: v for k, v in os.environ.items() if not k.startswith("KOOR_") and k.lower() not in proxies}


def wait_healthy(proc: subprocess.Popen[bytes], api: httpx.Client) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"koor serve exited with status {proc.returncode}")
        try:
            if api.get("/health").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"GET /health did not answer 200 within {STARTUP_SECONDS:.0f} s")


def expect_ok(resp: httpx.Response, what: str) -> None:
    if resp.status_code != 200:
        raise RuntimeError(f"{what}: HTTP {resp.status_code}: {resp.text.strip()}")


def run(koor: str, data_dir: Path) -> bool:
    hooks = {
        h.id: h
        for h in (
            Hook.new("sw-whsec", "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()),
            Hook.new("sw-plain", "plain-" + secrets.token_hex(16)),
        )
    }
    log = Log()
    recv = receiver(hooks, log)
    recv_port = recv.server_address[1]
    port = free_port()
    server_log = open(data_dir / "koor.log", "wb")
    cmd = [koor, "serve", "--bind", f"127.0.0.1:{port}", "--data-dir", str(data_dir), "--dashboard-bind", ""]
    proc = subprocess.Popen(cmd, cwd=data_dir, env=server_env(), stdout=server_log, stderr=subprocess.STDOUT)
    api = httpx.Client(base_url=f"http://127.0.0.1:{port}", trust_env=False, timeout=15.0)
    tests_ok = True
    try:
        wait_healthy(proc, api)
        for h in hooks.values():
            body = {
                "id": h.id,
                "url": f"http://127.0.0.1:{recv_port}/hook/{h.id}",
                "patterns": [PATTERN],
                "secret": h.secret,
            }
            expect_ok(api.post("/api/webhooks", json=body), f"creating webhook {h.id}")
        for i in range(EVENTS):
            resp = api.post("/api/events/publish", json={"topic": TOPIC, "data": {"i": i}})
            expect_ok(resp, f"publishing event {i}")
        want_events = EVENTS * len(hooks)
        deadline = time.monotonic() + DELIVERY_SECONDS
        while time.monotonic() < deadline:
            if sum(1 for r in log.snapshot() if r.topic == TOPIC) >= want_events:
                break
            time.sleep(0.1)
        for h in hooks.values():
            resp = api.post(f"/api/webhooks/{h.id}/test")
            if resp.status_code != 200:
                tests_ok = False
                print(f"verify: test delivery of {h.id}: HTTP {resp.status_code}: {resp.text.strip()}")
        time.sleep(0.5)  # let any stray duplicate arrive before counting
    except (RuntimeError, httpx.HTTPError) as e:
        print(f"verify: {e}", file=sys.stderr)
        tail = (data_dir / "koor.log").read_bytes()[-4000:].decode(errors="replace")
        if tail:
            print(f"--- koor serve output (tail) ---\n{tail}", file=sys.stderr)
        return False
    finally:
        api.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        server_log.close()
        recv.shutdown()
        recv.server_close()
    return report(hooks, log.snapshot(), tests_ok)


def report(hooks: dict[str, Hook], items: list[Received], tests_ok: bool) -> bool:
    expected = (EVENTS + 1) * len(hooks)
    received = len(items)
    sw_ok = sum(1 for r in items if r.sw_ok)
    koor_ok = sum(1 for r in items if r.koor_ok)
    print(
        f"standardwebhooks: {sw_ok}/{received} deliveries verified ({len(hooks)} secrets), "
        f"X-Koor-Signature {koor_ok}/{received}"
    )
    problems = [f"{r.hook} {r.message_id} ({r.topic}): {r.error}" for r in items if r.error]
    for h in hooks.values():
        mine = [r for r in items if r.hook == h.id]
        seen = sorted(r.index for r in mine if r.index is not None)
        missing = sorted(set(range(EVENTS)) - set(seen))
        if missing:
            problems.append(f"{h.id}: no delivery of events {missing}")
        if len(seen) != len(set(seen)):
            problems.append(f"{h.id}: some events were delivered more than once")
        tests = sum(1 for r in mine if r.topic == "webhook.test")
        if tests != 1:
            problems.append(f"{h.id}: {tests} test deliveries (want 1)")
        ids = [r.message_id for r in mine]
        if len(ids) != len(set(ids)):
            problems.append(f"{h.id}: a webhook-id was reused")
    if received != expected:
        problems.append(f"received {received} deliveries, expected {expected}")
    if not tests_ok:
        problems.append("a test delivery was not accepted")
    for p in problems:
        print(f"  FAIL {p}")
    return not problems and sw_ok == koor_ok == received == expected


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--koor", required=True, help="path to the koor binary")
    args = parser.parse_args()
    koor = resolve(args.koor)
    with tempfile.TemporaryDirectory(prefix="koor-sw-") as tmp:
        return 0 if run(koor, Path(tmp)) else 1


if __name__ == "__main__":
    sys.exit(main())
