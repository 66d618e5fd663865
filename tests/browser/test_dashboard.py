"""The dashboard as a person uses it: each step asserts what the page shows.

Data is written over REST against the API port after the page is open; "live" steps expect
the page to show it within LIVE_MS without a reload.
"""

import json
import re
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import expect

LIVE_MS = 2000
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def test_overview_shows_agents_live(koor, ui):
    page = ui.open(koor.dash_url + "/")
    instances = page.get_by_test_id("instances")
    expect(instances).to_contain_text("No agents yet")
    expect(instances).to_contain_text("koor register NAME")
    ui.wait_live()
    ui.mark()

    # The agent list follows agent.* events; it is not polled every second any more.
    reads = []
    page.on("request", lambda r: r.url.endswith("/api/instances") and reads.append(time.monotonic()))
    page.wait_for_timeout(2500)
    assert len(reads) <= 1, f"the agent list was read {len(reads)} times in 2.5 s without any agent event"

    agent = koor.post("/api/instances/register", json={"name": "backend-agent", "workspace": "fleet", "stack": "rust"})

    row = page.get_by_test_id("instance-row").filter(has_text="backend-agent")
    expect(row).to_be_visible(timeout=LIVE_MS)
    expect(row).to_contain_text("fleet")
    expect(row).to_contain_text("pending")
    expect(page.get_by_test_id("count-pending")).to_contain_text("1")
    expect(page.get_by_test_id("event-item").filter(has_text="agent.registered")).to_be_visible()
    seen = row.locator("time")
    expect(seen).to_have_attribute("title", ISO)
    # Relative times refresh by themselves ("just now" → "2 s ago").
    expect(seen).to_have_text(re.compile(r"^\d+ s ago$"), timeout=5000)

    # Activation and deregistration show live too (agent.active, agent.deregistered).
    koor.post(f"/api/instances/{agent['id']}/activate")
    expect(row).to_contain_text("active", timeout=LIVE_MS)
    expect(page.get_by_test_id("count-active")).to_contain_text("1")
    koor.delete(f"/api/instances/{agent['id']}")
    expect(row).to_have_count(0, timeout=LIVE_MS)
    expect(instances).to_contain_text("No agents yet")
    expect(page.get_by_test_id("count-total")).to_contain_text("0")
    expect(page.get_by_test_id("event-item").filter(has_text="agent.deregistered")).to_be_visible()
    ui.assert_not_reloaded()


@pytest.mark.koor_args("--stale-after", "0.5", "--liveness-interval", "0")
def test_overview_status_follows_agent_events(koor, ui):
    agent = koor.post("/api/instances/register", json={"name": "worker", "workspace": "fleet"})
    koor.post(f"/api/instances/{agent['id']}/activate")
    page = ui.open(koor.dash_url + "/")
    row = page.get_by_test_id("instance-row").filter(has_text="worker")
    expect(row).to_contain_text("active")
    ui.wait_live()

    # A forced liveness check publishes agent.stale; the list follows over the WebSocket.
    time.sleep(0.6)
    assert koor.post("/api/liveness/check")["count"] == 1
    expect(row).to_contain_text("stale", timeout=LIVE_MS)
    expect(page.get_by_test_id("count-stale")).to_contain_text("1")
    expect(page.get_by_test_id("event-item").filter(has_text="agent.stale")).to_be_visible(timeout=LIVE_MS)

    koor.post(f"/api/instances/{agent['id']}/heartbeat")  # back from stale: agent.active
    expect(row).to_contain_text("active", timeout=LIVE_MS)
    # One agent.active from the activation before the page opened, one from the heartbeat.
    expect(page.get_by_test_id("event-item").filter(has_text="agent.active")).to_have_count(2, timeout=LIVE_MS)


