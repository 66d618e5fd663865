// k6 load test of koor's event fan-out: N WebSocket subscribers, one publisher stream.
//
//   load/run.sh load/events.js                      # starts a release server, runs this
//   BASE_URL=http://127.0.0.1:9800 k6 run load/events.js   # against a server you started
//
// Environment:
//   BASE_URL     server under test (default http://127.0.0.1:9800); loopback addresses only
//   KOOR_TOKEN   bearer token, sent on every request and on the WebSocket handshake
//   SUBSCRIBERS  WebSocket subscribers, one VU each (default 100)
//   RATE         events published per second (default 1000)
//   DURATION     how long the publishers run, a k6 duration (default 30s)
//   SUMMARY_JSON optional path: also write k6's end-of-test data there as JSON
//
// What it measures, per event and per subscriber:
//   publish_to_receive_ms  Date.now() at receive minus data.sent_at (set just before the
//                          POST); k6 and the server share the machine's clock
//   events_received        events delivered to subscribers (all subscribers together)
//   missing_events         per subscriber: (max_id - min_id + 1) - distinct ids received;
//                          ids are strictly increasing and only this test publishes
//   undelivered_tail       per subscriber: stored load.* events after the last id it
//                          received, checked when it closes (drain time after publishing)
//   duplicate_events       an id received twice by one subscriber
//   out_of_order_events    an id lower than one received before by the same subscriber
//   lagged                 koor.lagged frames (the server dropped a slow subscriber)
//   events_published       publishes answered 200

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
  authHeaders as headers,
  fmt,
  healthOrAbort,
  jsonHeaders,
  metricsText,
  parseDurationMs,
  summaryOutput,
} from './lib.js';

const SUBSCRIBERS = parseInt(__ENV.SUBSCRIBERS || '100', 10);
const RATE = parseInt(__ENV.RATE || '1000', 10);
const DURATION = __ENV.DURATION || '30s';

// Subscribers connect first; publishing starts this much later and the sockets stay
// open this long after it ends, so in-flight events can still arrive.
const PUBLISH_START_S = 3;
const DRAIN_S = 5;
const TOPIC = 'load.tick';
const PATTERN = 'load.*';

const DURATION_MS = parseDurationMs(DURATION);
const HOLD_MS = (PUBLISH_START_S + DRAIN_S) * 1000 + DURATION_MS;

const WS_URL = `${WS_BASE}/api/events/subscribe?pattern=${encodeURIComponent(PATTERN)}`;

const latency = new Trend('publish_to_receive_ms');
const received = new Counter('events_received');
const published = new Counter('events_published');
const missing = new Counter('missing_events');
const tail = new Counter('undelivered_tail');
const duplicates = new Counter('duplicate_events');
const outOfOrder = new Counter('out_of_order_events');
const lagged = new Counter('lagged');
const wsErrors = new Counter('ws_errors');
const connected = new Counter('subscribers_connected');

export const options = {
  scenarios: {
    subscribers: {
      executor: 'per-vu-iterations',
      exec: 'subscriber',
      vus: SUBSCRIBERS,
      iterations: 1,
      maxDuration: `${Math.ceil(HOLD_MS / 1000) + 30}s`,
      gracefulStop: '10s',
    },
    publishers: {
      executor: 'constant-arrival-rate',
      exec: 'publisher',
      rate: RATE,
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: 50,
      maxVUs: 200,
      startTime: `${PUBLISH_START_S}s`,
      gracefulStop: '2s',
    },
  },
  thresholds: {
    missing_events: ['count==0'],
    lagged: ['count==0'],
    http_req_failed: ['rate<0.01'],
    publish_to_receive_ms: ['p(99)<20'],
    // Not a target: makes a run where subscribers could not connect fail instead of pass.
    subscribers_connected: [`count>=${SUBSCRIBERS}`],
  },
  summaryTrendStats: TREND_STATS,
};

export function setup() {
  healthOrAbort();
  return {};
}

