// k6 smoke test of koor: every main route, a few seconds, low rate, several flows at once.
// It guards correctness under concurrency, not speed: any failed check or unexpected
// HTTP status fails the run.
//
//   load/run.sh load/smoke.js                       # starts a release server, runs this
//   BASE_URL=http://127.0.0.1:9800 k6 run load/smoke.js    # against a server you started
//
// Environment:
//   BASE_URL     server under test (default http://127.0.0.1:9800); loopback addresses only
//   KOOR_TOKEN   bearer token, sent on every request and on the WebSocket handshake
//   RATE         REST flows started per second (default 2)
//   WS_RATE      WebSocket round trips started per second (default 1)
//   DURATION     how long new flows are started, a k6 duration (default 5s)
//   P95_MS       p(95) bound of http_req_duration in milliseconds (default 1000)
//   WS_WAIT      how long a subscriber waits for its own event, a k6 duration (default 5s)
//   SUMMARY_JSON optional path: also write k6's end-of-test data there as JSON
//
// One REST flow walks health, state (PUT, GET, If-None-Match 304, history, diff, version,
// rollback, list, DELETE), specs, events (publish, history), instances (register, activate,
// heartbeat, list, get, deregister), validation rules and validate, rule propose/accept,
// webhooks, templates, LLM usage and budgets, audit (list, summary, verify), metrics
// (/api/metrics and Prometheus /metrics) and MCP (initialize, tools/list). Every name it
// creates carries the run id, the VU and the iteration, so flows never share data and a
// rerun on the same server does not collide with an earlier one.
//
// One WebSocket round trip subscribes to a topic of its own (with ?after= set to the newest
// event id, so the event cannot slip between upgrade and subscription), publishes one
// event on it over REST and must receive that event.
//
// Metrics besides k6's own:
//   smoke_flows          REST flows that ran to the end
//   ws_roundtrips        WebSocket round trips that received their event
//   ws_roundtrip_ms      publish (just before the POST) to receive, per round trip
//   ws_errors            WebSocket errors

import http from 'k6/http';
import { check, group } from 'k6';
import exec from 'k6/execution';
import { Counter, Trend } from 'k6/metrics';
import { clearTimeout, setTimeout } from 'k6/timers';
import { WebSocket } from 'k6/experimental/websockets';
import {
  BASE_URL,
  TREND_STATS,
  WS_BASE,
  authHeaders,
  envInt,
  fmt,
  header,
  healthOrAbort,
  json,
  jsonHeaders,
  metricsText,
  newRunId,
  parseDurationMs,
  summaryOutput,
  val,
} from './lib.js';

const RATE = envInt('RATE', 2);
const WS_RATE = envInt('WS_RATE', 1);
const DURATION = __ENV.DURATION || '5s';
const P95_MS = envInt('P95_MS', 1000);
const WS_WAIT = __ENV.WS_WAIT || '5s';

const DURATION_MS = parseDurationMs(DURATION);
const WS_WAIT_MS = parseDurationMs(WS_WAIT, 'WS_WAIT');

const mcpHeaders = Object.assign({ Accept: 'application/json, text/event-stream' }, jsonHeaders);
const expect404 = http.expectedStatuses(404);

const flows = new Counter('smoke_flows');
const roundtrips = new Counter('ws_roundtrips');
const roundtripMs = new Trend('ws_roundtrip_ms');
const wsErrors = new Counter('ws_errors');

export const options = {
  scenarios: {
    rest: {
      executor: 'constant-arrival-rate',
      exec: 'rest',
      rate: RATE,
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: Math.max(2, RATE * 2),
      maxVUs: Math.max(10, RATE * 10),
      gracefulStop: '30s',
    },
    websocket: {
      executor: 'constant-arrival-rate',
      exec: 'websocket',
      rate: WS_RATE,
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: Math.max(2, WS_RATE * 2),
      maxVUs: Math.max(5, WS_RATE * 10),
      gracefulStop: '30s',
    },
  },
  thresholds: {
    checks: ['rate==1'],
    http_req_failed: ['rate==0'],
    http_req_duration: [`p(95)<${P95_MS}`],
    ws_errors: ['count==0'],
    // Make a run in which no flow or round trip completed fail instead of pass.
    smoke_flows: ['count>=1'],
    ws_roundtrips: ['count>=1'],
  },
  summaryTrendStats: TREND_STATS,
};