def test_overview_events_tax_and_spend(koor, ui):
    page = ui.open(koor.dash_url + "/")
    expect(page.get_by_test_id("recent-events")).to_contain_text("No events yet")
    ui.wait_live()
    ui.mark()

    koor.post("/api/events/publish", json={"topic": "build.frontend.done", "data": {"ok": True, "commit": "abc123"}})
    item = page.get_by_test_id("event-item").filter(has_text="build.frontend.done")
    expect(item).to_be_visible(timeout=LIVE_MS)
    expect(item).to_contain_text('"commit":"abc123"')

    # An event published while the socket is down arrives once after the reconnect (resume).
    page.evaluate("stream.stop()")
    expect(page.get_by_test_id("live-status")).to_have_attribute("data-state", "offline")
    koor.post("/api/events/publish", json={"topic": "build.backend.done", "data": {"while": "offline"}})
    page.evaluate("stream.start()")
    ui.wait_live()
    expect(page.get_by_test_id("event-item").filter(has_text="build.backend.done")).to_have_count(1, timeout=LIVE_MS)
    koor.post("/api/events/publish", json={"topic": "build.docs.done"})
    expect(page.get_by_test_id("event-item").filter(has_text="build.docs.done")).to_be_visible(timeout=LIVE_MS)
    expect(page.get_by_test_id("event-item").filter(has_text="build.backend.done")).to_have_count(1)

    koor.put("/api/llm/budgets/project:web", json={"period": "day", "max_tokens": 10000})
    koor.post("/api/llm/usage", json={"provider": "openai", "model": "gpt-4", "project": "web",
                                      "tokens_in": 6000, "tokens_out": 2500, "cost_usd": 0.12})
    # Usage publishes llm.usage.recorded and budget.warning: spend and budget refresh live.
    expect(page.get_by_test_id("llm-summary")).to_contain_text("$0.1200", timeout=LIVE_MS)
    budget = page.get_by_test_id("budget-row").filter(has_text="project:web")
    expect(budget).to_contain_text("85.0 %", timeout=LIVE_MS)
    expect(budget).to_contain_text("warning")
    expect(page.get_by_test_id("event-item").filter(has_text="budget.warning")).to_be_visible()

    expect(page.get_by_test_id("tax-rest")).not_to_have_text("0", timeout=7000)
    expect(page.get_by_test_id("uptime")).to_have_text(re.compile(r"\d+s$"))
    page.get_by_test_id("tax-reset").click()
    expect(page.get_by_test_id("toast")).to_contain_text("reset")
    expect(page.get_by_test_id("tax-rest")).to_have_text("0")
    ui.assert_not_reloaded()

    for name, workspace in [("backend", "api"), ("frontend", "web")]:
        koor.post("/api/instances/register", json={"name": name, "workspace": workspace, "stack": "rust"})
    expect(page.get_by_test_id("instance-row")).to_have_count(2, timeout=LIVE_MS)
    ui.shot("overview")


def _put_state(koor, key, value):
    return koor.put(f"/api/state/{key}", data=json.dumps(value), headers={"Content-Type": "application/json"})


def test_state_value_history_diff_and_rollback(koor, ui):
    key = "fleet/config"
    for n, features in enumerate([["state"], ["state", "events"], ["state", "events", "rules"]], start=1):
        _put_state(koor, key, {"name": "koor", "release": n, "features": features})

    page = ui.open(koor.dash_url + "/state")
    page.get_by_test_id("state-key").filter(has_text=key).click()
    expect(page).to_have_url(re.compile(r"/state\?key=fleet%2Fconfig$"))
    expect(page.get_by_test_id("state-version")).to_have_text("version 3")
    value = page.get_by_test_id("state-value")
    expect(value).to_contain_text('"release": 3,')
    expect(value).to_contain_text('    "rules"')  # pretty-printed, one array item per line

    page.get_by_test_id("tab-history").click()
    expect(page.get_by_test_id("version-row")).to_have_count(3)
    page.get_by_test_id("diff-a").select_option("1")
    page.get_by_test_id("diff-b").select_option("3")
    page.get_by_test_id("diff-button").click()
    diff = page.get_by_test_id("diff")
    expect(diff.get_by_test_id("diff-del").filter(has_text='"release": 1,')).to_be_visible()
    expect(diff.get_by_test_id("diff-add").filter(has_text='"release": 3,')).to_be_visible()
    expect(diff.get_by_test_id("diff-add").filter(has_text='"rules"')).to_be_visible()
    expect(diff.locator("td.same").filter(has_text='"name": "koor",')).to_have_count(2)  # unchanged on both sides
    expect(diff.get_by_test_id("diff-del").filter(has_text='"name"')).to_have_count(0)
    ui.shot("state-diff")

    page.get_by_test_id("rollback-1").click()
    dialog = page.get_by_test_id("confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("version 1")
    page.get_by_test_id("confirm-ok").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_test_id("toast")).to_contain_text("now at version 4")
    expect(page.get_by_test_id("state-version")).to_have_text("version 4")
    expect(page.get_by_test_id("state-value")).to_contain_text('"release": 1,')
    assert koor.get(f"/api/state/{key}")["release"] == 1


