// Shared helpers of the k6 scripts in load/: target URL (loopback only), auth headers,
// environment parsing and the end-of-test text.
//
// Environment read here (every script documents it again):
//   BASE_URL     server under test (default http://127.0.0.1:9800); loopback addresses only
//   KOOR_TOKEN   bearer token, sent on every request and on the WebSocket handshake

import http from 'k6/http';
import exec from 'k6/execution';

export const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:9800').replace(/\/+$/, '');
export const TOKEN = __ENV.KOOR_TOKEN || '';

// Load is only ever sent to this machine.
const host = (BASE_URL.match(/^https?:\/\/(\[[^\]]+\]|[^/:]+)/) || [])[1] || '';
if (!(host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host))) {
  throw new Error(`BASE_URL must be a loopback address, got ${BASE_URL}`);
}

export const WS_BASE = BASE_URL.replace(/^http/, 'ws');
export const authHeaders = TOKEN ? { Authorization: `Bearer ${TOKEN}` } : {};
export const jsonHeaders = Object.assign({ 'Content-Type': 'application/json' }, authHeaders);

// Trend columns of every script's summary.
export const TREND_STATS = ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max', 'count'];

export function parseDurationMs(s, name = 'DURATION') {
  const re = /(\d+(?:\.\d+)?)(ms|h|m|s)/g;
  const unit = { ms: 1, s: 1000, m: 60000, h: 3600000 };
  let total = 0;
  let matched = '';
  let m;
  while ((m = re.exec(s)) !== null) {
    total += parseFloat(m[1]) * unit[m[2]];
    matched += m[0];
  }
  if (matched !== s || total <= 0) throw new Error(`${name} is not a k6 duration: ${s}`);
  return total;
}

// A whole number from the environment, at least `min`.
export function envInt(name, def, min = 1) {
  const raw = __ENV[name];
  if (raw === undefined || raw === '') return def;
  if (!/^\d+$/.test(raw) || parseInt(raw, 10) < min) {
    throw new Error(`${name} must be an integer >= ${min}, got ${raw}`);
  }
  return parseInt(raw, 10);
}

// A positive number (fractions allowed) from the environment.
export function envNum(name, def) {
  const raw = __ENV[name];
  if (raw === undefined || raw === '') return def;
  const v = Number(raw);
  if (!(v > 0) || !Number.isFinite(v)) throw new Error(`${name} must be a positive number, got ${raw}`);
  return v;
}

// A percentage (0 to 100, fractions allowed) from the environment.
export function envPct(name, def) {
  const raw = __ENV[name];
  if (raw === undefined || raw === '') return def;
  const v = Number(raw);
  if (!(v >= 0 && v <= 100)) throw new Error(`${name} must be a percentage from 0 to 100, got ${raw}`);
  return v;
}

// The most iterations a scenario of `rate`/s over `durationMs` may drop under `pct` percent.
export function allowedDrops(rate, durationMs, pct) {
  return Math.floor((rate * durationMs) / 1000 * (pct / 100));
}

// A short id that keeps the keys, names and topics of one run apart from any other run's
// (letters and digits only, so it is literal in topic patterns and URL paths).
export function newRunId() {
  return Date.now().toString(36) + Math.floor(Math.random() * 46656).toString(36).padStart(3, '0');
}

// A response header by name, whatever its case.
export function header(res, name) {
  const want = name.toLowerCase();
  for (const k in res.headers) {
    if (k.toLowerCase() === want) return res.headers[k];
  }
  return undefined;
}

// The parsed JSON body, or undefined when it is not JSON.
export function json(res) {
  try {
    return res.json();
  } catch (e) {
    return undefined;
  }
}

// Stops the test before any load when the server does not answer GET /health with 200.
export function healthOrAbort() {
  const res = http.get(`${BASE_URL}/health`, { timeout: '5s' });
  if (res.status !== 200) {
    exec.test.abort(`GET ${BASE_URL}/health answered ${res.status}`);
  }
}

export function fmt(v) {
  if (typeof v !== 'number') return String(v);
  if (Number.isInteger(v)) return String(v);
  return v.toFixed(Math.abs(v) >= 100 ? 1 : 3);
}

// A metric's value from handleSummary data, 0 when the metric has no samples.
export function val(data, name, key) {
  const m = data.metrics[name];
  return m && m.values[key] !== undefined ? m.values[key] : 0;
}

function metricLine(name, m, trendStats) {
  const v = m.values;
  let text;
  switch (m.type) {
    case 'trend':
      text = trendStats
        .filter((s) => s in v)
        .map((s) => `${s}=${fmt(v[s])}`)
        .join(' ');
      break;
    case 'counter':
      text = `${fmt(v.count)} (${fmt(v.rate)}/s)`;
      break;
    case 'rate':
      text = `${(v.rate * 100).toFixed(2)}% (${v.passes} of ${v.passes + v.fails})`;
      break;
    case 'gauge':
      text = `value=${fmt(v.value)} min=${fmt(v.min)} max=${fmt(v.max)}`;
      break;
    default:
      text = JSON.stringify(v);
  }
  let out = `  ${name.padEnd(28, '.')} ${text}\n`;
  for (const [expr, t] of Object.entries(m.thresholds || {})) {
    out += `      ${t.ok ? 'PASS' : 'FAIL'}  ${expr}\n`;
  }
  return out;
}

function checkLines(group, path) {
  let out = '';
  for (const c of group.checks || []) {
    out += `  check ${path}${c.name}: ${c.passes} passed, ${c.fails} failed\n`;
  }
  for (const g of group.groups || []) {
    out += checkLines(g, `${path}${g.name} / `);
  }
  return out;
}

// Every metric (trend stats, counters with rate, thresholds PASS/FAIL), then every check.
export function metricsText(data, trendStats = TREND_STATS) {
  const m = data.metrics;
  let text = '';
  for (const name of Object.keys(m).sort()) {
    text += metricLine(name, m[name], trendStats);
  }
  text += checkLines(data.root_group, '');
  return text;
}

// handleSummary's result: the text on stdout, and k6's data as JSON in SUMMARY_JSON if set.
export function summaryOutput(text, data) {
  const out = { stdout: text };
  if (__ENV.SUMMARY_JSON) out[__ENV.SUMMARY_JSON] = JSON.stringify(data, null, 2);
  return out;
}