export function setup() {
  healthOrAbort();
  flows.add(0);
  roundtrips.add(0);
  wsErrors.add(0);
  return { run: newRunId() };
}

// One HTTP request; `name` is the route, used as the request's name tag.
function call(method, name, path, body, params) {
  const p = Object.assign(
    { headers: body === null ? authHeaders : jsonHeaders, timeout: '10s', tags: { name: `${method} ${name}` } },
    params || {},
  );
  const payload = body === null || typeof body === 'string' ? body : JSON.stringify(body);
  return http.request(method, `${BASE_URL}${path}`, payload, p);
}

// check() whose conditions count as failed, instead of ending the iteration, when they throw
// (e.g. on an unexpected body shape).
function verify(value, conditions) {
  const safe = {};
  for (const [name, fn] of Object.entries(conditions)) {
    safe[name] = (v) => {
      try {
        return !!fn(v);
      } catch (e) {
        return false;
      }
    };
  }
  return check(value, safe);
}

export function rest(data) {
  try {
    flow(data);
  } catch (e) {
    check(null, { 'rest flow ran to the end': () => false });
    console.error(`rest flow: ${e}`);
  }
}

function is200(r) {
  return r.status === 200 && (json(r) || false);
}

// One REST flow over every main route.
function flow(data) {
  const p = `smoke-${data.run}-${exec.vu.idInTest}-${exec.scenario.iterationInTest}`;

  group('health', () => {
    const r = call('GET', '/health', '/health', null);
    verify(r, { 'health: 200 status ok': (x) => (is200(x) || {}).status === 'ok' });
  });

  group('state', () => {
    const key = `load/smoke/${p}/doc`;
    const path = `/api/state/${key}`;
    const name = '/api/state/:key';
    let r = call('PUT', name, path, { version: '1.0', city: 'London' });
    const w1 = is200(r) || {};
    verify(r, {
      'state: PUT creates version 1': () => w1.key === key && w1.version === 1 && /^[0-9a-f]{64}$/.test(w1.hash),
    });
    r = call('PUT', name, path, { version: '3.0', country: 'UK' });
    const w2 = is200(r) || {};
    verify(r, { 'state: second PUT is version 2': () => w2.version === 2 && w2.hash !== w1.hash });
    const etag2 = `"${w2.hash}"`;

    r = call('GET', name, path, null);
    verify(r, {
      'state: GET 200 with ETag and X-Koor-Version': (x) =>
        x.status === 200 && header(x, 'ETag') === etag2 && header(x, 'X-Koor-Version') === '2',
      'state: GET returns the stored bytes': (x) => x.body === JSON.stringify({ version: '3.0', country: 'UK' }),
    });
    r = call('GET', name, path, null, { headers: Object.assign({ 'If-None-Match': etag2 }, authHeaders) });
    verify(r, {
      'state: If-None-Match current ETag is 304': (x) => x.status === 304 && !x.body && header(x, 'ETag') === etag2,
    });

    r = call('GET', `${name}?history`, `${path}?history=1`, null);
    verify(r, {
      'state: history newest first': (x) => {
        const b = is200(x) || {};
        return b.key === key && b.versions.length === 2 && b.versions[0].version === 2 && b.versions[1].version === 1;
      },
    });
    r = call('GET', `${name}?diff`, `${path}?diff=1,2`, null);
    verify(r, {
      'state: diff 1,2 is remove, add, replace': (x) => {
        const b = is200(x) || {};
        return b.v1 === 1 && b.v2 === 2 && (b.diffs || []).map((d) => d.operation).join(',') === 'remove,add,replace';
      },
    });
    r = call('GET', `${name}?version`, `${path}?version=1`, null);
    verify(r, {
      'state: version 1 readable': (x) => x.status === 200 && header(x, 'X-Koor-Version') === '1' && (json(x) || {}).city === 'London',
    });
    r = call('POST', `${name}?rollback`, `${path}?rollback=1`, null);
    verify(r, {
      'state: rollback to 1 makes version 3': (x) => {
        const b = is200(x) || {};
        return b.version === 3 && b.rolled_back === 1 && b.hash === w1.hash;
      },
    });
    r = call('GET', name, path, null, { headers: Object.assign({ 'If-None-Match': etag2 }, authHeaders) });
    verify(r, {
      'state: stale ETag gets 200 and the new ETag': (x) => x.status === 200 && header(x, 'ETag') === `"${w1.hash}"`,
    });
    r = call('GET', '/api/state', '/api/state', null);
    verify(r, {
      'state: list has the key at version 3': (x) => {
        const b = is200(x);
        return Array.isArray(b) && b.some((e) => e.key === key && e.version === 3 && !('value' in e));
      },
    });
    r = call('DELETE', name, path, null);
    verify(r, { 'state: DELETE': (x) => (is200(x) || {}).deleted === key });
    r = call('GET', name, path, null, { responseCallback: expect404 });
    verify(r, { 'state: GET after DELETE is 404': (x) => x.status === 404 && (json(x) || {}).code === 404 });
  });

  group('specs', () => {
    const path = `/api/specs/${p}/doc`;
    const name = '/api/specs/:project/:name';
    const body = '{"kind":"note","n":1}';
    let r = call('PUT', name, path, body);
    const w = is200(r) || {};
    verify(r, { 'specs: PUT version 1': () => w.project === p && w.name === 'doc' && w.version === 1 });
    r = call('GET', name, path, null);
    verify(r, {
      'specs: GET bytes and ETag': (x) => x.status === 200 && x.body === body && header(x, 'ETag') === `"${w.hash}"`,
    });
    r = call('GET', name, path, null, { headers: Object.assign({ 'If-None-Match': `"${w.hash}"` }, authHeaders) });
    verify(r, { 'specs: If-None-Match is 304': (x) => x.status === 304 });
    r = call('GET', '/api/specs/:project', `/api/specs/${p}`, null);
    verify(r, {
      'specs: list': (x) => {
        const b = is200(x) || {};
        return b.project === p && (b.specs || []).length === 1 && b.specs[0].name === 'doc' && b.specs[0].version === 1;
      },
    });
    r = call('DELETE', name, path, null);
    verify(r, { 'specs: DELETE': (x) => (is200(x) || {}).deleted === `${p}/doc` });
  });

  group('events', () => {
    const topic = `smoke.${p}`;
    let r = call('POST', '/api/events/publish', '/api/events/publish', { topic: topic, data: { n: 1 } });
    const ev = is200(r) || {};
    verify(r, {
      'events: publish': () => ev.id > 0 && ev.topic === topic && ev.data.n === 1 && ev.source === '',
    });
    r = call('GET', '/api/events/history', `/api/events/history?topic=${encodeURIComponent(topic)}&last=5`, null);
    verify(r, {
      'events: history has the event': (x) => {
        const b = is200(x);
        return Array.isArray(b) && b.length === 1 && b[0].id === ev.id && b[0].created_at === ev.created_at;
      },
    });
  });

  group('instances', () => {
    let r = call('POST', '/api/instances/register', '/api/instances/register', {
      name: p,
      workspace: p,
      stack: 'load',
      capabilities: ['smoke'],
    });
    const inst = is200(r) || {};
    verify(r, {
      'instances: register is pending with a token': () =>
        inst.status === 'pending' && /^[0-9a-f-]{36}$/.test(inst.id) && /^[0-9a-f-]{36}$/.test(inst.token) && inst.token !== inst.id,
    });
    const id = inst.id;
    r = call('POST', '/api/instances/:id/activate', `/api/instances/${id}/activate`, null);
    verify(r, { 'instances: activate': (x) => (is200(x) || {}).status === 'active' });
    r = call('POST', '/api/instances/:id/heartbeat', `/api/instances/${id}/heartbeat`, null);
    verify(r, {
      'instances: heartbeat': (x) => {
        const b = is200(x) || {};
        return b.id === id && b.status === 'ok';
      },
    });
    r = call('GET', '/api/instances', `/api/instances?workspace=${encodeURIComponent(p)}`, null);
    verify(r, {
      'instances: list by workspace': (x) => {
        const b = is200(x);
        return Array.isArray(b) && b.length === 1 && b[0].id === id && b[0].status === 'active' && !('token' in b[0]);
      },
    });
    r = call('GET', '/api/instances/:id', `/api/instances/${id}`, null);
    verify(r, {
      'instances: get': (x) => {
        const b = is200(x) || {};
        return b.id === id && b.name === p && b.capabilities[0] === 'smoke' && !('token' in b);
      },
    });
    r = call('DELETE', '/api/instances/:id', `/api/instances/${id}`, null);
    verify(r, { 'instances: deregister': (x) => (is200(x) || {}).deleted === id });
    r = call('GET', '/api/instances/:id', `/api/instances/${id}`, null, { responseCallback: expect404 });
    verify(r, { 'instances: get after deregister is 404': (x) => x.status === 404 });
  });

  group('validate and rules', () => {
    const rulesPath = `/api/validate/${p}/rules`;
    let r = call('PUT', '/api/validate/:project/rules', rulesPath, [
      { rule_id: 'no-inline-style', pattern: 'style\\s*=', applies_to: ['*.templ'] },
    ]);
    verify(r, { 'validate: PUT rules': (x) => (is200(x) || {}).count === 1 });
    const validate = (content, filename) =>
      call('POST', '/api/validate/:project', `/api/validate/${p}`, filename ? { content, filename } : { content });
    r = validate('<p style="x">', 'ui/button.templ');
    verify(r, {
      'validate: regex violation': (x) => {
        const b = is200(x) || {};
        const v = (b.violations || [])[0] || {};
        return b.count === 1 && v.rule_id === 'no-inline-style' && v.line === 1 && v.match === 'style=';
      },
    });
    r = validate('<p class="x">', 'ui/button.templ');
    verify(r, { 'validate: clean content': (x) => (is200(x) || {}).count === 0 });

    r = call('POST', '/api/rules/propose', '/api/rules/propose', {
      project: p,
      rule_id: 'no-hex',
      pattern: '#[0-9a-f]{6}',
      proposed_by: 'smoke',
    });
    verify(r, { 'rules: propose': (x) => (is200(x) || {}).status === 'proposed' });
    r = validate('color: #a1b2c3');
    verify(r, { 'rules: a proposed rule does not fire': (x) => (is200(x) || {}).count === 0 });
    r = call('POST', '/api/rules/:project/:rule_id/accept', `/api/rules/${p}/no-hex/accept`, null);
    verify(r, { 'rules: accept': (x) => (is200(x) || {}).status === 'accepted' });
    r = call('GET', '/api/validate/:project/rules', rulesPath, null);
    verify(r, {
      'rules: list has both rules': (x) => {
        const b = is200(x) || {};
        const rules = b.rules || [];
        return (
          rules.length === 2 &&
          rules[0].rule_id === 'no-hex' && rules[0].source === 'learned' && rules[0].status === 'accepted' &&
          rules[1].rule_id === 'no-inline-style' && rules[1].source === 'local'
        );
      },
    });
    r = validate('color: #a1b2c3');
    verify(r, {
      'rules: the accepted rule fires': (x) => {
        const b = is200(x) || {};
        return b.count === 1 && b.violations[0].rule_id === 'no-hex';
      },
    });
  });

  group('webhooks', () => {
    let r = call('POST', '/api/webhooks', '/api/webhooks', {
      id: p,
      url: 'http://127.0.0.1:9/',
      patterns: [`smoke.never.${p}`],
    });
    verify(r, {
      'webhooks: create': (x) => {
        const b = is200(x) || {};
        return b.id === p && b.active === true && b.fail_count === 0 && b.last_fired === null && !('secret' in b);
      },
    });
    r = call('GET', '/api/webhooks', '/api/webhooks', null);
    verify(r, {
      'webhooks: list': (x) => {
        const b = is200(x);
        return Array.isArray(b) && b.some((w) => w.id === p && w.patterns[0] === `smoke.never.${p}`);
      },
    });
    r = call('DELETE', '/api/webhooks/:id', `/api/webhooks/${p}`, null);
    verify(r, { 'webhooks: delete': (x) => (is200(x) || {}).deleted === p });
  });

  group('templates', () => {
    const data = [{ rule_id: 'no-console', match_type: 'custom', pattern: 'no-console-log' }];
    let r = call('POST', '/api/templates', '/api/templates', {
      id: p,
      name: 'Smoke rules',
      kind: 'rules',
      data: data,
      tags: ['smoke'],
    });
    verify(r, {
      'templates: create': (x) => {
        const b = is200(x) || {};
        const d = (b.data || [])[0] || {};
        return (
          b.id === p &&
          b.kind === 'rules' &&
          b.version === 1 &&
          b.data.length === 1 &&
          d.rule_id === 'no-console' &&
          d.match_type === 'custom' &&
          d.pattern === 'no-console-log'
        );
      },
    });
    r = call('POST', '/api/templates/:id/apply', `/api/templates/${p}/apply`, { project: p });
    verify(r, {
      'templates: apply': (x) => {
        const b = is200(x) || {};
        return b.applied === p && b.project === p && b.kind === 'rules';
      },
    });
    r = call('POST', '/api/validate/:project', `/api/validate/${p}`, { content: 'console.log(1)' });
    verify(r, {
      'templates: the applied rule fires': (x) => {
        const b = is200(x) || {};
        return b.count === 1 && b.violations[0].rule_id === 'no-console';
      },
    });
    r = call('DELETE', '/api/templates/:id', `/api/templates/${p}`, null);
    verify(r, { 'templates: delete': (x) => (is200(x) || {}).deleted === p });
  });

  group('llm', () => {
    let r = call('POST', '/api/llm/usage', '/api/llm/usage', {
      provider: 'smoke',
      model: 'smoke-model',
      project: p,
      tokens_in: 100,
      tokens_out: 50,
      cost_usd: 0.01,
    });
    verify(r, {
      'llm: record usage': (x) => {
        const b = is200(x) || {};
        return b.id > 0 && b.recorded === true && b.over_budget === false;
      },
    });
    r = call('GET', '/api/llm/usage/summary', '/api/llm/usage/summary?group_by=project', null);
    verify(r, {
      'llm: summary by project': (x) => {
        const b = is200(x) || {};
        const g = (b.groups || {})[p] || {};
        return b.group_by === 'project' && g.request_count === 1 && g.total_tokens_in === 100 && g.total_tokens_out === 50;
      },
    });
    const scope = `project:${p}`;
    r = call('PUT', '/api/llm/budgets/:scope', `/api/llm/budgets/${scope}`, { period: 'day', max_tokens: 1000 });
    verify(r, {
      'llm: budget put': (x) => {
        const b = is200(x) || {};
        return b.scope === scope && b.period === 'day' && b.max_tokens === 1000 && b.status === 'ok';
      },
    });
    r = call('GET', '/api/llm/budgets/:scope', `/api/llm/budgets/${scope}`, null);
    verify(r, {
      'llm: budget get': (x) => {
        const b = is200(x) || {};
        return b.scope === scope && b.max_tokens === 1000 && b.max_cost_usd === null;
      },
    });
    r = call('DELETE', '/api/llm/budgets/:scope', `/api/llm/budgets/${scope}`, null);
    verify(r, { 'llm: budget delete': (x) => (is200(x) || {}).deleted === scope });
  });

  group('audit', () => {
    let r = call('GET', '/api/audit', '/api/audit?limit=5', null);
    verify(r, {
      'audit: list': (x) => {
        const b = is200(x);
        return Array.isArray(b) && b.length >= 1 && b.length <= 5 && typeof b[0].hash === 'string';
      },
    });
    r = call('GET', '/api/audit', '/api/audit?action=state.put&limit=1', null);
    verify(r, {
      'audit: list by action': (x) => {
        const b = is200(x);
        return Array.isArray(b) && b.length === 1 && b[0].action === 'state.put';
      },
    });
    r = call('GET', '/api/audit/summary', '/api/audit/summary', null);
    verify(r, {
      'audit: summary': (x) => {
        const b = is200(x) || {};
        return b.total_entries > 0 && (b.action_counts || {})['state.put'] > 0;
      },
    });
    r = call('GET', '/api/audit/verify', '/api/audit/verify', null);
    verify(r, {
      'audit: verify ok': (x) => {
        const b = is200(x) || {};
        return b.ok === true && b.entries > 0;
      },
    });
  });

  group('metrics', () => {
    let r = call('GET', '/api/metrics', '/api/metrics', null);
    verify(r, {
      'metrics: /api/metrics': (x) => {
        const b = is200(x) || {};
        return typeof b.state_keys === 'number' && (b.token_tax || {}).rest_calls > 0 && b.last_event_id > 0;
      },
    });
    r = call('GET', '/metrics', '/metrics', null);
    verify(r, {
      'metrics: Prometheus text': (x) =>
        x.status === 200 &&
        /^text\/plain/.test(header(x, 'Content-Type') || '') &&
        x.body.indexOf('# TYPE koor_http_requests_total counter') >= 0,
    });
  });

  group('mcp', () => {
    const rpc = (id, method, params) =>
      call('POST', '/mcp', '/mcp', { jsonrpc: '2.0', id: id, method: method, params: params }, { headers: mcpHeaders });
    let r = rpc(1, 'initialize', {
      protocolVersion: '2025-06-18',
      capabilities: {},
      clientInfo: { name: 'k6-smoke', version: '1' },
    });
    verify(r, {
      'mcp: initialize': (x) => {
        const res = (is200(x) || {}).result || {};
        return (res.serverInfo || {}).name === 'koor' && typeof res.protocolVersion === 'string';
      },
    });
    r = rpc(2, 'tools/list', {});
    verify(r, {
      'mcp: tools/list': (x) => {
        const tools = (((is200(x) || {}).result || {}).tools || []).map((t) => t.name);
        return ['register_instance', 'discover_instances', 'set_intent', 'get_endpoints', 'propose_rule'].every(
          (n) => tools.indexOf(n) >= 0,
        );
      },
    });
  });

  flows.add(1);
}