def test_rules_accept_proposal_and_try_it(koor, ui):
    koor.put("/api/specs/web/button-schema", json={"type": "object"})
    koor.post("/api/rules/propose", json={
        "project": "web", "rule_id": "no-inline-style", "pattern": r"style\s*=",
        "message": "use CSS classes, not inline styles", "proposed_by": "frontend-agent",
    })

    page = ui.open(koor.dash_url + "/rules")
    proposal = page.get_by_test_id("proposed-rule").filter(has_text="no-inline-style")
    expect(proposal).to_contain_text("frontend-agent")
    expect(page.get_by_test_id("spec").filter(has_text="button-schema")).to_be_visible()
    ui.shot("rules")
    proposal.get_by_test_id("rule-accept").click()

    expect(page.get_by_test_id("toast")).to_contain_text("no-inline-style accepted")
    expect(page.get_by_test_id("proposed-rules")).to_contain_text("No proposed rules")
    accepted = page.get_by_test_id("rule-table").get_by_test_id("rule-row").filter(has_text="no-inline-style")
    expect(accepted).to_contain_text("accepted")

    # Add a second rule with the form, keyboard-submitted.
    page.get_by_test_id("rule-add").click()
    page.get_by_test_id("rule-form-id").fill("no-todo")
    page.get_by_test_id("rule-form-pattern").fill("TODO")
    page.get_by_test_id("rule-form-pattern").press("Enter")
    expect(page.get_by_test_id("rule-row").filter(has_text="no-todo")).to_be_visible()

    page.get_by_test_id("try-project").fill("web")
    page.get_by_test_id("try-content").fill('<div class="ok">fine</div>\n<div style="color: red">bad</div>')
    page.get_by_test_id("try-submit").click()
    violation = page.get_by_test_id("violation")
    expect(violation).to_have_count(1)
    expect(violation).to_contain_text("no-inline-style")
    expect(violation).to_contain_text("use CSS classes, not inline styles")
    expect(violation.locator("td").first).to_have_text("2")


def test_rules_delete_one_rule_keeps_the_others(koor, ui):
    koor.put("/api/validate/web/rules", json=[
        {"rule_id": "no-todo", "pattern": "TODO"},
        {"rule_id": "no-debugger", "pattern": r"debugger;", "severity": "warning"},
    ])
    koor.post("/api/rules/propose", json={"project": "web", "rule_id": "no-inline-style", "pattern": r"style\s*=",
                                          "proposed_by": "frontend-agent"})
    # A project that only has a proposal is listed too (GET /api/rules names every project).
    koor.post("/api/rules/propose", json={"project": "mobile", "rule_id": "no-alert", "pattern": r"alert\(",
                                          "proposed_by": "mobile-agent"})

    page = ui.open(koor.dash_url + "/rules?project=web")
    expect(page.get_by_test_id("proposed-rule")).to_have_count(2)
    expect(page.get_by_test_id("projects").get_by_role("link", name="mobile")).to_be_visible()
    rules = page.get_by_test_id("rule-table").get_by_test_id("rule-row")
    expect(rules).to_have_count(3)

    rules.filter(has_text="no-todo").get_by_test_id("rule-delete").click()
    dialog = page.get_by_test_id("confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Delete rule no-todo?")
    expect(dialog).not_to_contain_text("removed too")
    page.get_by_test_id("confirm-ok").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_test_id("toast")).to_contain_text("no-todo deleted")

    expect(rules.filter(has_text="no-todo")).to_have_count(0)
    expect(rules).to_have_count(2)
    expect(rules.filter(has_text="no-debugger")).to_contain_text("accepted")
    expect(rules.filter(has_text="no-inline-style")).to_contain_text("proposed")
    proposal = page.get_by_test_id("proposed-rule").filter(has_text="no-inline-style")
    expect(proposal).to_contain_text("frontend-agent")
    expect(page.get_by_test_id("proposed-rule")).to_have_count(2)

    stored = {r["rule_id"]: r["status"] for r in koor.get("/api/validate/web/rules")["rules"]}
    assert stored == {"no-debugger": "accepted", "no-inline-style": "proposed"}, stored
    assert [r["rule_id"] for r in koor.get("/api/rules?project=mobile")] == ["no-alert"]
    ui.shot("rules-after-delete")


class _Receiver:
    """A local webhook target whose answer the test switches."""

    def __init__(self):
        self.status = 410
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server naming)
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = _Receiver()
    yield r
    r.close()