export function publisher() {
  const seq = exec.scenario.iterationInTest;
  const body = JSON.stringify({ topic: TOPIC, data: { sent_at: Date.now(), seq: seq } });
  const res = http.post(`${BASE_URL}/api/events/publish`, body, {
    headers: jsonHeaders,
    timeout: '10s',
    tags: { name: 'publish' },
  });
  if (check(res, { 'publish 200': (r) => r.status === 200 })) {
    published.add(1);
  }
}

export function subscriber() {
  let minId = Infinity;
  let maxId = -Infinity;
  let distinct = 0;
  let count = 0; // added to events_received once at the end: one metric sample less per event
  // Ids inside [minId, maxId] not received yet: kept only when a gap opens, so a
  // subscriber that sees every id in order keeps this empty.
  const gaps = new Set();
  let finished = false;
  connected.add(0);

  const ws = new WebSocket(WS_URL, null, { headers: headers, tags: { name: 'subscribe' } });

  function finish() {
    if (finished) return;
    finished = true;
    let lost = 0;
    if (distinct > 0) {
      lost = maxId - minId + 1 - distinct;
      // Events stored after the last one this subscriber saw (none once drained).
      const res = http.get(
        `${BASE_URL}/api/events/history?topic=${encodeURIComponent(PATTERN)}&last=1`,
        { headers: headers, timeout: '10s', tags: { name: 'history' } },
      );
      if (res.status === 200) {
        const last = res.json();
        if (last.length > 0 && last[0].id > maxId) tail.add(last[0].id - maxId);
      }
    }
    received.add(count);
    missing.add(lost);
    tail.add(0);
    lagged.add(0);
    duplicates.add(0);
    outOfOrder.add(0);
  }

  ws.onopen = () => {
    connected.add(1);
    setTimeout(() => {
      finish();
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
    const id = ev.id;
    if (id > maxId) {
      if (distinct > 0) for (let g = maxId + 1; g < id; g++) gaps.add(g);
      if (distinct === 0) minId = id;
      maxId = id;
      distinct++;
    } else if (gaps.delete(id)) {
      outOfOrder.add(1);
      distinct++;
    } else if (id < minId) {
      outOfOrder.add(1);
      for (let g = id + 1; g < minId; g++) gaps.add(g);
      minId = id;
      distinct++;
    } else {
      duplicates.add(1);
    }
    count++;
    if (ev.data && typeof ev.data.sent_at === 'number') latency.add(now - ev.data.sent_at);
  };

  ws.onerror = (e) => {
    wsErrors.add(1);
    console.error(`subscriber ${exec.vu.idInTest}: ${e.error}`);
  };

  ws.onclose = () => {
    finish();
  };
}

export function handleSummary(data) {
  const m = data.metrics;
  const val = (name, key) => (m[name] ? m[name].values[key] : 0);
  let text = `\nkoor events load: ${SUBSCRIBERS} subscribers, ${RATE} events/s for ${DURATION}, ${BASE_URL}\n\n`;
  text += metricsText(data, options.summaryTrendStats);
  const line =
    `SUMMARY subscribers=${SUBSCRIBERS} rate=${RATE}/s duration=${DURATION}` +
    ` published=${val('events_published', 'count')}` +
    ` publish_rate=${fmt(val('events_published', 'count') / (DURATION_MS / 1000))}/s` +
    ` received=${val('events_received', 'count')}` +
    ` expected=${val('events_published', 'count') * val('subscribers_connected', 'count')}` +
    ` p50=${fmt(val('publish_to_receive_ms', 'med'))}ms` +
    ` p95=${fmt(val('publish_to_receive_ms', 'p(95)'))}ms` +
    ` p99=${fmt(val('publish_to_receive_ms', 'p(99)'))}ms` +
    ` max=${fmt(val('publish_to_receive_ms', 'max'))}ms` +
    ` missing=${val('missing_events', 'count')}` +
    ` tail=${val('undelivered_tail', 'count')}` +
    ` lagged=${val('lagged', 'count')}` +
    ` dropped_iterations=${val('dropped_iterations', 'count')}` +
    ` p99_target_met=${val('publish_to_receive_ms', 'count') > 0 && val('publish_to_receive_ms', 'p(99)') < 20}`;
  text += `\n${line}\n`;
  return summaryOutput(text, data);
}
