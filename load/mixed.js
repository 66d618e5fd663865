// k6 load test of koor under a realistic team: agents joining and heartbeating, agents
// reading (with ETag revalidation) and writing shared state, publishing events, and
// WebSocket subscribers receiving them, all at the same time.
//
//   load/run.sh load/mixed.js
//   SUBSCRIBERS=50 PUBLISH_RATE=200 DURATION=60s load/run.sh load/mixed.js
//   BASE_URL=http://127.0.0.1:9800 k6 run load/mixed.js   # against a server you started
//
// Environment:
//   BASE_URL         server under test (default http://127.0.0.1:9800); loopback addresses only
//   KOOR_TOKEN       bearer token, sent on every request and on the WebSocket handshake
//   DURATION         how long the open-model scenarios run, a k6 duration (default 30s)
//   AGENTS           the team: instances registered and activated by setup() (default 20)
//   HEARTBEAT_RATE   heartbeats per second, round robin over the team (default 100)
//   JOIN_RATE        agents per second that join and leave: register, activate, heartbeat,
//                    discover (list by workspace), get, deregister (default 2)
//   SHARED_KEYS      state keys the team shares, written by setup() (default 50)
//   READ_RATE        state reads per second (default 400); each reader VU remembers the
//                    ETag it last saw per key and revalidates with If-None-Match
//   WRITE_RATE       state writes per second to random shared keys (default 100)
//   PUBLISH_RATE     events published per second (default 100)
//   SUBSCRIBERS      WebSocket subscribers, one VU each, open for the whole run (default 20)
//   VALUE_BYTES      approximate size of every state value in bytes (default 512)
//   HTTP_P95_MS      p(95) bound of http_req_duration in milliseconds (default 100)
//   DELIVERY_P95_MS  p(95) bound of publish_to_receive_ms in milliseconds (default 250)
//   MAX_DROP_PCT     most iterations k6 may drop, in percent of all open-model iterations,
//                    before the threshold fails (default 1)
//   SUMMARY_JSON     optional path: also write k6's end-of-test data there as JSON
//
// Every open-model scenario (constant-arrival-rate) starts 3 s after the subscribers
// connect and runs DURATION; the subscribers stay open 5 s longer to drain. Keys, names and
// topics carry a run id, so reruns on the same server do not collide.
//
// Metrics besides k6's own:
//   publish_to_receive_ms   Date.now() at receive minus data.sent_at (set just before the
//                           POST), per event and subscriber; includes time inside k6
//   events_published        publishes answered 200
//   events_received         events delivered, all subscribers together
//   lagged                  koor.lagged frames (the server dropped a slow subscriber)
//   subscribers_connected   WebSockets that opened
//   subscribers_closed_early WebSockets that closed before their time
//   ws_errors               WebSocket errors
//   heartbeats, joins       heartbeats answered 200, join-and-leave flows completed
//   state_reads             reads answered 200 or 304; state_not_modified the 304s
//   state_writes            writes acknowledged (200)