def test_webhooks_compliance_and_audit_pages(koor, ui, receiver):
    ui.allow_status(409)
    koor.post("/api/webhooks", json={"id": "ci-hook", "url": receiver.url, "patterns": ["build.*"]})
    koor.post("/api/events/publish", json={"topic": "build.done", "data": {"n": 1}})

    # 410 Gone fails the delivery and disables the webhook at once.
    page = ui.open(koor.dash_url + "/webhooks")
    hook = page.get_by_test_id("webhook").filter(has_text="ci-hook")
    expect(hook.get_by_test_id("webhook-status")).to_have_text("disabled", timeout=8000)
    delivery = hook.get_by_test_id("delivery-row").first
    expect(delivery).to_contain_text("failed")
    expect(delivery).to_contain_text("HTTP 410")
    ui.shot("webhooks")

    receiver.status = 200
    hook.get_by_test_id("webhook-enable").click()
    expect(page.get_by_test_id("toast").filter(has_text="enabled")).to_be_visible()
    expect(hook.get_by_test_id("webhook-status")).to_have_text("active")
    hook.get_by_test_id("delivery-retry").click()
    expect(hook.get_by_test_id("delivery-row").first).to_contain_text("delivered", timeout=8000)

    # An API error is shown, not swallowed: a duplicate id is a 409.
    page.get_by_test_id("webhook-form-id").fill("ci-hook")
    page.get_by_test_id("webhook-form-url").fill(receiver.url)
    page.get_by_test_id("webhook-form-url").press("Enter")
    expect(page.get_by_test_id("error-toast")).to_contain_text("409")

    # Compliance: an active agent whose project has a contract with an empty endpoint.
    agent = koor.post("/api/instances/register", json={"name": "fleet-agent", "workspace": "fleet"})
    koor.post(f"/api/instances/{agent['id']}/activate")
    koor.put("/api/specs/fleet/trucks", json={"kind": "contract", "version": 1,
                                                 "endpoints": {"GET /api/ping": {}}})
    page.get_by_role("link", name="Compliance").click()
    expect(page.get_by_test_id("compliance-runs")).to_contain_text("No compliance runs yet")
    page.get_by_test_id("compliance-run").click()
    run = page.get_by_test_id("compliance-row").first
    expect(run).to_contain_text("fleet-agent")
    expect(run).to_contain_text("fail")
    expect(run).to_contain_text("endpoints.GET /api/ping")
    ui.shot("compliance")

    page.get_by_role("link", name="Audit").click()
    entries = koor.get("/api/audit/verify")["entries"]
    assert entries >= 5
    expect(page.get_by_test_id("verify-ok")).to_contain_text(f"Chain verified — {entries} entries intact")
    expect(page.get_by_test_id("audit-row").first).to_be_visible()
    ui.shot("audit")
    page.get_by_label("Action", exact=True).fill("webhook.create")
    page.get_by_test_id("audit-apply").click()
    expect(page).to_have_url(re.compile(r"/audit\?action=webhook.create"))
    rows = page.get_by_test_id("audit-row")
    expect(rows).to_have_count(1)
    expect(rows).to_contain_text("ci-hook")


