// k6 load test of koor's state store: conditional and plain reads, and writes.
//
//   load/run.sh load/state.js                                 # both scenarios at once
//   SCENARIO=writes load/run.sh load/state.js                 # the write target: 64 writers, 8000 PUT/s
//   SCENARIO=reads READ_RATE=10000 load/run.sh load/state.js  # read throughput alone
//   BASE_URL=http://127.0.0.1:9800 k6 run load/state.js       # against a server you started
//
// Environment:
//   BASE_URL        server under test (default http://127.0.0.1:9800); loopback addresses only
//   KOOR_TOKEN      bearer token, sent on every request
//   SCENARIO        reads | writes | both (default both: the two run at the same time)
//   DURATION        how long each scenario runs, a k6 duration (default 30s)
//   RATE            shorthand for READ_RATE and WRITE_RATE together
//   READ_RATE       GETs started per second (default RATE, else 5000 alone / 4000 in both)
//   WRITE_RATE      PUTs started per second (default RATE, else 8000 alone / 1000 in both)
//   KEYS            keys written by setup() and read by the reads scenario (default 1000)
//   CONDITIONAL_PCT percentage of reads sent with If-None-Match: the key's current ETag,
//                   answered 304; the others are plain GETs answered 200 (default 80)
//   READERS         VUs of the reads scenario, pre-allocated and maximum (default 100)
//   WRITERS         VUs of the writes scenario, pre-allocated and maximum, i.e. the most
//                   PUTs in flight at once (default 64)
//   WRITE_KEYS      keys the writes are spread over, round robin (default 1000)
//   VALUE_BYTES     approximate size of every stored value in bytes (default 256)
//   MAX_DROP_PCT    most iterations a scenario may drop, in percent of RATE x DURATION,
//                   before its threshold fails (default 1)
//   SUMMARY_JSON    optional path: also write k6's end-of-test data there as JSON
//
// Both scenarios are open-model (constant-arrival-rate): when the server, or k6, cannot
// keep up, latency grows until every VU is busy and then k6 drops iterations
// (dropped_iterations, per scenario), which the thresholds count against the rate.
// Reads and writes use different keys, so every conditional read is a 304 also while the
// writes run. Keys carry a run id, so reruns on the same server do not collide.
//
// Metrics besides k6's own (every sample also has the tag scenario=reads|writes):
//   state_read_ms      duration of each read, tag kind=conditional|plain
//   state_write_ms     duration of each acknowledged write
//   state_reads        reads answered as expected (304 conditional, 200 plain)
//   state_not_modified conditional reads answered 304
//   state_writes       writes acknowledged (200)
//   state_read_errors, state_write_errors   any other answer (status, or a wrong ETag)

import http from 'k6/http';
import exec from 'k6/execution';
import { Counter, Trend } from 'k6/metrics';
import {
  BASE_URL,
  TREND_STATS,
  allowedDrops,
  authHeaders,
  envInt,
  envPct,
  fmt,
  header,
  healthOrAbort,
  jsonHeaders,
  metricsText,
  newRunId,
  parseDurationMs,
  summaryOutput,
  val,
} from './lib.js';

const SCENARIO = __ENV.SCENARIO || 'both';
if (['reads', 'writes', 'both'].indexOf(SCENARIO) < 0) {
  throw new Error(`SCENARIO must be reads, writes or both, got ${SCENARIO}`);
}
const READS = SCENARIO !== 'writes';
const WRITES = SCENARIO !== 'reads';
const BOTH = READS && WRITES;

const DURATION = __ENV.DURATION || '30s';
const DURATION_MS = parseDurationMs(DURATION);
const RATE = envInt('RATE', 0);
const READ_RATE = envInt('READ_RATE', RATE || (BOTH ? 4000 : 5000));
const WRITE_RATE = envInt('WRITE_RATE', RATE || (BOTH ? 1000 : 8000));
const KEYS = envInt('KEYS', 1000);
const CONDITIONAL_PCT = envPct('CONDITIONAL_PCT', 80);
const READERS = envInt('READERS', 100);
const WRITERS = envInt('WRITERS', 64);
const WRITE_KEYS = envInt('WRITE_KEYS', 1000);
const VALUE_BYTES = envInt('VALUE_BYTES', 256);
const MAX_DROP_PCT = envPct('MAX_DROP_PCT', 1);

// The write target of the issue: at 64 concurrent writers, at least 8000 acknowledged PUT/s.
const WRITE_TARGET = 8000;

const readMs = new Trend('state_read_ms', true);
const writeMs = new Trend('state_write_ms', true);
const reads = new Counter('state_reads');
const notModified = new Counter('state_not_modified');
const writes = new Counter('state_writes');
const readErrors = new Counter('state_read_errors');
const writeErrors = new Counter('state_write_errors');

const PAD = 'x'.repeat(Math.max(0, VALUE_BYTES - 40));
function value(seq) {
  return `{"seq":${seq},"pad":"${PAD}"}`;
}

