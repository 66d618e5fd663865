// k6 load test of koor's agent registry: many registered agents heartbeating.
//
//   load/run.sh load/heartbeats.js                        # 200 agents, 2000 heartbeats/s, 30 s
//   AGENTS=1000 RATE=5000 load/run.sh load/heartbeats.js
//   BASE_URL=http://127.0.0.1:9800 k6 run load/heartbeats.js   # against a server you started
//
// Environment:
//   BASE_URL     server under test (default http://127.0.0.1:9800); loopback addresses only
//   KOOR_TOKEN   bearer token, sent on every request
//   AGENTS       instances registered and activated by setup() (default 200)
//   RATE         heartbeats started per second, spread round robin over the agents (default 2000)
//   DURATION     how long the heartbeats run, a k6 duration (default 30s)
//   VUS          VUs of the scenario, pre-allocated and maximum, i.e. the most heartbeats
//                in flight at once (default 100)
//   P99_MS       p(99) bound of heartbeat_ms in milliseconds (default 20)
//   MAX_DROP_PCT most heartbeats k6 may drop, in percent of RATE x DURATION, before the
//                threshold fails (default 1)
//   SUMMARY_JSON optional path: also write k6's end-of-test data there as JSON
//
// setup() registers AGENTS instances (workspace load-heartbeats-<run id>) and activates
// them; teardown() deregisters them. The heartbeats scenario is open-model
// (constant-arrival-rate): overload shows as growing latency and dropped_iterations.
//
// Metrics besides k6's own:
//   heartbeat_ms        duration of each heartbeat answered 200 (setup and teardown excluded)
//   heartbeats          heartbeats answered 200 {"id", "status": "ok"}
//   heartbeat_errors    any other answer

import http from 'k6/http';
import { check } from 'k6';
import exec from 'k6/execution';
import { Counter, Trend } from 'k6/metrics';
import {
  BASE_URL,
  TREND_STATS,
  allowedDrops,
  authHeaders,
  envInt,
  envNum,
  envPct,
  fmt,
  healthOrAbort,
  json,
  jsonHeaders,
  metricsText,
  newRunId,
  parseDurationMs,
  summaryOutput,
  val,
} from './lib.js';

const AGENTS = envInt('AGENTS', 200);
const RATE = envInt('RATE', 2000);
const DURATION = __ENV.DURATION || '30s';
const DURATION_MS = parseDurationMs(DURATION);
const VUS = envInt('VUS', 100);
const P99_MS = envNum('P99_MS', 20);
const MAX_DROP_PCT = envPct('MAX_DROP_PCT', 1);

const latency = new Trend('heartbeat_ms', true);
const beats = new Counter('heartbeats');
const errors = new Counter('heartbeat_errors');

export const options = {
  scenarios: {
    heartbeats: {
      executor: 'constant-arrival-rate',
      exec: 'heartbeat',
      rate: RATE,
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: VUS,
      maxVUs: VUS,
      gracefulStop: '5s',
    },
  },
  thresholds: {
    heartbeat_ms: [`p(99)<${P99_MS}`],
    heartbeat_errors: ['count==0'],
    checks: ['rate==1'],
    dropped_iterations: [`count<=${allowedDrops(RATE, DURATION_MS, MAX_DROP_PCT)}`],
    // Not a target: makes a run in which no heartbeat succeeded fail instead of pass.
    heartbeats: ['count>=1'],
  },
  summaryTrendStats: TREND_STATS,
};

function inChunks(items, size, fn) {
  const out = [];
  for (let start = 0; start < items.length; start += size) {
    out.push(...fn(items.slice(start, start + size)));
  }
  return out;
}

export function setup() {
  healthOrAbort();
  const run = newRunId();
  const workspace = `load-heartbeats-${run}`;
  const indexes = Array.from({ length: AGENTS }, (_, i) => i);
  const registered = inChunks(indexes, 50, (chunk) =>
    http.batch(
      chunk.map((i) => ({
        method: 'POST',
        url: `${BASE_URL}/api/instances/register`,
        body: JSON.stringify({ name: `agent-${i}`, workspace: workspace, stack: 'load' }),
        params: { headers: jsonHeaders, timeout: '30s', tags: { name: 'register' } },
      })),
    ),
  );
  const ids = registered.map((res, i) => {
    if (res.status !== 200) exec.test.abort(`registering agent ${i} answered ${res.status}: ${res.body}`);
    return res.json('id');
  });
  const activated = inChunks(ids, 50, (chunk) =>
    http.batch(
      chunk.map((id) => ({
        method: 'POST',
        url: `${BASE_URL}/api/instances/${id}/activate`,
        params: { headers: authHeaders, timeout: '30s', tags: { name: 'activate' } },
      })),
    ),
  );
  activated.forEach((res, i) => {
    if (res.status !== 200) exec.test.abort(`activating agent ${i} answered ${res.status}: ${res.body}`);
  });
  errors.add(0);
  beats.add(0);
  return { ids: ids, workspace: workspace };
}

export function heartbeat(data) {
  const id = data.ids[exec.scenario.iterationInTest % data.ids.length];
  const res = http.post(`${BASE_URL}/api/instances/${id}/heartbeat`, null, {
    headers: authHeaders,
    timeout: '10s',
    tags: { name: 'POST /api/instances/:id/heartbeat' },
  });
  const ok = check(res, {
    'heartbeat 200 ok': (r) => {
      const b = json(r) || {};
      return r.status === 200 && b.status === 'ok' && b.id === id;
    },
  });
  if (ok) {
    beats.add(1);
    latency.add(res.timings.duration);
  } else {
    errors.add(1);
    if (res.status !== 200) console.error(`heartbeat ${id}: status ${res.status} ${res.error || ''}`);
  }
}

export function teardown(data) {
  inChunks(data.ids, 50, (chunk) =>
    http.batch(
      chunk.map((id) => ({
        method: 'DELETE',
        url: `${BASE_URL}/api/instances/${id}`,
        params: { headers: authHeaders, timeout: '30s', tags: { name: 'deregister' } },
      })),
    ),
  );
}

export function handleSummary(data) {
  let text = `\nkoor heartbeat load: ${AGENTS} agents, ${RATE} heartbeats/s for ${DURATION}, ${BASE_URL}\n\n`;
  text += metricsText(data, options.summaryTrendStats);
  const done = val(data, 'heartbeats', 'count');
  const perSec = done / (DURATION_MS / 1000);
  const p99 = val(data, 'heartbeat_ms', 'p(99)');
  const line =
    `SUMMARY agents=${AGENTS} rate=${RATE}/s vus=${VUS} duration=${DURATION}` +
    ` heartbeats=${done} heartbeats_per_s=${fmt(perSec)}` +
    ` p50=${fmt(val(data, 'heartbeat_ms', 'med'))}ms` +
    ` p95=${fmt(val(data, 'heartbeat_ms', 'p(95)'))}ms` +
    ` p99=${fmt(p99)}ms` +
    ` max=${fmt(val(data, 'heartbeat_ms', 'max'))}ms` +
    ` errors=${val(data, 'heartbeat_errors', 'count')}` +
    ` dropped_iterations=${val(data, 'dropped_iterations', 'count')}` +
    ` target_met=${done > 0 && p99 < 20 && perSec >= 2000 * 0.99 && val(data, 'heartbeat_errors', 'count') === 0}`;
  text += `\n${line}\n`;
  return summaryOutput(text, data);
}