def test_tasks_queues_leases_and_retry(koor, ui):
    agent = koor.post("/api/instances/register", json={"name": "build-agent", "workspace": "fleet"})
    first = koor.post("/api/tasks", json={"queue": "builds", "payload": {"ref": "main"}, "priority": 5, "max_attempts": 2})
    second = koor.post("/api/tasks", json={"queue": "builds", "payload": {"ref": "dev"}, "max_attempts": 2})
    docs = koor.post("/api/tasks", json={"queue": "docs", "payload": {"page": "guide"}})

    page = ui.open(koor.dash_url + "/tasks")
    builds = page.locator('[data-testid="queue-row"][data-queue="builds"]')
    expect(builds.get_by_test_id("queue-queued")).to_have_text("2")
    expect(builds.get_by_test_id("queue-leased")).to_have_text("0")
    expect(builds.get_by_test_id("queue-oldest").locator("time")).to_have_attribute("title", ISO)
    expect(page.locator('[data-testid="queue-row"][data-queue="docs"]').get_by_test_id("queue-queued")).to_have_text("1")
    expect(page.get_by_test_id("task-row")).to_have_count(3)
    expect(page.get_by_test_id("task-tab-all")).to_contain_text("3")
    ui.wait_live()
    ui.mark()

    def row(task):
        return page.locator(f'[data-testid="task-row"][data-task="{task["id"]}"]')

    def claim():
        got = koor.post("/api/tasks/claim", json={"holder": agent["id"], "queue": "builds", "lease_seconds": 120})["task"]
        assert got["id"] == first["id"], got
        return got["lease"]["token"]

    # A claim over REST shows live: leased to the agent (by name), with its lease expiry.
    token = claim()
    expect(row(first).get_by_test_id("task-status")).to_have_text("leased", timeout=LIVE_MS)
    expect(row(first).get_by_test_id("task-holder")).to_have_text("build-agent")
    expect(row(first)).to_contain_text(re.compile(r"lease ends in \d+ (s|min)"))
    expect(builds.get_by_test_id("queue-leased")).to_have_text("1", timeout=LIVE_MS)
    expect(builds.get_by_test_id("queue-queued")).to_have_text("1")
    expect(row(second).get_by_test_id("task-cancel")).to_be_visible()
    expect(row(first).get_by_test_id("task-retry")).to_have_count(0)

    # Failing it until max_attempts makes it dead; each step shows live.
    koor.post(f"/api/tasks/{first['id']}/fail", json={"token": token, "error": "linker error", "retry_after_seconds": 0})
    expect(row(first).get_by_test_id("task-status")).to_have_text("failed", timeout=LIVE_MS)
    token = claim()
    expect(row(first).get_by_test_id("task-attempts")).to_have_text("2 / 2", timeout=LIVE_MS)
    koor.post(f"/api/tasks/{first['id']}/fail", json={"token": token, "error": "linker error again"})
    expect(row(first).get_by_test_id("task-status")).to_have_text("dead", timeout=LIVE_MS)
    expect(row(first).get_by_test_id("task-error")).to_have_text("linker error again")
    expect(row(first).get_by_test_id("task-holder")).to_have_text("—")
    expect(builds.get_by_test_id("queue-dead")).to_have_text("1", timeout=LIVE_MS)
    page.get_by_test_id("task-tab-dead").click()
    expect(page).to_have_url(re.compile(r"/tasks\?status=dead$"))
    expect(page.get_by_test_id("task-row")).to_have_count(1)
    ui.shot("tasks")

    # Retry from the page, behind the confirmation: queued again with no attempts.
    row(first).get_by_test_id("task-retry").click()
    dialog = page.get_by_test_id("confirm-dialog")
    expect(dialog).to_contain_text(f"Retry task {first['id']}?")
    page.get_by_test_id("confirm-ok").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_test_id("toast")).to_contain_text("queued again")
    expect(page.get_by_test_id("tasks")).to_contain_text("No dead tasks")
    page.get_by_test_id("task-tab-queued").click()
    expect(row(first).get_by_test_id("task-status")).to_have_text("queued")
    expect(row(first).get_by_test_id("task-attempts")).to_have_text("0 / 2")
    expect(builds.get_by_test_id("queue-queued")).to_have_text("2")
    expect(builds.get_by_test_id("queue-dead")).to_have_text("0")
    assert koor.get(f"/api/tasks/{first['id']}")["status"] == "queued"

    # Cancel is confirmed too, and can be called off.
    row(docs).get_by_test_id("task-cancel").click()
    expect(dialog).to_contain_text(f"Cancel task {docs['id']}?")
    page.get_by_test_id("confirm-cancel").click()
    expect(dialog).to_be_hidden()
    assert koor.get(f"/api/tasks/{docs['id']}")["status"] == "queued"
    row(docs).get_by_test_id("task-cancel").click()
    page.get_by_test_id("confirm-ok").click()
    expect(page.get_by_test_id("toast").filter(has_text="cancelled")).to_be_visible()
    expect(row(docs)).to_have_count(0)  # the queued tab no longer lists it
    assert koor.get(f"/api/tasks/{docs['id']}")["status"] == "cancelled"
    ui.assert_not_reloaded()


def test_tasks_empty_state_says_how_to_add(koor, ui):
    page = ui.open(koor.dash_url + "/tasks")
    expect(page.get_by_test_id("task-queues")).to_contain_text("koor tasks add --queue")
    expect(page.get_by_test_id("tasks")).to_contain_text("No tasks")


def test_locks_live_expiry_and_forced_release(koor, ui):
    agent = koor.post("/api/instances/register", json={"name": "docs-agent", "workspace": "fleet"})
    page = ui.open(koor.dash_url + "/locks")
    expect(page.get_by_test_id("locks")).to_contain_text("No locks are held")
    expect(page.get_by_test_id("locks")).to_contain_text("koor locks acquire")
    ui.wait_live()
    ui.mark()

    lock = koor.post("/api/locks", json={"resource": "docs/**", "holder": agent["id"], "reason": "rewrite the guide",
                                          "ttl_seconds": 600})
    row = page.locator(f'[data-testid="lock-row"][data-lock="{lock["id"]}"]')
    expect(row).to_be_visible(timeout=LIVE_MS)
    expect(row).to_contain_text("docs/**")
    expect(row).to_contain_text("exclusive")
    expect(row).to_contain_text("rewrite the guide")
    expect(row.get_by_test_id("lock-holder")).to_have_text("docs-agent")
    expect(row.get_by_test_id("lock-expires").locator("time")).to_have_text(re.compile(r"^in (9|10) min$"))

    # A short lock shows, then drops off when its expiry passes.
    short = koor.post("/api/locks", json={"resource": "src/api/*.rs", "holder": agent["id"], "mode": "shared",
                                           "ttl_seconds": 2})
    short_row = page.locator(f'[data-testid="lock-row"][data-lock="{short["id"]}"]')
    expect(short_row).to_contain_text("shared", timeout=LIVE_MS)
    ui.shot("locks")
    expect(short_row).to_have_count(0, timeout=4000)
    expect(page.get_by_test_id("lock-row")).to_have_count(1)

    # Forced release, behind the confirmation.
    row.get_by_test_id("lock-release").click()
    dialog = page.get_by_test_id("confirm-dialog")
    expect(dialog).to_contain_text("Force release docs/**?")
    expect(dialog).to_contain_text("docs-agent")
    page.get_by_test_id("confirm-ok").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_test_id("toast")).to_contain_text("Lock on docs/** released")
    expect(row).to_have_count(0)
    expect(page.get_by_test_id("locks")).to_contain_text("No locks are held")
    assert koor.get("/api/locks") == []
    released = [e for e in koor.get("/api/events/history?last=10") if e["topic"] == "lock.released"]
    assert [e["data"]["cause"] for e in released] == ["forced"], released
    ui.assert_not_reloaded()