const scenarios = {};
const thresholds = {};
if (READS) {
  scenarios.reads = {
    executor: 'constant-arrival-rate',
    exec: 'read',
    rate: READ_RATE,
    timeUnit: '1s',
    duration: DURATION,
    preAllocatedVUs: READERS,
    maxVUs: READERS,
    gracefulStop: '5s',
  };
  thresholds.state_read_errors = ['count==0'];
  thresholds['dropped_iterations{scenario:reads}'] = [`count<=${allowedDrops(READ_RATE, DURATION_MS, MAX_DROP_PCT)}`];
  // Listed so that the summary reports k6's request metrics of this scenario on their own.
  thresholds['http_req_duration{scenario:reads}'] = ['max>=0'];
}
if (WRITES) {
  scenarios.writes = {
    executor: 'constant-arrival-rate',
    exec: 'write',
    rate: WRITE_RATE,
    timeUnit: '1s',
    duration: DURATION,
    preAllocatedVUs: WRITERS,
    maxVUs: WRITERS,
    gracefulStop: '5s',
  };
  thresholds.state_write_errors = ['count==0'];
  thresholds['dropped_iterations{scenario:writes}'] = [`count<=${allowedDrops(WRITE_RATE, DURATION_MS, MAX_DROP_PCT)}`];
  thresholds['http_req_duration{scenario:writes}'] = ['max>=0'];
}

export const options = {
  scenarios: scenarios,
  thresholds: thresholds,
  summaryTrendStats: TREND_STATS,
};

// Writes the KEYS keys of the reads scenario; returns the run id and each key's ETag.
export function setup() {
  healthOrAbort();
  const run = newRunId();
  const etags = [];
  if (READS) {
    for (let start = 0; start < KEYS; start += 100) {
      const batch = [];
      for (let i = start; i < Math.min(KEYS, start + 100); i++) {
        batch.push({
          method: 'PUT',
          url: `${BASE_URL}/api/state/load/state/${run}/r/${i}`,
          body: value(i),
          params: { headers: jsonHeaders, timeout: '30s', tags: { name: 'preload' } },
        });
      }
      const res = http.batch(batch);
      for (let j = 0; j < res.length; j++) {
        if (res[j].status !== 200) {
          exec.test.abort(`preloading key ${start + j} answered ${res[j].status}: ${res[j].body}`);
        }
        etags.push(`"${res[j].json('hash')}"`);
      }
    }
  }
  readErrors.add(0);
  writeErrors.add(0);
  return { run: run, etags: etags };
}

export function read(data) {
  const it = exec.scenario.iterationInTest;
  const i = it % KEYS;
  const etag = data.etags[i];
  const conditional = Math.random() * 100 < CONDITIONAL_PCT;
  const kind = conditional ? 'conditional' : 'plain';
  const res = http.get(`${BASE_URL}/api/state/load/state/${data.run}/r/${i}`, {
    headers: conditional ? Object.assign({ 'If-None-Match': etag }, authHeaders) : authHeaders,
    responseType: 'none',
    timeout: '10s',
    tags: { name: `GET /api/state/:key (${kind})` },
  });
  const ok = conditional ? res.status === 304 : res.status === 200 && header(res, 'ETag') === etag;
  if (ok) {
    reads.add(1, { kind: kind });
    readMs.add(res.timings.duration, { kind: kind });
    if (conditional) notModified.add(1);
  } else {
    readErrors.add(1, { kind: kind });
    if (res.status !== 200 && res.status !== 304) {
      console.error(`read ${kind} of key ${i}: status ${res.status} ${res.error || ''}`);
    }
  }
}

export function write(data) {
  const it = exec.scenario.iterationInTest;
  const res = http.put(`${BASE_URL}/api/state/load/state/${data.run}/w/${it % WRITE_KEYS}`, value(it), {
    headers: jsonHeaders,
    responseType: 'none',
    timeout: '10s',
    tags: { name: 'PUT /api/state/:key' },
  });
  if (res.status === 200) {
    writes.add(1);
    writeMs.add(res.timings.duration);
  } else {
    writeErrors.add(1);
    console.error(`write ${it}: status ${res.status} ${res.error || ''}`);
  }
}

function scenarioLine(data, name, rate, workers, okMetric, trend, errMetric) {
  const done = val(data, okMetric, 'count');
  const perSec = done / (DURATION_MS / 1000);
  return (
    `SUMMARY ${name} rate=${rate}/s vus=${workers} duration=${DURATION}` +
    ` ok=${done} ok_per_s=${fmt(perSec)}` +
    ` p50=${fmt(val(data, trend, 'med'))}ms` +
    ` p95=${fmt(val(data, trend, 'p(95)'))}ms` +
    ` p99=${fmt(val(data, trend, 'p(99)'))}ms` +
    ` max=${fmt(val(data, trend, 'max'))}ms` +
    ` errors=${val(data, errMetric, 'count')}` +
    ` dropped_iterations=${val(data, `dropped_iterations{scenario:${name}}`, 'count')}`
  );
}

export function handleSummary(data) {
  let text = `\nkoor state load: SCENARIO=${SCENARIO} for ${DURATION}, ${BASE_URL}\n\n`;
  text += metricsText(data, options.summaryTrendStats);
  text += '\n';
  if (READS) {
    text +=
      scenarioLine(data, 'reads', READ_RATE, READERS, 'state_reads', 'state_read_ms', 'state_read_errors') +
      ` keys=${KEYS} conditional_pct=${CONDITIONAL_PCT} not_modified=${val(data, 'state_not_modified', 'count')}\n`;
  }
  if (WRITES) {
    const perSec = val(data, 'state_writes', 'count') / (DURATION_MS / 1000);
    text +=
      scenarioLine(data, 'writes', WRITE_RATE, WRITERS, 'state_writes', 'state_write_ms', 'state_write_errors') +
      ` keys=${WRITE_KEYS}` +
      ` target_met=${WRITERS === 64 && WRITE_RATE >= WRITE_TARGET && perSec >= WRITE_TARGET && val(data, 'state_write_errors', 'count') === 0}\n`;
  }
  return summaryOutput(text, data);
}