export function websocket(data) {
  const p = `smoke-${data.run}-ws-${exec.scenario.iterationInTest}`;
  const topic = `smoke.${p}`;
  const nonce = `${p}-${Math.random()}`;

  const last = call('GET', '/api/events/history', '/api/events/history?last=1', null);
  const newest = is200(last);
  check(last, { 'ws: newest event id read': () => Array.isArray(newest) });
  const after = newest && newest.length > 0 ? newest[0].id : 0;

  const url = `${WS_BASE}/api/events/subscribe?pattern=${encodeURIComponent(topic)}&after=${after}`;
  const ws = new WebSocket(url, null, { headers: authHeaders, tags: { name: 'subscribe' } });
  let sentAt = 0;
  let received = false;
  let opened = false;

  const timer = setTimeout(() => ws.close(), WS_WAIT_MS);

  ws.onopen = () => {
    opened = true;
    sentAt = Date.now();
    const r = call('POST', '/api/events/publish', '/api/events/publish', { topic: topic, data: { nonce: nonce } });
    check(r, { 'ws: publish': (x) => (is200(x) || {}).topic === topic });
  };

  ws.onmessage = (msg) => {
    const ev = JSON.parse(msg.data);
    if (ev.topic === topic && ev.data && ev.data.nonce === nonce && !received) {
      received = true;
      roundtripMs.add(Date.now() - sentAt);
      clearTimeout(timer);
      ws.close();
    }
  };

  ws.onerror = (e) => {
    wsErrors.add(1);
    console.error(`websocket ${p}: ${e.error}`);
  };

  ws.onclose = () => {
    clearTimeout(timer);
    check(opened, { 'ws: connected': (o) => o });
    check(received, { 'ws: received the event it published': (g) => g });
    if (received) roundtrips.add(1);
  };
}