def test_topology_draws_agents_and_their_links_live(koor, ui):
    page = ui.open(koor.dash_url + "/topology")
    expect(page.get_by_test_id("topology")).to_contain_text("No agents are registered")
    ui.wait_live()
    ui.mark()

    # A new agent appears without a reload (agent.registered), then its child with the
    # parent link drawn between them.
    lead = koor.post("/api/instances/register", json={"name": "lead-agent", "workspace": "fleet"})
    graph = page.get_by_test_id("topology-graph")
    lead_node = graph.locator(f'[data-testid="topology-node"][data-id="{lead["id"]}"]')
    expect(lead_node).to_be_visible(timeout=LIVE_MS)
    expect(lead_node).to_contain_text("lead-agent")
    expect(lead_node).to_have_attribute("data-status", "pending")
    child = koor.post("/api/instances/register", json={"name": "test-agent", "parent_id": lead["id"]})
    child_node = graph.locator(f'[data-testid="topology-node"][data-id="{child["id"]}"]')
    expect(child_node).to_be_visible(timeout=LIVE_MS)
    expect(graph.locator('[data-testid="topology-edge"][data-kind="parent"]')).to_have_count(1)
    expect(page.get_by_test_id("topology")).not_to_contain_text("null")
    links = page.get_by_test_id("topology-edges")
    expect(links).to_contain_text("lead-agent")
    expect(links).to_contain_text("parent_id")
    # The child is drawn right of its parent.
    assert child_node.bounding_box()["x"] > lead_node.bounding_box()["x"]

    # Health and status follow agent.health and agent.active.
    koor.post(f"/api/instances/{child['id']}/heartbeat", json={"health": {"status": "failing"}})
    expect(child_node).to_contain_text("failing", timeout=LIVE_MS)
    expect(child_node).to_have_class(re.compile(r"\bfailing\b"))
    koor.post(f"/api/instances/{lead['id']}/activate")
    expect(lead_node).to_have_attribute("data-status", "active", timeout=LIVE_MS)
    ui.shot("topology")

    # A deregistered agent leaves, with its link.
    koor.delete(f"/api/instances/{child['id']}")
    expect(child_node).to_have_count(0, timeout=LIVE_MS)
    expect(graph.locator('[data-testid="topology-edge"]')).to_have_count(0)
    ui.assert_not_reloaded()


# The Cluster page asks GET /api/cluster again this often (CLUSTER_REFRESH_MS in app.js).
CLUSTER_REFRESH_S = 3


def test_cluster_page_on_a_single_server(koor, ui):
    """On SQLite the server runs alone: the Cluster page says so, points to the deployment
    docs, and asks again while it is shown (and only then)."""
    page = ui.page
    polls = []
    page.on("request", lambda r: r.url.endswith("/api/cluster") and polls.append(time.monotonic()))
    ui.open(koor.dash_url + "/")
    link = page.locator('.nav a[data-page="cluster"]')
    link.click()
    expect(page).to_have_url(koor.dash_url + "/cluster")
    expect(link).to_have_attribute("aria-current", "page")
    expect(page).to_have_title("Cluster · koor")

    cluster = koor.get("/api/cluster")
    assert cluster["role"] == "single" and cluster["members"] == [], cluster
    expect(page.get_by_test_id("cluster-role")).to_have_text("single")
    expect(page.get_by_test_id("cluster-leader")).to_have_text(cluster["leader"])
    single = page.get_by_test_id("cluster-single")
    expect(single).to_contain_text("This server runs alone")
    expect(single).to_contain_text("A cluster on PostgreSQL")
    expect(single).to_contain_text("docs/deployment.md")
    expect(page.get_by_test_id("cluster-member")).to_have_count(0)
    body = page.locator("main").inner_text()
    for raw in ("undefined", "null", "NaN", "[object Object]"):
        assert raw not in body, f"the page shows a raw {raw!r}"
    ui.shot("cluster")

    # Live: it polls while shown, and stops when the person goes to another page.
    deadline = time.monotonic() + CLUSTER_REFRESH_S * 2 + 1
    while len(polls) < 2 and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    assert len(polls) >= 2, f"GET /api/cluster was asked {len(polls)} time(s)"
    page.locator('.nav a[data-page="overview"]').click()
    expect(page.get_by_test_id("instances-card")).to_be_visible()
    asked = len(polls)
    page.wait_for_timeout((CLUSTER_REFRESH_S + 0.5) * 1000)
    assert len(polls) == asked, "the Cluster page kept polling after it was left"