import http from 'k6/http';
import { check } from 'k6';
import exec from 'k6/execution';
import { Counter, Trend } from 'k6/metrics';
import { setTimeout } from 'k6/timers';
import { WebSocket } from 'k6/experimental/websockets';
import {
  BASE_URL,
  TREND_STATS,
  WS_BASE,
  allowedDrops,
  authHeaders,
  envInt,
  envNum,
  envPct,
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

const DURATION = __ENV.DURATION || '30s';
const DURATION_MS = parseDurationMs(DURATION);
const AGENTS = envInt('AGENTS', 20);
const HEARTBEAT_RATE = envInt('HEARTBEAT_RATE', 100);
const JOIN_RATE = envInt('JOIN_RATE', 2);
const SHARED_KEYS = envInt('SHARED_KEYS', 50);
const READ_RATE = envInt('READ_RATE', 400);
const WRITE_RATE = envInt('WRITE_RATE', 100);
const PUBLISH_RATE = envInt('PUBLISH_RATE', 100);
const SUBSCRIBERS = envInt('SUBSCRIBERS', 20);
const VALUE_BYTES = envInt('VALUE_BYTES', 512);
const HTTP_P95_MS = envNum('HTTP_P95_MS', 100);
const DELIVERY_P95_MS = envNum('DELIVERY_P95_MS', 250);
const MAX_DROP_PCT = envPct('MAX_DROP_PCT', 1);

const START_S = 3;
const DRAIN_S = 5;
const HOLD_MS = (START_S + DRAIN_S) * 1000 + DURATION_MS;

const latency = new Trend('publish_to_receive_ms', true);
const published = new Counter('events_published');
const received = new Counter('events_received');
const lagged = new Counter('lagged');
const connected = new Counter('subscribers_connected');
const closedEarly = new Counter('subscribers_closed_early');
const wsErrors = new Counter('ws_errors');
const heartbeats = new Counter('heartbeats');
const joins = new Counter('joins');
const reads = new Counter('state_reads');
const notModified = new Counter('state_not_modified');
const writes = new Counter('state_writes');

const PAD = 'x'.repeat(Math.max(0, VALUE_BYTES - 60));

// Each open-model scenario: VUs pre-allocated for ~20 ms per iteration, at most 10x that.
function openScenario(fn, rate) {
  const vus = Math.max(2, Math.ceil(rate / 50));
  return {
    executor: 'constant-arrival-rate',
    exec: fn,
    rate: rate,
    timeUnit: '1s',
    duration: DURATION,
    startTime: `${START_S}s`,
    preAllocatedVUs: vus,
    maxVUs: vus * 10,
    gracefulStop: '5s',
  };
}

const OPEN = {
  heartbeats: ['heartbeat', HEARTBEAT_RATE],
  joiners: ['join', JOIN_RATE],
  state_readers: ['readState', READ_RATE],
  state_writers: ['writeState', WRITE_RATE],
  publishers: ['publish', PUBLISH_RATE],
};

const scenarios = {
  subscribers: {
    executor: 'per-vu-iterations',
    exec: 'subscriber',
    vus: SUBSCRIBERS,
    iterations: 1,
    maxDuration: `${Math.ceil(HOLD_MS / 1000) + 30}s`,
    gracefulStop: '10s',
  },
};
const thresholds = {
  http_req_failed: ['rate==0'],
  checks: ['rate==1'],
  http_req_duration: [`p(95)<${HTTP_P95_MS}`],
  publish_to_receive_ms: [`p(95)<${DELIVERY_P95_MS}`],
  lagged: ['count==0'],
  ws_errors: ['count==0'],
  subscribers_closed_early: ['count==0'],
  // Not targets: make a run in which the subscribers could not connect, or nothing was
  // published, fail instead of passing on empty metrics.
  subscribers_connected: [`count>=${SUBSCRIBERS}`],
  events_published: ['count>=1'],
};
let openIterations = 0;
for (const [name, [fn, rate]] of Object.entries(OPEN)) {
  scenarios[name] = openScenario(fn, rate);
  openIterations += rate;
  // Listed so that the summary reports each scenario's request durations on their own.
  thresholds[`http_req_duration{scenario:${name}}`] = ['max>=0'];
}
thresholds.dropped_iterations = [`count<=${allowedDrops(openIterations, DURATION_MS, MAX_DROP_PCT)}`];

export const options = {
  scenarios: scenarios,
  thresholds: thresholds,
  summaryTrendStats: TREND_STATS,
};

function stateValue(seq) {
  return `{"writer":${exec.vu.idInTest},"seq":${seq},"pad":"${PAD}"}`;
}

export function setup() {
  healthOrAbort();
  const run = newRunId();
  const workspace = `load-mixed-${run}`;

  const registered = http.batch(
    Array.from({ length: AGENTS }, (_, i) => ({
      method: 'POST',
      url: `${BASE_URL}/api/instances/register`,
      body: JSON.stringify({ name: `agent-${i}`, workspace: workspace, stack: 'load' }),
      params: { headers: jsonHeaders, timeout: '30s', tags: { name: 'setup register' } },
    })),
  );
  const ids = registered.map((res, i) => {
    if (res.status !== 200) exec.test.abort(`registering agent ${i} answered ${res.status}: ${res.body}`);
    return res.json('id');
  });
  http.batch(
    ids.map((id) => ({
      method: 'POST',
      url: `${BASE_URL}/api/instances/${id}/activate`,
      params: { headers: authHeaders, timeout: '30s', tags: { name: 'setup activate' } },
    })),
  ).forEach((res, i) => {
    if (res.status !== 200) exec.test.abort(`activating agent ${i} answered ${res.status}: ${res.body}`);
  });

  http.batch(
    Array.from({ length: SHARED_KEYS }, (_, i) => ({
      method: 'PUT',
      url: `${BASE_URL}/api/state/load/mixed/${run}/${i}`,
      body: `{"writer":0,"seq":${i},"pad":"${PAD}"}`,
      params: { headers: jsonHeaders, timeout: '30s', tags: { name: 'setup state' } },
    })),
  ).forEach((res, i) => {
    if (res.status !== 200) exec.test.abort(`writing shared key ${i} answered ${res.status}: ${res.body}`);
  });

  for (const c of [lagged, connected, closedEarly, wsErrors, published, received]) c.add(0);
  return { run: run, workspace: workspace, ids: ids };
}

export function heartbeat(data) {
  const id = data.ids[exec.scenario.iterationInTest % data.ids.length];
  const res = http.post(`${BASE_URL}/api/instances/${id}/heartbeat`, null, {
    headers: authHeaders,
    timeout: '10s',
    tags: { name: 'POST /api/instances/:id/heartbeat' },
  });
  if (check(res, { 'heartbeat 200': (r) => r.status === 200 })) heartbeats.add(1);
}

export function join(data) {
  const it = exec.scenario.iterationInTest;
  const name = `joiner-${it}`;
  let res = http.post(
    `${BASE_URL}/api/instances/register`,
    JSON.stringify({ name: name, workspace: data.workspace, stack: 'load', intent: 'joining' }),
    { headers: jsonHeaders, timeout: '10s', tags: { name: 'POST /api/instances/register' } },
  );
  const inst = json(res) || {};
  if (!check(res, { 'join: register 200 pending': (r) => r.status === 200 && inst.status === 'pending' })) return;
  const id = inst.id;
  const p = { headers: authHeaders, timeout: '10s' };
  res = http.post(`${BASE_URL}/api/instances/${id}/activate`, null, Object.assign({ tags: { name: 'POST /api/instances/:id/activate' } }, p));
  check(res, { 'join: activate 200': (r) => r.status === 200 });
  res = http.post(`${BASE_URL}/api/instances/${id}/heartbeat`, null, Object.assign({ tags: { name: 'POST /api/instances/:id/heartbeat' } }, p));
  check(res, { 'join: heartbeat 200': (r) => r.status === 200 });
  res = http.get(
    `${BASE_URL}/api/instances?workspace=${encodeURIComponent(data.workspace)}&name=${encodeURIComponent(name)}`,
    Object.assign({ tags: { name: 'GET /api/instances' } }, p),
  );
  check(res, {
    'join: discover finds itself active': (r) => {
      const b = json(r);
      return r.status === 200 && Array.isArray(b) && b.length === 1 && b[0].id === id && b[0].status === 'active';
    },
  });
  res = http.get(`${BASE_URL}/api/instances/${id}`, Object.assign({ tags: { name: 'GET /api/instances/:id' } }, p));
  check(res, { 'join: get 200': (r) => r.status === 200 });
  res = http.del(`${BASE_URL}/api/instances/${id}`, null, Object.assign({ tags: { name: 'DELETE /api/instances/:id' } }, p));
  if (check(res, { 'join: deregister 200': (r) => r.status === 200 })) joins.add(1);
}

// Per reader VU: the ETag last seen for each shared key.
const etags = {};

export function readState(data) {
  const i = Math.floor(Math.random() * SHARED_KEYS);
  const known = etags[i];
  const res = http.get(`${BASE_URL}/api/state/load/mixed/${data.run}/${i}`, {
    headers: known ? Object.assign({ 'If-None-Match': known }, authHeaders) : authHeaders,
    responseType: 'none',
    timeout: '10s',
    tags: { name: 'GET /api/state/:key' },
  });
  const ok = check(res, {
    'state read 200 or 304': (r) => (r.status === 200 && !!header(r, 'ETag')) || (known && r.status === 304),
  });
  if (!ok) return;
  reads.add(1);
  if (res.status === 304) notModified.add(1);
  else etags[i] = header(res, 'ETag');
}

export function writeState(data) {
  const i = Math.floor(Math.random() * SHARED_KEYS);
  const res = http.put(`${BASE_URL}/api/state/load/mixed/${data.run}/${i}`, stateValue(exec.scenario.iterationInTest), {
    headers: jsonHeaders,
    responseType: 'none',
    timeout: '10s',
    tags: { name: 'PUT /api/state/:key' },
  });
  if (check(res, { 'state write 200': (r) => r.status === 200 })) writes.add(1);
}

export function publish(data) {
  const body = JSON.stringify({
    topic: `mixed.${data.run}.tick`,
    data: { sent_at: Date.now(), seq: exec.scenario.iterationInTest },
  });
  const res = http.post(`${BASE_URL}/api/events/publish`, body, {
    headers: jsonHeaders,
    timeout: '10s',
    tags: { name: 'POST /api/events/publish' },
  });
  if (check(res, { 'publish 200': (r) => r.status === 200 })) published.add(1);
}

export function subscriber(data) {
  const url = `${WS_BASE}/api/events/subscribe?pattern=${encodeURIComponent(`mixed.${data.run}.*`)}`;
  const ws = new WebSocket(url, null, { headers: authHeaders, tags: { name: 'subscribe' } });
  let count = 0; // added to events_received once at the end
  let finished = false;

  ws.onopen = () => {
    connected.add(1);
    setTimeout(() => {
      finished = true;
      ws.close();
    }, HOLD_MS);
  };

  ws.onmessage = (msg) => {
    const now = Date.now();
    const ev = JSON.parse(msg.data);
    if (ev.topic === 'koor.lagged') {
      lagged.add(1);
      return;
    }
    count++;
    if (ev.data && typeof ev.data.sent_at === 'number') latency.add(now - ev.data.sent_at);
  };

  ws.onerror = (e) => {
    wsErrors.add(1);
    console.error(`subscriber ${exec.vu.idInTest}: ${e.error}`);
  };

  ws.onclose = () => {
    if (!finished) closedEarly.add(1);
    finished = true;
    received.add(count);
  };
}

export function teardown(data) {
  http.batch(
    data.ids.map((id) => ({
      method: 'DELETE',
      url: `${BASE_URL}/api/instances/${id}`,
      params: { headers: authHeaders, timeout: '30s', tags: { name: 'teardown deregister' } },
    })),
  );
}

function scenarioPart(data, name, okMetric, rate) {
  const done = val(data, okMetric, 'count');
  return (
    ` ${name}=${done}(${fmt(done / (DURATION_MS / 1000))}/s of ${rate}/s` +
    ` p95=${fmt(val(data, `http_req_duration{scenario:${name}}`, 'p(95)'))}ms)`
  );
}

export function handleSummary(data) {
  let text = `\nkoor mixed load: ${AGENTS} agents, ${SUBSCRIBERS} subscribers for ${DURATION}, ${BASE_URL}\n\n`;
  text += metricsText(data, options.summaryTrendStats);
  const pub = val(data, 'events_published', 'count');
  const line =
    `SUMMARY duration=${DURATION}` +
    scenarioPart(data, 'heartbeats', 'heartbeats', HEARTBEAT_RATE) +
    scenarioPart(data, 'joiners', 'joins', JOIN_RATE) +
    scenarioPart(data, 'state_readers', 'state_reads', READ_RATE) +
    ` not_modified=${val(data, 'state_not_modified', 'count')}` +
    scenarioPart(data, 'state_writers', 'state_writes', WRITE_RATE) +
    scenarioPart(data, 'publishers', 'events_published', PUBLISH_RATE) +
    ` subscribers=${val(data, 'subscribers_connected', 'count')}/${SUBSCRIBERS}` +
    ` received=${val(data, 'events_received', 'count')}` +
    ` expected=${pub * val(data, 'subscribers_connected', 'count')}` +
    ` delivery_p50=${fmt(val(data, 'publish_to_receive_ms', 'med'))}ms` +
    ` delivery_p95=${fmt(val(data, 'publish_to_receive_ms', 'p(95)'))}ms` +
    ` delivery_p99=${fmt(val(data, 'publish_to_receive_ms', 'p(99)'))}ms` +
    ` lagged=${val(data, 'lagged', 'count')}` +
    ` http_p95=${fmt(val(data, 'http_req_duration', 'p(95)'))}ms` +
    ` failed_requests=${val(data, 'http_req_failed', 'passes')}` +
    ` dropped_iterations=${val(data, 'dropped_iterations', 'count')}`;
  text += `\n${line}\n`;
  return summaryOutput(text, data);
}