function failedChecks(group) {
  let out = [];
  for (const c of group.checks || []) if (c.fails > 0) out.push(c.name);
  for (const g of group.groups || []) out = out.concat(failedChecks(g));
  return out;
}

export function handleSummary(data) {
  let text = `\nkoor smoke: ${RATE} flows/s and ${WS_RATE} WebSocket round trips/s for ${DURATION}, ${BASE_URL}\n\n`;
  text += metricsText(data, options.summaryTrendStats);
  const failed = failedChecks(data.root_group);
  const line =
    `SUMMARY flows=${val(data, 'smoke_flows', 'count')}` +
    ` ws_roundtrips=${val(data, 'ws_roundtrips', 'count')}` +
    ` requests=${val(data, 'http_reqs', 'count')}` +
    ` failed_requests=${val(data, 'http_req_failed', 'passes')}` +
    ` checks_failed=${val(data, 'checks', 'fails')}` +
    ` p95=${fmt(val(data, 'http_req_duration', 'p(95)'))}ms` +
    ` max=${fmt(val(data, 'http_req_duration', 'max'))}ms` +
    ` dropped_iterations=${val(data, 'dropped_iterations', 'count')}` +
    (failed.length > 0 ? ` failed_checks=${JSON.stringify(failed)}` : '');
  text += `\n${line}\n`;
  return summaryOutput(text, data);
}