def test_cluster_page_lists_members_and_shows_errors(koor, ui):
    """What a leader's dashboard shows (answered here by the browser, since the test server is
    a single one): the members with their roles and heartbeats, every string escaped; an
    error of the API is shown until the next poll succeeds."""
    page = ui.page
    start_us = int(time.time() * 1_000_000)
    failing = {"on": False}

    def answer():
        # The leader has just proven it is alive; the follower has been silent for 20 s.
        now_us = int(time.time() * 1_000_000)
        return {
            "role": "leader",
            "leader": "http://10.0.0.1:9800",
            "epoch": 7,
            "members": [
                {"member": "koor-lead", "url": "http://10.0.0.1:9800", "role": "leader",
                 "started_at": start_us - 3_600_000_000, "seen_at": now_us - 200_000},
                {"member": "<img src=x onerror=window.__koorXss=1>", "url": "http://10.0.0.2:9800/<b>x</b>",
                 "role": "follower", "started_at": start_us - 60_000_000, "seen_at": start_us - 20_000_000},
            ],
        }

    def fulfill(route):
        if failing["on"]:
            route.fulfill(status=503, content_type="application/json",
                          body=json.dumps({"error": "the cluster's leader cannot be reached; retry shortly", "code": 503}))
        else:
            route.fulfill(status=200, content_type="application/json", body=json.dumps(answer()))

    page.route("**/api/cluster", fulfill)
    ui.open(koor.dash_url + "/cluster")
    expect(page.get_by_test_id("cluster-role")).to_have_text("leader")
    expect(page.get_by_test_id("cluster-leader")).to_have_text("http://10.0.0.1:9800")
    expect(page.get_by_test_id("cluster-epoch")).to_have_text("7")
    rows = page.get_by_test_id("cluster-member")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_have_attribute("data-role", "leader")
    expect(rows.nth(0)).to_contain_text("this server")
    expect(rows.nth(0)).to_have_attribute("aria-current", "true")
    expect(rows.nth(1)).to_have_attribute("data-role", "follower")
    expect(rows.nth(1)).not_to_contain_text("this server")
    expect(rows.nth(0).get_by_test_id("cluster-member-seen")).not_to_have_class("warn-text")
    follower_seen = rows.nth(1).get_by_test_id("cluster-member-seen")
    expect(follower_seen).to_have_text(re.compile(r"^2\d s ago$"))
    expect(follower_seen).to_have_class("warn-text")
    expect(rows.nth(1)).to_contain_text("<img src=x onerror=window.__koorXss=1>")
    expect(rows.nth(1)).to_contain_text("http://10.0.0.2:9800/<b>x</b>")
    expect(page.get_by_test_id("cluster-single")).to_have_count(0)
    assert page.locator("main img, main b").count() == 0
    assert page.evaluate("window.__koorXss") is None
    ui.shot("cluster-leader")

    ui.allow_status(503)
    failing["on"] = True
    error = page.get_by_test_id("cluster").get_by_test_id("error")
    expect(error).to_contain_text("the cluster's leader cannot be reached; retry shortly (HTTP 503)",
                                  timeout=(CLUSTER_REFRESH_S + 2) * 1000)
    failing["on"] = False
    expect(page.get_by_test_id("cluster-role")).to_have_text("leader", timeout=(CLUSTER_REFRESH_S + 2) * 1000)
    expect(error).to_have_count(0)


def test_storage_health_and_snapshot_download(koor, ui, tmp_path):
    koor.put("/api/state/shop/config", data=b'{"db": "x"}')
    page = ui.open(koor.dash_url + "/storage")
    expect(page.get_by_test_id("storage-integrity")).to_have_text("ok")
    expect(page.get_by_test_id("storage-migrations")).to_contain_text(re.compile(r"^\d+ of \d+ applied$"))
    expect(page.get_by_test_id("storage-database")).to_contain_text(re.compile(r"(KiB|MiB)$"))
    expect(page.get_by_test_id("storage-free")).to_contain_text(re.compile(r"(MiB|GiB|TiB)$"))
    expect(page.get_by_test_id("storage-time")).to_have_text(ISO)
    expect(page.get_by_test_id("snapshot-card")).to_contain_text("koor backup --snapshot")
    ui.shot("storage")

    with page.expect_download() as info:
        page.get_by_test_id("snapshot-download").click()
    download = info.value
    assert re.fullmatch(r"koor-snapshot-\d{8}T\d{6}Z\.db", download.suggested_filename), download.suggested_filename
    path = tmp_path / "snapshot.db"
    download.save_as(path)
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        keys = [r[0] for r in db.execute("SELECT DISTINCT key FROM state_versions")]
        assert keys == ["shop/config"], keys
    finally:
        db.close()

    ui.mark()
    page.get_by_test_id("storage-recheck").click()
    expect(page.get_by_test_id("storage-integrity")).to_have_text("ok")
    ui.assert_not_reloaded()


def test_token_prompt_and_session(koor_auth, ui):
    ui.allow_status(401)
    koor_auth.post("/api/instances/register", json={"name": "secure-agent", "workspace": "vault"})

    page = ui.open(koor_auth.dash_url + "/")
    form = page.get_by_test_id("login-form")
    expect(form).to_be_visible()
    expect(page.get_by_test_id("instance-row")).to_have_count(0)
    ui.shot("token-prompt")

    page.get_by_test_id("token-input").fill("not-the-token")
    page.get_by_test_id("token-input").press("Enter")
    expect(page.get_by_test_id("login-error")).to_contain_text("Wrong token")
    expect(form).to_be_visible()

    page.get_by_test_id("token-input").fill(koor_auth.token)
    page.get_by_test_id("token-submit").click()
    expect(form).to_be_hidden()
    expect(page.get_by_test_id("instance-row").filter(has_text="secure-agent")).to_be_visible()
    ui.wait_live()
    assert page.evaluate("document.cookie").find(koor_auth.token) == -1, "the token must not be readable by scripts"

    page.reload()
    expect(page.get_by_test_id("instance-row").filter(has_text="secure-agent")).to_be_visible()
    expect(form).to_have_count(0)

    page.get_by_test_id("sign-out").click()
    expect(page.get_by_test_id("login-form")).to_be_visible()
    page.reload()
    expect(page.get_by_test_id("login-form")).to_be_visible()


def test_missing_key_is_a_clear_message(koor, ui):
    ui.allow_status(404)
    page = ui.open(koor.dash_url + "/state?key=does-not-exist")
    message = page.get_by_test_id("not-found")
    expect(message).to_contain_text("Key not found")
    expect(message).to_contain_text("does-not-exist")
    body = page.locator("body").inner_text()
    for raw in ("TypeError", "undefined", "[object Object]", "Traceback", "NaN"):
        assert raw not in body, f"the page shows a raw {raw!r}"


def test_keys_page_and_a_read_only_key(koor_auth, ui):
    """The admin creates a read-only key on the Keys page (its secret shown once); signed in
    with that key, the page hides the Keys page and every action the key may not do."""
    ui.allow_status(401)
    koor_auth.put("/api/state/shared/cfg", json={"v": 1})
    page = ui.open(koor_auth.dash_url + "/")
    page.get_by_test_id("token-input").fill(koor_auth.token)
    page.get_by_test_id("token-submit").click()
    keys_link = page.locator('.nav a[data-page="keys"]')
    expect(keys_link).to_be_visible()
    keys_link.click()
    page.get_by_test_id("key-form-name").fill("viewer")
    page.get_by_test_id("key-form-scope").select_option("read")
    page.get_by_test_id("key-form-submit").click()
    secret_box = page.get_by_test_id("key-secret")
    expect(secret_box).to_contain_text("koor_")
    secret = secret_box.locator("code").inner_text().strip()
    assert secret.startswith("koor_"), secret
    expect(page.get_by_test_id("key-row").filter(has_text="viewer")).to_be_visible()
    expect(page.get_by_test_id("key-row")).not_to_contain_text(secret)
    ui.shot("keys")

    page.get_by_test_id("sign-out").click()
    page.get_by_test_id("token-input").fill(secret)
    page.get_by_test_id("token-submit").click()
    expect(page.get_by_test_id("login-form")).to_be_hidden()
    expect(page.locator("body")).to_have_attribute("data-scope", "read")
    expect(keys_link).to_be_hidden()
    expect(page.get_by_test_id("keys-admin-only")).to_be_visible()
    ui.open(koor_auth.dash_url + "/webhooks")
    expect(page.get_by_test_id("webhooks")).to_be_visible()
    expect(page.get_by_test_id("webhook-add")).to_be_hidden()
    ui.open(koor_auth.dash_url + "/")
    expect(page.get_by_test_id("tax-reset")).to_be_hidden()
    ui.shot("read-only-overview")
    # The server refuses what the page hides.
    ui.allow_status(403)
    me = page.evaluate("fetch('/api/whoami').then(r => r.json())")
    assert me["principal"] == "key" and me["scopes"] == ["read"], me
    status = page.evaluate("fetch('/api/state/shared/cfg', {method: 'PUT', body: '2'}).then(r => r.status)")
    assert status == 403, status
