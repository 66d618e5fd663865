'use strict';
/*
 * koor dashboard: a dependency-free single-page app.
 *
 * Layout of this file:
 *   1. DOM and formatting helpers
 *   2. api(), errors and toasts
 *   3. session (auth token prompt) and the confirmation dialog
 *   4. the live event stream (WebSocket with resume)
 *   5. router and page lifecycle
 *   6. pages: overview, state, rules, webhooks, compliance, audit, tasks, locks, topology,
 *      storage, keys, cluster
 *   7. boot
 */

/* ------------------------------------------------------------------ */
/* 1. DOM and formatting helpers                                       */
/* ------------------------------------------------------------------ */

const $ = (sel, root = document) => root.querySelector(sel);
const enc = encodeURIComponent;
const DOM_PROPS = new Set(['value', 'checked', 'selected', 'open']);

/** Creates an element: h('a', {href: '/', class: 'x', onclick: fn}, 'text', child, [more]). */
function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value == null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'class') {
      el.className = value;
    } else if (key === 'style') {
      Object.assign(el.style, value); // CSSOM, allowed by the page's CSP (inline style attributes are not)
    } else if (DOM_PROPS.has(key)) {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  el.append(...children.flat(Infinity).filter((c) => c != null && c !== false)
    .map((c) => (c instanceof Node ? c : String(c))));
  return el;
}

const code = (text) => h('code', {}, text);
const nf = new Intl.NumberFormat('en-US');
const fmtInt = (n) => (n == null ? '—' : nf.format(n));
const fmtCost = (n) => (n == null ? '—' : `$${Number(n).toFixed(Number(n) !== 0 && Math.abs(n) < 1 ? 4 : 2)}`);
const fmtPercent = (n) => `${Number(n || 0).toFixed(1)} %`;
const plural = (n, word) => `${fmtInt(n)} ${word}${n === 1 ? '' : 's'}`;
const shortHash = (hash) => (hash ? hash.slice(0, 10) : '');

/** Parses an RFC 3339 timestamp (any fraction precision) to epoch milliseconds. */
function parseTime(iso) {
  if (!iso) return NaN;
  return Date.parse(String(iso).replace(/(\.\d{3})\d+/, '$1'));
}

/** "12 s ago", "5 min ago", "in 3 h"; the exact time is in the element's title. */
function relTime(iso, now = Date.now()) {
  const t = parseTime(iso);
  if (Number.isNaN(t)) return iso || '—';
  const diff = Math.round((now - t) / 1000);
  const s = Math.abs(diff);
  if (s < 2) return 'just now';
  let text;
  if (s < 60) text = `${s} s`;
  else if (s < 3600) text = `${Math.floor(s / 60)} min`;
  else if (s < 86400) text = `${Math.floor(s / 3600)} h`;
  else text = `${Math.floor(s / 86400)} d`;
  return diff < 0 ? `in ${text}` : `${text} ago`;
}

function timeAgo(iso) {
  if (!iso) return h('span', { class: 'muted' }, 'never');
  return h('time', { datetime: iso, title: iso, 'data-rel': '' }, relTime(iso));
}

function refreshRelativeTimes() {
  const now = Date.now();
  for (const el of document.querySelectorAll('time[data-rel]')) {
    const text = relTime(el.getAttribute('datetime'), now);
    if (el.textContent !== text) el.textContent = text;
  }
}

/** Pretty-prints JSON text; other text is returned unchanged. */
function pretty(text) {
  try {
    return { text: JSON.stringify(JSON.parse(text), null, 2), json: true };
  } catch {
    return { text, json: false };
  }
}

function compact(value, max = 160) {
  const text = value === undefined ? '' : JSON.stringify(value);
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/* Small building blocks shared by the pages. */

function pageHead(title, subtitle, ...actions) {
  return h('div', { class: 'page-head' },
    h('div', {}, h('h1', {}, title), subtitle && h('p', { class: 'muted' }, subtitle)),
    actions.length > 0 && h('div', { class: 'actions' }, actions));
}

function card(title, opts, ...body) {
  const { testid, actions, wide } = opts || {};
  return h('section', { class: `card${wide ? ' wide' : ''}`, 'data-testid': testid },
    h('header', { class: 'card-head' }, h('h2', {}, title),
      actions && h('div', { class: 'actions' }, actions)),
    body);
}

function empty(...content) {
  return h('div', { class: 'empty', 'data-testid': 'empty' }, ...content);
}

function badge(text, kind) {
  return h('span', { class: `badge ${kind || text}` }, text);
}

function table(head, rows, props) {
  return h('div', { class: 'table-wrap' },
    h('table', props, h('thead', {}, h('tr', {}, head.map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, rows)));
}

function button(label, onclick, props) {
  return h('button', { type: 'button', class: 'btn', ...props, onclick }, label);
}

function field(label, input, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  input.id = id;
  return h('div', { class: 'field' }, h('label', { for: id }, label), input,
    hint && h('small', { class: 'muted' }, hint));
}

function select(name, options, value, props) {
  return h('select', { name, ...props },
    options.map((o) => {
      const [val, text] = Array.isArray(o) ? o : [o, o];
      return h('option', { value: val, selected: String(val) === String(value) }, text);
    }));
}

/* ------------------------------------------------------------------ */
/* 2. api(), errors and toasts                                         */
/* ------------------------------------------------------------------ */

class ApiError extends Error {
  constructor(message, status, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

/**
 * The one way this app talks to koor. `path` is absolute on this origin
 * ("/api/state", "/session"). JSON bodies are encoded here; errors become
 * ApiError with the server's message. A 401 shows the token prompt unless
 * `authCheck` is false. `raw: true` returns {text, headers} instead of JSON.
 */
async function api(path, { method = 'GET', body, raw = false, authCheck = true } = {}) {
  const init = { method, headers: {}, credentials: 'same-origin' };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new ApiError(`cannot reach the koor server (${e.message})`, 0);
  }
  const text = await res.text();
  if (!res.ok) {
    let data = null;
    try { data = JSON.parse(text); } catch { /* not JSON: use the text */ }
    const message = (data && data.error) || text || res.statusText || 'request failed';
    const err = new ApiError(message, res.status, data);
    if (res.status === 401 && authCheck) {
      err.auth = true;
      session.lost();
    }
    throw err;
  }
  if (raw) return { text, headers: res.headers };
  return text ? JSON.parse(text) : null;
}

function errorText(err) {
  if (err instanceof ApiError) return err.status ? `${err.message} (HTTP ${err.status})` : err.message;
  return (err && err.message) || String(err);
}

function toast(message, kind = 'ok') {
  const box = $('#toasts');
  const el = h('div', {
    class: `toast ${kind}`,
    role: kind === 'error' ? 'alert' : 'status',
    'data-testid': kind === 'error' ? 'error-toast' : 'toast',
  }, h('span', {}, message),
  h('button', { type: 'button', class: 'toast-close', 'aria-label': 'Dismiss', onclick: () => el.remove() }, '×'));
  box.append(el);
  while (box.children.length > 5) box.firstElementChild.remove();
  if (kind !== 'error') setTimeout(() => el.remove(), 4000);
}

/** Shows an error to the user (auth errors are shown by the token prompt instead). */
function showError(err) {
  if (err && err.auth) return;
  toast(errorText(err), 'error');
}

function errorBox(err) {
  return h('div', { class: 'error-box', role: 'alert', 'data-testid': 'error' },
    h('strong', {}, 'Could not load this: '), errorText(err));
}

/** Runs an action from a button: disables it meanwhile, shows success or the error. */
async function act(btn, fn, success) {
  if (btn) btn.disabled = true;
  try {
    const result = await fn();
    if (success) toast(typeof success === 'function' ? success(result) : success, 'ok');
    return result;
  } catch (err) {
    showError(err);
    return undefined;
  } finally {
    if (btn) btn.disabled = false;
  }
}

/** Renders what `build` returns into `el`, or an inline error; ignores results for a closed page. */
async function fill(ctx, el, build) {
  try {
    const node = await build();
    if (ctx.alive) el.replaceChildren(...[node].flat().filter(Boolean));
  } catch (err) {
    if (ctx.alive && !err.auth) el.replaceChildren(errorBox(err));
  }
}

/**
 * Returns a loader for polled or event-driven content: fetches, and re-renders `el` only
 * when the data changed, so a refresh does not take focus or scroll away from the user.
 */
function refresher(ctx, el, fetchData, render) {
  let shown = null;
  let started = 0;
  let applied = 0;
  return async () => {
    const mine = ++started;
    try {
      const data = await fetchData();
      // A slower, older request must not overwrite what a newer one already showed.
      if (!ctx.alive || mine < applied) return;
      applied = mine;
      const json = JSON.stringify(data);
      if (json === shown) return;
      shown = json;
      el.replaceChildren(...[render(data)].flat().filter(Boolean));
    } catch (err) {
      if (!ctx.alive || mine < applied) return;
      applied = mine;
      shown = null;
      if (!err.auth) el.replaceChildren(errorBox(err));
    }
  };
}

/* ------------------------------------------------------------------ */
/* 3. Session (token prompt) and confirmation dialog                   */
/* ------------------------------------------------------------------ */

const session = {
  required: false,
  prompting: false,

  async check() {
    try {
      return await api('/session', { authCheck: false });
    } catch (err) {
      showError(err);
      return { auth_required: false, authenticated: true };
    }
  },

  /** An API call answered 401: the session is gone. */
  lost() {
    if (!this.prompting) this.prompt('Your session has ended. Enter the auth token again.');
  },

  prompt(message) {
    this.prompting = true;
    stream.stop();
    closePage();
    document.body.classList.add('signed-out');
    $('#sign-out').hidden = true;
    const input = h('input', {
      type: 'password', name: 'token', required: true, autocomplete: 'current-password',
      'data-testid': 'token-input', spellcheck: 'false',
    });
    const error = h('p', { class: 'form-error', role: 'alert', 'data-testid': 'login-error' });
    const submit = h('button', { type: 'submit', class: 'btn primary', 'data-testid': 'token-submit' }, 'Sign in');
    const form = h('form', {
      class: 'card login', 'data-testid': 'login-form',
      onsubmit: async (e) => {
        e.preventDefault();
        error.textContent = '';
        submit.disabled = true;
        try {
          await api('/session', { method: 'POST', body: { token: input.value }, authCheck: false });
          input.value = '';
          await startApp();
        } catch (err) {
          error.textContent = err.status === 401 ? `Wrong token: ${err.message}` : errorText(err);
          input.select();
        } finally {
          submit.disabled = false;
        }
      },
    },
    h('h1', {}, 'Sign in to koor'),
    h('p', { class: 'muted' }, message || ['This server requires its auth token (the value of ', code('--auth-token'),
      ' or ', code('KOOR_AUTH_TOKEN'), '). The server keeps you signed in with a session cookie; this page never stores the token.']),
    field('Auth token', input),
    error,
    h('div', { class: 'actions' }, submit));
    $('#main').replaceChildren(form);
    input.focus();
  },

  async signOut() {
    await act(null, () => api('/session', { method: 'DELETE', authCheck: false }));
    this.prompt('Signed out.');
  },
};

/** In-page confirmation (a <dialog>, so it is keyboard- and test-friendly). Resolves true on confirm. */
function confirmAction({ title, message, ok = 'Confirm', danger = false }) {
  const dialog = $('#confirm');
  $('#confirm-title').textContent = title;
  $('#confirm-message').textContent = message;
  const okBtn = $('#confirm-ok');
  okBtn.textContent = ok;
  okBtn.classList.toggle('danger', danger);
  dialog.returnValue = '';
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
    dialog.showModal();
    okBtn.focus();
  });
}

/* ------------------------------------------------------------------ */
/* 4. Live event stream                                                */
/* ------------------------------------------------------------------ */

const stream = {
  ws: null,
  lastId: null,
  delay: 500,
  timer: null,
  running: false,

  async start() {
    this.running = true;
    if (this.lastId === null) await this.prime();
    this.connect();
  },

  /** Starts from the newest stored event, so a connect replays nothing old. */
  async prime() {
    const newest = await api('/api/events/history?last=1');
    this.lastId = newest.length ? newest[0].id : 0;
  },

  stop() {
    this.running = false;
    clearTimeout(this.timer);
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.close();
      this.ws = null;
    }
    this.status('offline');
  },

  status(state, text) {
    const el = $('#live-status');
    el.dataset.state = state;
    el.textContent = text || state;
  },

  connect() {
    if (!this.running) return;
    const proto = location.protocol === 'https:' ? 'wss' : 'ws';
    const url = `${proto}://${location.host}/api/events/subscribe?pattern=*&after=${this.lastId || 0}`;
    const ws = new WebSocket(url);
    let opened = false;
    this.ws = ws;
    this.status('connecting', 'connecting…');
    ws.onopen = () => {
      opened = true;
      this.delay = 500;
      this.status('live');
    };
    ws.onmessage = (msg) => this.receive(msg.data);
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.reconnect(opened);
    };
  },

  async reconnect(wasOpen) {
    if (!this.running) return;
    this.status('reconnecting', 'reconnecting…');
    if (!wasOpen && session.required) {
      const s = await session.check();
      if (!s.authenticated) {
        session.lost();
        return;
      }
    }
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), this.delay + Math.random() * 250);
    this.delay = Math.min(this.delay * 2, 10000);
  },

  async receive(data) {
    let ev;
    try {
      ev = JSON.parse(data);
    } catch {
      return;
    }
    if (ev.code === 410) {
      // The resume cursor is older than retention: start again from the newest event.
      toast('Some events were pruned while the dashboard was disconnected; reloaded.', 'warn');
      this.lastId = null;
      await this.prime().catch(showError);
      dispatch({ topic: 'koor.lagged', id: 0, data: {} });
      return;
    }
    if (ev.topic === 'koor.lagged') {
      // The server dropped us; it closes the socket and we resume after the last id it sent.
      if (ev.data && Number.isInteger(ev.data.resume_after)) this.lastId = ev.data.resume_after;
      dispatch(ev);
      return;
    }
    if (typeof ev.id === 'number' && ev.id > (this.lastId || 0)) this.lastId = ev.id;
    dispatch(ev);
  },
};

function dispatch(ev) {
  if (!page) return;
  for (const handler of page.handlers) {
    try {
      handler(ev);
    } catch (err) {
      showError(err);
    }
  }
}

/* ------------------------------------------------------------------ */
/* 5. Router and page lifecycle                                        */
/* ------------------------------------------------------------------ */

const ROUTES = {
  '/': { title: 'Overview', view: overviewPage },
  '/state': { title: 'State', view: statePage },
  '/rules': { title: 'Specs & rules', view: rulesPage },
  '/webhooks': { title: 'Webhooks', view: webhooksPage },
  '/compliance': { title: 'Compliance', view: compliancePage },
  '/audit': { title: 'Audit', view: auditPage },
  '/tasks': { title: 'Tasks', view: tasksPage },
  '/locks': { title: 'Locks', view: locksPage },
  '/topology': { title: 'Topology', view: topologyPage },
  '/storage': { title: 'Storage', view: storagePage },
  '/cluster': { title: 'Cluster', view: clusterPage },
  '/keys': { title: 'Keys', view: keysPage },
};

let page = null;

function closePage() {
  if (!page) return;
  page.alive = false;
  page.timers.forEach(clearInterval);
  page = null;
}

function createPage(main, params) {
  const ctx = {
    main,
    params,
    alive: true,
    timers: [],
    handlers: [],
    every(ms, fn) { ctx.timers.push(setInterval(() => ctx.alive && fn(), ms)); },
    onEvent(fn) { ctx.handlers.push(fn); },
  };
  return ctx;
}

const currentPath = () => location.pathname.replace(/\/+$/, '') || '/';

function navigate(url, { replace = false } = {}) {
  const before = currentPath();
  history[replace ? 'replaceState' : 'pushState'](null, '', url);
  render(before !== currentPath());
}

function render(pathChanged = false) {
  closePage();
  if (session.prompting) return;
  const path = currentPath();
  const route = ROUTES[path];
  const main = $('#main');
  main.replaceChildren();
  for (const a of document.querySelectorAll('.nav a')) {
    if (a.getAttribute('href') === path) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.title = `${route ? route.title : 'Not found'} · koor`;
  page = createPage(main, new URLSearchParams(location.search));
  if (pathChanged) {
    window.scrollTo(0, 0);
    main.focus({ preventScroll: true });
  }
  if (!route) {
    main.append(pageHead('Page not found'), empty('There is no page at ', code(path), '. ', h('a', { href: '/' }, 'Go to the overview'), '.'));
    return;
  }
  try {
    route.view(page);
  } catch (err) {
    showError(err);
  }
}

/** Same-origin links to dashboard pages are handled here; modified clicks keep browser behaviour. */
function onLinkClick(e) {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = e.target.closest('a[href]');
  if (!a || a.target || a.hasAttribute('download')) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin) return;
  const path = url.pathname.replace(/\/+$/, '') || '/';
  if (!ROUTES[path]) return;
  e.preventDefault();
  navigate(url.pathname + url.search + url.hash);
}

/* ------------------------------------------------------------------ */
/* 6a. Overview                                                        */
/* ------------------------------------------------------------------ */

// agent.registered, agent.active, agent.deregistered (source instances) and agent.stale
// (source liveness-monitor) cover every change of the agent list.
const INSTANCE_TOPIC = /^agent\./;
const LLM_TOPIC = /^(llm|budget)\./;
// What has no events: last_seen of heartbeats, uptime, token tax; also a safety net.
const SLOW_REFRESH_MS = 5000;

function overviewPage(ctx) {
  const counts = h('div', { class: 'tiles', 'data-testid': 'instance-counts' });
  const instances = h('div', { 'data-testid': 'instances' });
  const events = h('div', { 'data-testid': 'recent-events' });
  const tax = h('div', { 'data-testid': 'token-tax' });
  const server = h('div', { 'data-testid': 'server' });
  const llm = h('div', { 'data-testid': 'llm-summary' });
  const budgets = h('div', { 'data-testid': 'budgets' });
  let groupBy = 'project';

  const resetBtn = button('Reset', () => act(resetBtn,
    () => api('/api/metrics/reset', { method: 'POST' }).then(loadMetrics),
    'Token tax counters reset'), { class: 'btn small', 'data-testid': 'tax-reset', 'data-needs': 'admin' });
  const groupSelect = select('group_by', [['project', 'by project'], ['model', 'by model'], ['instance', 'by agent'], ['session_tag', 'by session']],
    groupBy, {
      'aria-label': 'Group LLM spend', class: 'small',
      onchange: (e) => { groupBy = e.target.value; loadLlm(); },
    });

  ctx.main.append(
    pageHead('Overview', 'Agents, events and spend on this koor server.'),
    counts,
    h('div', { class: 'grid overview' },
      card('Agents', { testid: 'instances-card' }, instances),
      card('Recent events', { testid: 'events-card' }, events)),
    h('div', { class: 'grid three' },
      card('Token tax', { testid: 'tax-card', actions: [resetBtn] }, tax),
      card('LLM spend', { testid: 'llm-card', actions: [groupSelect] }, llm),
      card('Server', { testid: 'server-card' }, server)),
    card('LLM budgets', { testid: 'budgets-card' }, budgets, h('div', { 'data-needs': 'write' }, budgetForm(() => loadBudgets()))),
  );

  const loadInstances = refresher(ctx, instances, () => api('/api/instances'), (list) => {
    counts.replaceChildren(...instanceTiles(list));
    return instanceTable(list);
  });

  const recent = new Map();
  const fresh = new Set();
  const drawEvents = () => {
    const list = [...recent.values()].sort((a, b) => b.id - a.id).slice(0, 25);
    recent.clear();
    list.forEach((ev) => recent.set(ev.id, ev));
    events.replaceChildren(list.length
      ? h('ol', { class: 'events' }, list.map((ev) => eventItem(ev, fresh.has(ev.id))))
      : empty('No events yet. Publish one with ', code("koor events publish build.done --data '{}'"),
        '; it appears here live.'));
    fresh.clear();
  };
  const loadEvents = async () => {
    try {
      for (const ev of await api('/api/events/history?last=25')) recent.set(ev.id, ev);
      if (ctx.alive) drawEvents();
    } catch (err) {
      if (ctx.alive && !err.auth) events.replaceChildren(errorBox(err));
    }
  };

  const loadMetrics = () => fill(ctx, tax, async () => {
    const m = await api('/api/metrics');
    server.replaceChildren(serverInfo(m));
    return taxInfo(m.token_tax || {});
  });
  const loadLlm = refresher(ctx, llm, () => api(`/api/llm/usage/summary?group_by=${enc(groupBy)}`), llmSummary);
  const loadBudgets = refresher(ctx, budgets, () => api('/api/llm/budgets'), (list) => budgetTable(list, loadBudgets));

  const refreshInstances = debounce(loadInstances, 100);
  const refreshLlm = debounce(() => { loadLlm(); loadBudgets(); }, 200);
  ctx.onEvent((ev) => {
    if (ev.topic === 'koor.lagged') {
      loadEvents();
      loadInstances();
      return;
    }
    recent.set(ev.id, ev);
    fresh.add(ev.id);
    drawEvents();
    if (INSTANCE_TOPIC.test(ev.topic)) refreshInstances();
    if (LLM_TOPIC.test(ev.topic)) refreshLlm();
  });

  loadInstances();
  loadEvents();
  loadMetrics();
  loadLlm();
  loadBudgets();
  // Agent changes arrive as events; heartbeats (last_seen), uptime and the token tax do not.
  ctx.every(SLOW_REFRESH_MS, () => { loadInstances(); loadMetrics(); loadLlm(); loadBudgets(); });
}

function instanceTiles(list) {
  const by = { active: 0, pending: 0, stale: 0 };
  list.forEach((i) => { by[i.status] = (by[i.status] || 0) + 1; });
  const tile = (label, value, kind) => h('div', { class: `tile ${kind || ''}`, 'data-testid': `count-${kind || 'total'}` },
    h('span', { class: 'tile-value' }, fmtInt(value)), h('span', { class: 'tile-label' }, label));
  return [tile('agents', list.length), tile('active', by.active, 'active'),
    tile('pending', by.pending, 'pending'), tile('stale', by.stale, 'stale')];
}

function instanceTable(list) {
  if (!list.length) {
    return empty(h('strong', {}, 'No agents yet'), ' — register one with ', code('koor register NAME'),
      ' (or POST /api/instances/register); it appears here as soon as it does.');
  }
  return table(['Name', 'Workspace', 'Stack', 'Status', 'Last seen'], list.map((i) => h('tr', { 'data-testid': 'instance-row' },
    h('td', {}, h('strong', {}, i.name), i.intent && h('div', { class: 'muted small' }, i.intent),
      h('div', { class: 'muted mono small', title: i.id }, i.id.slice(0, 8))),
    h('td', {}, i.workspace || h('span', { class: 'muted' }, '—')),
    h('td', {}, i.stack || h('span', { class: 'muted' }, '—')),
    h('td', {}, badge(i.status)),
    h('td', {}, timeAgo(i.last_seen)))), { class: 'dense' });
}

function eventItem(ev, isNew) {
  const data = ev.data == null ? '' : compact(ev.data);
  return h('li', { class: `event${isNew ? ' new' : ''}`, 'data-testid': 'event-item' },
    h('div', { class: 'event-line' },
      h('span', { class: 'event-id muted mono' }, `#${ev.id}`),
      h('span', { class: 'topic mono' }, ev.topic),
      ev.source && badge(ev.source, 'source'),
      h('span', { class: 'spacer' }),
      timeAgo(ev.created_at)),
    data && h('div', { class: 'event-data mono', title: JSON.stringify(ev.data, null, 2) }, data));
}

function kv(pairs) {
  return h('dl', { class: 'kv' }, pairs.map(([k, v, testid]) => [h('dt', {}, k), h('dd', { 'data-testid': testid }, v)]));
}

function taxInfo(t) {
  return [
    h('div', { class: 'big' }, fmtInt(t.rest_tokens_saved), h('span', { class: 'unit' }, ' tokens saved')),
    kv([
      ['REST calls', fmtInt(t.rest_calls), 'tax-rest'],
      ['MCP calls', fmtInt(t.mcp_calls), 'tax-mcp'],
      ['MCP tokens (est.)', fmtInt(t.mcp_estimated_tokens)],
      ['Calls via REST', fmtPercent(t.savings_percent), 'tax-percent'],
    ]),
    h('p', { class: 'muted small' }, 'Each REST call instead of an MCP tool call saves about 300 tokens of context. Counters live in memory since start or the last reset.'),
  ];
}

function serverInfo(m) {
  return kv([
    ['Uptime', m.uptime, 'uptime'],
    ['State keys', fmtInt(m.state_keys)],
    ['Last event', `#${m.last_event_id}`],
    ['API', code(m.api_bind || '—')],
    ['Dashboard', code(m.dashboard_bind || '—')],
  ]);
}

function llmSummary(s) {
  const t = s.total || {};
  const groups = Object.entries(s.groups || {}).sort((a, b) => b[1].total_cost_usd - a[1].total_cost_usd);
  return [
    h('div', { class: 'big' }, fmtCost(t.total_cost_usd), h('span', { class: 'unit' }, ` in ${plural(t.request_count || 0, 'request')}`)),
    h('p', { class: 'muted small' }, `${fmtInt(t.total_tokens_in)} tokens in, ${fmtInt(t.total_tokens_out)} out`),
    groups.length
      ? table([s.group_by, 'Cost', 'Tokens in/out', 'Requests'], groups.map(([name, g]) => h('tr', {},
        h('td', {}, name || h('span', { class: 'muted' }, '(none)')),
        h('td', { class: 'num' }, fmtCost(g.total_cost_usd)),
        h('td', { class: 'num' }, `${fmtInt(g.total_tokens_in)} / ${fmtInt(g.total_tokens_out)}`),
        h('td', { class: 'num' }, fmtInt(g.request_count)))), { class: 'dense' })
      : empty('No LLM usage recorded yet. Agents report it with ', code('koor llm record --provider P --model M …'), '.'),
  ];
}

function budgetTable(list, reload) {
  if (!list.length) {
    return empty('No budgets. Set one below, e.g. scope ', code('project:web'), ' with a daily token or cost limit; koor publishes ',
      code('budget.warning'), ' at 80 % and ', code('budget.exceeded'), ' at 100 %.');
  }
  const limit = (spent, max, fmt) => (max == null ? h('span', { class: 'muted' }, `${fmt(spent)} (no limit)`) : `${fmt(spent)} / ${fmt(max)}`);
  return table(['Scope', 'Period', 'Used', 'Tokens', 'Cost', 'Status', ''], list.map((b) => {
    const del = button('Delete', async () => {
      const ok = await confirmAction({ title: `Delete budget ${b.scope}?`, message: 'Spending in this scope will no longer be limited or announced.', ok: 'Delete', danger: true });
      if (ok) act(del, () => api(`/api/llm/budgets/${enc(b.scope)}`, { method: 'DELETE' }).then(reload), `Budget ${b.scope} deleted`);
    }, { class: 'btn small ghost', 'data-needs': 'write' });
    return h('tr', { 'data-testid': 'budget-row' },
      h('td', {}, code(b.scope)),
      h('td', {}, b.period, h('div', { class: 'muted small' }, 'started ', timeAgo(b.period_start))),
      h('td', {}, h('div', { class: `bar ${b.status}`, role: 'meter', 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': Math.round(b.used_percent), 'aria-label': `${b.scope} used` },
        h('span', { style: { width: `${Math.min(100, b.used_percent)}%` } })), h('span', { class: 'small' }, fmtPercent(b.used_percent))),
      h('td', { class: 'num' }, limit(b.spent_tokens, b.max_tokens, fmtInt)),
      h('td', { class: 'num' }, limit(b.spent_cost_usd, b.max_cost_usd, fmtCost)),
      h('td', {}, badge(b.status)),
      h('td', { class: 'row-actions' }, del));
  }), { class: 'dense' });
}

function budgetForm(reload) {
  const scope = h('input', { name: 'scope', required: true, placeholder: 'project:web or instance:<id>', 'data-testid': 'budget-scope' });
  const period = select('period', ['day', 'month'], 'day');
  const tokens = h('input', { name: 'max_tokens', type: 'number', min: 1, step: 1, placeholder: 'e.g. 100000' });
  const cost = h('input', { name: 'max_cost_usd', type: 'number', min: 0.0001, step: 'any', placeholder: 'e.g. 5' });
  const save = h('button', { type: 'submit', class: 'btn' }, 'Save budget');
  const form = h('form', {
    class: 'inline-form',
    onsubmit: (e) => {
      e.preventDefault();
      const body = { period: period.value };
      if (tokens.value) body.max_tokens = Number(tokens.value);
      if (cost.value) body.max_cost_usd = Number(cost.value);
      act(save, async () => {
        await api(`/api/llm/budgets/${enc(scope.value.trim())}`, { method: 'PUT', body });
        form.reset();
        reload();
      }, 'Budget saved');
    },
  }, field('Scope', scope), field('Period', period), field('Max tokens', tokens), field('Max cost (USD)', cost), save);
  return form;
}

/* ------------------------------------------------------------------ */
/* 6b. State browser                                                   */
/* ------------------------------------------------------------------ */

const stateUrl = (key, query = '') => `/api/state/${key.split('/').map(enc).join('/')}${query}`;
const statePageUrl = (key, extra = {}) => `/state?${new URLSearchParams({ key, ...extra })}`;
let stateFilter = '';

function statePage(ctx) {
  const key = ctx.params.get('key');
  const listEl = h('div', { class: 'key-list', 'data-testid': 'state-keys' }, h('p', { class: 'muted' }, 'Loading…'));
  const detail = h('div', { class: 'detail', 'data-testid': 'state-detail' });
  let keys = [];

  const drawList = () => {
    const f = stateFilter.toLowerCase();
    const shown = keys.filter((k) => k.key.toLowerCase().includes(f));
    listEl.replaceChildren(keys.length === 0
      ? empty('No state keys yet. Write one with ', code("koor state set KEY --data '{\"a\":1}'"), '.')
      : shown.length === 0 ? h('p', { class: 'muted' }, 'No key matches the filter.')
        : h('ul', {}, shown.map((k) => h('li', {},
          h('a', { href: statePageUrl(k.key), 'data-testid': 'state-key', 'aria-current': k.key === key ? 'true' : null },
            h('span', { class: 'mono key' }, k.key),
            h('span', { class: 'muted small' }, `v${k.version} · `, timeAgo(k.updated_at)))))));
  };
  const loadList = async () => {
    try {
      keys = await api('/api/state');
      if (ctx.alive) drawList();
    } catch (err) {
      if (ctx.alive && !err.auth) listEl.replaceChildren(errorBox(err));
    }
  };
  const filter = h('input', {
    type: 'search', value: stateFilter, placeholder: 'Filter keys', 'aria-label': 'Filter keys',
    oninput: (e) => { stateFilter = e.target.value; drawList(); },
  });

  ctx.main.append(
    pageHead('State', 'The versioned key/value store agents share. Every write keeps a version.'),
    h('div', { class: 'split' }, h('aside', { class: 'card keys' }, filter, listEl), h('section', { class: 'card' }, detail)));

  loadList();
  if (key) {
    detail.append(h('p', { class: 'muted' }, 'Loading…'));
    loadStateDetail(ctx, detail, key);
  } else {
    detail.append(empty('Select a key on the left to see its current value, its history and diffs between versions.'));
  }

  const refreshList = debounce(loadList, 150);
  ctx.onEvent((ev) => {
    if (!ev.topic.startsWith('state.') && ev.topic !== 'koor.lagged') return;
    refreshList();
    if (key && ev.data && ev.data.key === key) announceChange(ctx, detail, key, ev);
  });
}

/** Another writer changed the key being viewed: offer to reload rather than move the page under the user. */
function announceChange(ctx, detail, key, ev) {
  const shown = Number(detail.dataset.version || 0);
  if (ev.topic === 'state.updated' && ev.data.version <= shown) return;
  const text = ev.topic === 'state.deleted' ? 'This key was deleted.' : `A newer version (${ev.data.version}) was written.`;
  const note = h('div', { class: 'notice', role: 'status', 'data-testid': 'state-changed' }, text, ' ',
    button('Reload', () => loadStateDetail(ctx, detail, key), { class: 'btn small' }));
  $('.notice', detail)?.remove();
  detail.prepend(note);
}

async function loadStateDetail(ctx, el, key) {
  const view = ctx.params.get('view') === 'history' ? 'history' : 'value';
  try {
    const [current, hist] = await Promise.all([
      api(stateUrl(key), { raw: true }),
      api(stateUrl(key, '?history=1&limit=200')),
    ]);
    if (!ctx.alive) return;
    const versions = hist.versions || [];
    const version = Number(current.headers.get('X-Koor-Version')) || (versions[0] && versions[0].version);
    const contentType = current.headers.get('Content-Type') || '';
    const latest = versions.find((v) => v.version === version) || versions[0] || {};
    el.dataset.version = version;
    const tab = (name, label, href) => h('a', { href, class: 'tab', 'aria-current': view === name ? 'page' : null, 'data-testid': `tab-${name}` }, label);
    el.replaceChildren(
      h('div', { class: 'detail-head' },
        h('h2', { class: 'mono key', 'data-testid': 'state-key-name' }, key),
        h('p', { class: 'muted' },
          h('span', { 'data-testid': 'state-version' }, `version ${version}`), ' · ', contentType,
          ' · updated ', timeAgo(latest.updated_at), ' · ', h('span', { class: 'mono', title: latest.hash }, shortHash(latest.hash)))),
      h('nav', { class: 'tabs', 'aria-label': 'Key views' },
        tab('value', 'Current value', statePageUrl(key)),
        tab('history', `History (${versions.length})`, statePageUrl(key, { view: 'history' }))),
      view === 'value' ? valueView(current.text) : historyView(ctx, key, versions, version));
  } catch (err) {
    if (!ctx.alive || err.auth) return;
    el.replaceChildren(err.status === 404
      ? h('div', { class: 'not-found', role: 'alert', 'data-testid': 'not-found' },
        h('h2', {}, 'Key not found'),
        h('p', {}, 'There is no state key ', code(key), '. It may have been deleted, or it was never written.'),
        h('p', { class: 'muted' }, 'Pick a key from the list, or create it with ', code(`koor state set ${key} --data '{}'`), '.'))
      : errorBox(err));
  }
}

function valueView(text) {
  const p = pretty(text);
  return h('div', {},
    !p.json && h('p', { class: 'muted small' }, 'Not JSON: shown as stored.'),
    h('pre', { class: 'code value', 'data-testid': 'state-value', tabindex: 0 }, p.text));
}

function historyView(ctx, key, versions, current) {
  if (!versions.length) return empty('No history for this key.');
  const numbers = versions.map((v) => v.version);
  const a = Number(ctx.params.get('a')) || numbers[Math.min(1, numbers.length - 1)];
  const b = Number(ctx.params.get('b')) || numbers[0];
  const output = h('div', { class: 'diff-output', 'data-testid': 'diff-output' });
  const options = numbers.map((n) => [n, `version ${n}${n === current ? ' (current)' : ''}`]);
  const selA = select('a', options, a, { 'data-testid': 'diff-a' });
  const selB = select('b', options, b, { 'data-testid': 'diff-b' });
  const form = h('form', {
    class: 'inline-form',
    onsubmit: (e) => {
      e.preventDefault();
      navigate(statePageUrl(key, { view: 'history', a: selA.value, b: selB.value }));
    },
  }, field('Old', selA), field('New', selB),
  h('button', { type: 'submit', class: 'btn primary', 'data-testid': 'diff-button' }, 'Compare'));

  const rows = versions.map((v) => {
    const show = button('View', () => act(show, async () => {
      const res = await api(stateUrl(key, `?version=${v.version}`), { raw: true });
      output.replaceChildren(h('h3', {}, `Version ${v.version}`),
        h('pre', { class: 'code value', 'data-testid': 'version-value' }, pretty(res.text).text));
    }), { class: 'btn small ghost' });
    const rollback = v.version !== current && button(`Roll back to v${v.version}`,
      () => rollbackTo(key, v.version, current), { class: 'btn small', 'data-testid': `rollback-${v.version}`, 'data-needs': 'write' });
    return h('tr', { 'data-testid': 'version-row' },
      h('td', { class: 'num' }, v.version, v.version === current && h('span', { class: 'muted small' }, ' current')),
      h('td', {}, timeAgo(v.updated_at)),
      h('td', { class: 'mono small', title: v.hash }, shortHash(v.hash)),
      h('td', { class: 'small' }, v.content_type),
      h('td', { class: 'row-actions' }, show, rollback));
  });

  if (ctx.params.has('a') || ctx.params.has('b')) showDiff(ctx, output, key, a, b);
  return h('div', {}, form, output, table(['Version', 'Written', 'Hash', 'Content type', ''], rows, { class: 'dense', 'data-testid': 'history' }));
}

async function rollbackTo(key, version, current) {
  const ok = await confirmAction({
    title: `Roll back ${key} to version ${version}?`,
    message: `The value of version ${version} is written again as a new version (${current + 1}). Earlier versions stay in the history.`,
    ok: 'Roll back',
  });
  if (!ok) return;
  const res = await act(null, () => api(stateUrl(key, `?rollback=${version}`), { method: 'POST' }),
    (r) => `Rolled back to version ${version}: now at version ${r.version}`);
  if (res) navigate(statePageUrl(key));
}

async function showDiff(ctx, el, key, a, b) {
  el.replaceChildren(h('p', { class: 'muted' }, 'Comparing…'));
  try {
    const [va, vb] = await Promise.all([a, b].map((n) => api(stateUrl(key, `?version=${n}`), { raw: true })));
    if (!ctx.alive) return;
    el.replaceChildren(diffTable(pretty(va.text).text, pretty(vb.text).text, a, b));
  } catch (err) {
    if (ctx.alive && !err.auth) el.replaceChildren(errorBox(err));
  }
}

/** Longest-common-subsequence line diff: a list of {op: 'eq'|'del'|'add', a, b} (line indexes). */
function lineDiff(a, b) {
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start += 1;
  let endA = a.length;
  let endB = b.length;
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) { endA -= 1; endB -= 1; }
  const n = endA - start;
  const m = endB - start;
  const ops = [];
  for (let i = 0; i < start; i += 1) ops.push({ op: 'eq', a: i, b: i });
  if (n * m > 4e6) {
    // Too large for the table: show the middle as removed then added.
    for (let i = start; i < endA; i += 1) ops.push({ op: 'del', a: i });
    for (let j = start; j < endB; j += 1) ops.push({ op: 'add', b: j });
  } else {
    const w = m + 1;
    const lcs = new Uint32Array((n + 1) * w);
    for (let i = n - 1; i >= 0; i -= 1) {
      for (let j = m - 1; j >= 0; j -= 1) {
        lcs[i * w + j] = a[start + i] === b[start + j]
          ? lcs[(i + 1) * w + j + 1] + 1
          : Math.max(lcs[(i + 1) * w + j], lcs[i * w + j + 1]);
      }
    }
    let i = 0;
    let j = 0;
    while (i < n || j < m) {
      if (i < n && j < m && a[start + i] === b[start + j]) {
        ops.push({ op: 'eq', a: start + i, b: start + j }); i += 1; j += 1;
      } else if (j < m && (i === n || lcs[i * w + j + 1] >= lcs[(i + 1) * w + j])) {
        ops.push({ op: 'add', b: start + j }); j += 1;
      } else {
        ops.push({ op: 'del', a: start + i }); i += 1;
      }
    }
  }
  for (let k = 0; endA + k < a.length; k += 1) ops.push({ op: 'eq', a: endA + k, b: endB + k });
  return ops;
}

/** Pairs removed and added lines of each change so they sit side by side. */
function sideBySide(ops) {
  const rows = [];
  let dels = [];
  let adds = [];
  const flush = () => {
    for (let k = 0; k < Math.max(dels.length, adds.length); k += 1) rows.push({ left: dels[k], right: adds[k] });
    dels = [];
    adds = [];
  };
  for (const op of ops) {
    if (op.op === 'del') dels.push(op.a);
    else if (op.op === 'add') adds.push(op.b);
    else { flush(); rows.push({ left: op.a, right: op.b, same: true }); }
  }
  flush();
  return rows;
}

function diffTable(oldText, newText, va, vb) {
  const a = oldText.split('\n');
  const b = newText.split('\n');
  const rows = sideBySide(lineDiff(a, b));
  const changed = rows.some((r) => !r.same);
  const removed = rows.filter((r) => !r.same && r.left !== undefined).length;
  const added = rows.filter((r) => !r.same && r.right !== undefined).length;
  const cell = (lines, idx, kind) => (idx === undefined
    ? [h('td', { class: 'ln' }), h('td', { class: 'code blank' })]
    : [h('td', { class: 'ln' }, idx + 1), h('td', { class: `code ${kind}`, 'data-testid': kind === 'same' ? null : `diff-${kind}` }, lines[idx])]);
  return h('div', { 'data-testid': 'diff' },
    h('p', { class: 'muted' }, changed
      ? `Version ${va} → version ${vb}: ${plural(removed, 'line')} removed, ${plural(added, 'line')} added (a changed line counts as both).`
      : `Versions ${va} and ${vb} are identical.`),
    h('div', { class: 'table-wrap' }, h('table', { class: 'diff' },
      h('colgroup', {}, h('col', { class: 'ln' }), h('col'), h('col', { class: 'ln' }), h('col')),
      h('thead', {}, h('tr', {}, h('th', { colspan: 2, scope: 'col' }, `version ${va}`), h('th', { colspan: 2, scope: 'col' }, `version ${vb}`))),
      h('tbody', {}, rows.map((r) => h('tr', {},
        cell(a, r.left, r.same ? 'same' : 'del'),
        cell(b, r.right, r.same ? 'same' : 'add')))))));
}

/* ------------------------------------------------------------------ */
/* 6c. Specs and rules                                                 */
/* ------------------------------------------------------------------ */

const rulesUrl = (project) => `/api/validate/${enc(project)}/rules`;
const ruleUrl = (project, ruleId) => `/api/rules/${enc(project)}/${enc(ruleId)}`;

function rulesPage(ctx) {
  const proposedEl = h('div', { 'data-testid': 'proposed-rules' }, h('p', { class: 'muted' }, 'Loading…'));
  const setEl = h('div', { 'data-testid': 'rule-set' });
  const specsEl = h('div', { 'data-testid': 'specs' });
  const pills = h('div', { class: 'pills', 'data-testid': 'projects' });
  const projectList = h('datalist', { id: 'project-list' });
  let projects = [];
  let project = ctx.params.get('project') || '';

  const openInput = h('input', { name: 'project', list: 'project-list', placeholder: 'project name', value: project, 'data-testid': 'project-input' });
  const openForm = h('form', {
    class: 'inline-form',
    onsubmit: (e) => {
      e.preventDefault();
      if (openInput.value.trim()) navigate(`/rules?project=${enc(openInput.value.trim())}`);
    },
  }, field('Project', openInput), h('button', { type: 'submit', class: 'btn' }, 'Open'));

  const tryEl = tryItBox(() => project);
  ctx.main.append(
    pageHead('Specs & rules', 'Validation rules per project, proposals from agents, and the specs they share.'),
    projectList,
    card('Proposed rules', { testid: 'proposed-card' }, proposedEl),
    h('div', { class: 'grid overview' },
      card('Rule set', { testid: 'rules-card' }, h('div', { class: 'project-bar' }, pills, openForm), setEl),
      card('Try it', { testid: 'try-card' }, tryEl)),
    card('Specs', { testid: 'specs-card' }, specsEl));

  const reloadAll = async () => {
    let proposed;
    try {
      // Every rule of every project (any source and status) names the projects; the
      // proposals waiting for a decision come filtered by the server.
      const [all, waiting] = await Promise.all([api('/api/rules'), api('/api/rules?status=proposed')]);
      projects = [...new Set(all.map((r) => r.project))].sort();
      proposed = waiting;
    } catch (err) {
      if (ctx.alive && !err.auth) proposedEl.replaceChildren(errorBox(err));
      return;
    }
    if (!ctx.alive) return;
    if (!project) project = projects.find((p) => p !== '_global') || projects[0] || '';
    openInput.value = project;
    tryEl.setProject(project);
    const shown = [...new Set([...projects, '_global', project].filter(Boolean))].sort();
    projectList.replaceChildren(...shown.map((p) => h('option', { value: p })));
    pills.replaceChildren(...shown.map((p) => h('a', {
      href: `/rules?project=${enc(p)}`, class: 'pill', 'aria-current': p === project ? 'page' : null,
    }, p)));
    proposedEl.replaceChildren(proposedTable(proposed));
    if (project) {
      fill(ctx, setEl, () => ruleSet(project, reloadAll));
      fill(ctx, specsEl, () => specList(project));
    } else {
      setEl.replaceChildren(empty('No projects with rules yet. Type a project name above to see its specs or add its first rule, or import rules with ',
        code('koor rules import --file rules.json'), '.'));
      specsEl.replaceChildren(empty('Open a project to see its specs.'));
    }
  };
  reloadAll();
  const refresh = debounce(reloadAll, 200);
  ctx.onEvent((ev) => {
    if (ev.topic.startsWith('rule.') || (ev.topic.startsWith('spec.') && ev.data && ev.data.project === project)) refresh();
  });
}

function proposedTable(proposed) {
  if (!proposed.length) {
    return empty('No proposed rules. Agents propose rules with the MCP tool ', code('propose_rule'),
      ' or ', code('POST /api/rules/propose'), '; they wait here for Accept or Reject.');
  }
  return table(['Project', 'Rule', 'Pattern', 'Message', 'Proposed by', ''], proposed.map((r) => {
    const path = ruleUrl(r.project, r.rule_id);
    const decide = (verb) => {
      const btn = button(verb === 'accept' ? 'Accept' : 'Reject', () => act(btn, async () => {
        await api(`${path}/${verb}`, { method: 'POST' });
        navigate(`/rules?project=${enc(r.project)}`);
      }, `Rule ${r.rule_id} ${verb}ed`), { class: `btn small${verb === 'accept' ? ' primary' : ''}`, 'data-testid': `rule-${verb}`, 'data-needs': 'admin' });
      return btn;
    };
    return h('tr', { 'data-testid': 'proposed-rule' },
      h('td', {}, r.project),
      h('td', {}, h('strong', { class: 'mono' }, r.rule_id), h('div', { class: 'muted small' }, `${r.severity} · ${r.match_type}`)),
      h('td', {}, code(r.pattern)),
      h('td', {}, r.message || h('span', { class: 'muted' }, '(default)'), r.context && h('div', { class: 'muted small' }, r.context)),
      h('td', {}, r.proposed_by || h('span', { class: 'muted' }, '—'), h('div', { class: 'muted small' }, timeAgo(r.created_at))),
      h('td', { class: 'row-actions' }, decide('accept'), decide('reject')));
  }), { class: 'dense' });
}

async function ruleSet(project, reload) {
  const { rules } = await api(rulesUrl(project));
  const formHolder = h('div');
  const openForm = (rule) => {
    formHolder.replaceChildren(ruleForm(project, rule, rules, {
      done: () => { formHolder.replaceChildren(); reload(); },
      cancel: () => formHolder.replaceChildren(),
    }));
    $('input, select', formHolder)?.focus();
  };
  const add = button('Add rule', () => openForm(null), { class: 'btn primary small', 'data-testid': 'rule-add', 'data-needs': 'write' });
  const rows = rules.map((r) => {
    // A proposal is decided above (Accept or Reject); it can be withdrawn here.
    const edit = r.status !== 'proposed' && button('Edit', () => openForm(r), { class: 'btn small ghost', 'data-testid': 'rule-edit', 'data-needs': 'write' });
    const del = button('Delete', () => deleteRule(del, project, r, reload), { class: 'btn small ghost', 'data-testid': 'rule-delete', 'data-needs': 'admin' });
    return h('tr', { 'data-testid': 'rule-row' },
      h('td', {}, h('strong', { class: 'mono nowrap' }, r.rule_id)),
      h('td', {}, badge(r.status)),
      h('td', {}, badge(r.severity)),
      h('td', {}, r.match_type, h('div', {}, code(r.pattern))),
      h('td', {}, r.message || h('span', { class: 'muted' }, '(default)'),
        h('div', { class: 'muted small' }, [`${r.source}`, r.stack && ` · stack ${r.stack}`, ` · files ${(r.applies_to || []).join(', ') || '*'}`])),
      h('td', { class: 'row-actions' }, edit, del));
  });
  return [
    h('div', { class: 'card-sub' }, h('h3', {}, 'Rules of ', code(project)), add),
    rules.length ? table(['Rule', 'Status', 'Severity', 'Match', 'Message', ''], rows, { class: 'dense', 'data-testid': 'rule-table' })
      : empty('No rules in ', code(project), ' yet. Add one, or accept a proposal.'),
    formHolder,
  ];
}

/** Add or edit one rule: an upsert through the import endpoint, which leaves the project's other rules alone. */
function ruleForm(project, rule, existing, { done, cancel }) {
  const v = rule || { severity: 'error', match_type: 'regex', applies_to: ['*'], source: 'local' };
  const input = (name, props) => h('input', { name, value: v[name] || '', ...props });
  const ruleId = input('rule_id', { required: true, readonly: Boolean(rule), 'data-testid': 'rule-form-id' });
  const pattern = input('pattern', { required: true, class: 'mono', 'data-testid': 'rule-form-pattern' });
  const message = input('message', { 'data-testid': 'rule-form-message' });
  const severity = select('severity', ['error', 'warning'], v.severity);
  const matchType = select('match_type', ['regex', 'missing', 'custom'], v.match_type);
  const appliesTo = h('input', { name: 'applies_to', value: (v.applies_to || []).join(', '), placeholder: '*' });
  const stack = input('stack', { placeholder: 'any' });
  const save = h('button', { type: 'submit', class: 'btn primary', 'data-testid': 'rule-form-save' }, rule ? 'Save changes' : 'Add rule');
  return h('form', {
    class: 'rule-form', 'data-testid': 'rule-form',
    onsubmit: (e) => {
      e.preventDefault();
      const id = ruleId.value.trim();
      if (!rule && existing.some((r) => r.rule_id === id)) {
        toast(`A rule ${id} already exists in ${project}: edit it instead.`, 'error');
        return;
      }
      const body = [{
        project, rule_id: id, pattern: pattern.value, message: message.value,
        severity: severity.value, match_type: matchType.value, stack: stack.value.trim(),
        applies_to: appliesTo.value.split(',').map((s) => s.trim()).filter(Boolean),
        source: v.source || 'local',
      }];
      act(save, () => api('/api/rules/import', { method: 'POST', body }).then(done), `Rule ${id} saved`);
    },
  },
  h('h3', {}, rule ? `Edit ${rule.rule_id}` : `New rule in ${project}`),
  h('div', { class: 'form-grid' },
    field('Rule id', ruleId), field('Severity', severity), field('Match type', matchType),
    field('Pattern', pattern, 'A regex, a pattern that must be present (missing), or a custom check name.'),
    field('Message', message), field('Applies to', appliesTo, 'Comma-separated file globs.'), field('Stack', stack)),
  h('div', { class: 'actions' }, button('Cancel', cancel, { class: 'btn ghost' }), save));
}

const DELETE_RULE_TEXT = {
  accepted: (project) => `It stops applying to ${project}.`,
  proposed: () => 'The proposal is withdrawn without a decision.',
  rejected: (project) => `The rejected rule is removed from ${project}.`,
};

/** Deletes one rule (DELETE /api/rules/{project}/{rule_id}); the project's other rules stay. */
async function deleteRule(btn, project, rule, reload) {
  const text = DELETE_RULE_TEXT[rule.status] || DELETE_RULE_TEXT.accepted;
  const ok = await confirmAction({
    title: `Delete rule ${rule.rule_id}?`,
    message: text(project),
    ok: 'Delete',
    danger: true,
  });
  if (!ok) return;
  act(btn, () => api(ruleUrl(project, rule.rule_id), { method: 'DELETE' }).then(reload, (err) => {
    if (err.status === 404) reload(); // someone else removed it: the list is out of date
    throw err;
  }), `Rule ${rule.rule_id} deleted`);
}

/** The "try it" box: validates pasted content against a project's accepted rules. */
function tryItBox(currentProject) {
  const project = h('input', { name: 'project', list: 'project-list', required: true, 'data-testid': 'try-project' });
  const filename = h('input', { name: 'filename', placeholder: 'optional, e.g. src/app.js' });
  const stack = h('input', { name: 'stack', placeholder: 'optional' });
  const content = h('textarea', { name: 'content', rows: 8, class: 'mono', spellcheck: 'false', 'data-testid': 'try-content', placeholder: 'Paste code or text to check…' });
  const result = h('div', { 'data-testid': 'try-result', 'aria-live': 'polite' });
  const run = h('button', { type: 'submit', class: 'btn primary', 'data-testid': 'try-submit' }, 'Validate');
  const form = h('form', {
    class: 'try',
    onsubmit: (e) => {
      e.preventDefault();
      const body = { content: content.value };
      if (filename.value.trim()) body.filename = filename.value.trim();
      if (stack.value.trim()) body.stack = stack.value.trim();
      act(run, async () => {
        const r = await api(`/api/validate/${enc(project.value.trim())}`, { method: 'POST', body });
        result.replaceChildren(violationList(r.violations, r.project));
      });
    },
  },
  h('div', { class: 'form-grid' }, field('Project', project), field('File name', filename), field('Stack', stack)),
  field('Content', content),
  h('div', { class: 'actions' }, run), result);
  form.setProject = (p) => { if (!project.value) project.value = p || currentProject() || ''; };
  return form;
}

function violationList(violations, project) {
  if (!violations.length) {
    return h('p', { class: 'ok-line', 'data-testid': 'try-clean' }, `No violations: the content passes the accepted rules of ${project} (and _global).`);
  }
  return table(['Line', 'Rule', 'Severity', 'Message', 'Match'], violations.map((v) => h('tr', { 'data-testid': 'violation' },
    h('td', { class: 'num' }, v.line ?? '—'),
    h('td', { class: 'mono nowrap' }, v.rule_id),
    h('td', {}, badge(v.severity)),
    h('td', {}, v.message),
    h('td', {}, v.match != null ? code(v.match) : '—'))), { class: 'dense' });
}

async function specList(project) {
  const { specs } = await api(`/api/specs/${enc(project)}`);
  if (!specs.length) {
    return empty('No specs in ', code(project), '. Agents share them with ', code(`koor specs set ${project}/NAME --data '{…}'`), '.');
  }
  return h('ul', { class: 'spec-list' }, specs.map((s) => {
    const body = h('pre', { class: 'code value' }, 'Loading…');
    const details = h('details', {
      ontoggle: () => {
        if (!details.open || details.dataset.loaded) return;
        details.dataset.loaded = '1';
        api(`/api/specs/${enc(project)}/${enc(s.name)}`, { raw: true })
          .then((r) => { body.textContent = pretty(r.text).text; })
          .catch((err) => { body.replaceWith(errorBox(err)); });
      },
    }, h('summary', {}, h('span', { class: 'mono' }, s.name), h('span', { class: 'muted small' }, ` v${s.version} · `, timeAgo(s.updated_at))), body);
    return h('li', { 'data-testid': 'spec' }, details);
  }));
}

/* ------------------------------------------------------------------ */
/* 6d. Webhooks                                                        */
/* ------------------------------------------------------------------ */

const WEBHOOK_REFRESH_MS = 5000;

function webhooksPage(ctx) {
  const listEl = h('div', { 'data-testid': 'webhooks' }, h('p', { class: 'muted' }, 'Loading…'));
  // Deliveries publish no events, so the page refreshes every 5 s; besides, it looks again
  // just after a pending attempt of an active webhook falls due, so its outcome shows soon.
  let followUp = null;
  const scheduleFollowUp = (hooks, deliveries) => {
    const now = Date.now();
    const due = hooks.flatMap((w, i) => (w.active ? deliveries[i] : []))
      .filter((d) => d.state === 'pending')
      .map((d) => parseTime(d.next_attempt_at))
      .filter((t) => t > now - 15000 && t < now + WEBHOOK_REFRESH_MS);
    if (!due.length || followUp) return;
    followUp = setTimeout(() => {
      followUp = null;
      if (ctx.alive) load();
    }, Math.max(0, Math.min(...due) - now) + 750);
  };
  const fetchAll = async () => {
    const hooks = await api('/api/webhooks');
    const deliveries = await Promise.all(hooks.map((w) => api(`/api/webhooks/${enc(w.id)}/deliveries?limit=20`)));
    scheduleFollowUp(hooks, deliveries);
    return { hooks, deliveries };
  };
  const load = refresher(ctx, listEl, fetchAll, ({ hooks, deliveries }) => (hooks.length
    ? hooks.map((w, i) => webhookCard(w, deliveries[i], load))
    : empty('No webhooks. Add one below, or with ', code('koor webhooks add --id ID --url URL --patterns "agent.*"'), '.')));
  ctx.main.append(
    pageHead('Webhooks', 'Matching events are delivered to these URLs, retried with backoff; 10 failures in a row disable a webhook.'),
    listEl,
    h('div', { 'data-needs': 'admin' }, card('Add a webhook', { testid: 'webhook-add' }, webhookForm(load))));
  load();
  ctx.every(WEBHOOK_REFRESH_MS, load);
  ctx.onEvent(debounce(load, 300));
}

function webhookCard(w, deliveries, reload) {
  const path = `/api/webhooks/${enc(w.id)}`;
  const actions = [];
  if (!w.active) {
    const enable = button('Enable', () => act(enable, () => api(`${path}/enable`, { method: 'POST' }).then(reload), `Webhook ${w.id} enabled`),
      { class: 'btn small primary', 'data-testid': 'webhook-enable' });
    actions.push(enable);
  }
  const test = button('Send test', () => act(test, () => api(`${path}/test`, { method: 'POST' }), `Test delivery to ${w.id} succeeded`),
    { class: 'btn small', 'data-testid': 'webhook-test' });
  const del = button('Delete', async () => {
    const ok = await confirmAction({ title: `Delete webhook ${w.id}?`, message: 'It receives no further deliveries; its delivery log is removed.', ok: 'Delete', danger: true });
    if (ok) act(del, () => api(path, { method: 'DELETE' }).then(reload), `Webhook ${w.id} deleted`);
  }, { class: 'btn small ghost' });
  actions.push(test, del);

  return h('section', { class: 'card', 'data-testid': 'webhook' },
    h('header', { class: 'card-head' },
      h('h2', {}, h('span', { class: 'mono' }, w.id), ' ',
        h('span', { 'data-testid': 'webhook-status' }, badge(w.active ? 'active' : 'disabled'))),
      h('div', { class: 'actions', 'data-needs': 'admin' }, actions)),
    kv([
      ['URL', code(w.url)],
      ['Patterns', w.patterns.map((p) => code(p)).flatMap((c, i) => (i ? [' ', c] : [c]))],
      ['Failures in a row', h('span', { class: w.fail_count ? 'warn-text' : '' }, fmtInt(w.fail_count)), 'webhook-fails'],
      ['Last success', timeAgo(w.last_fired)],
      ['Created', timeAgo(w.created_at)],
    ]),
    h('h3', {}, 'Recent deliveries'),
    deliveries.length ? deliveryTable(w, deliveries, reload)
      : empty('No deliveries yet: one is made for each matching event published after the webhook was created.'));
}

function deliveryTable(w, deliveries, reload) {
  return table(['#', 'Event', 'State', 'Attempts', 'Last result', 'Next attempt', 'Updated', ''], deliveries.map((d) => {
    const canRetry = d.state === 'failed' || (d.state === 'pending' && d.attempts > 0);
    const retry = canRetry && button(d.state === 'failed' ? 'Retry' : 'Retry now', () => act(retry,
      () => api(`/api/webhooks/${enc(w.id)}/deliveries/${d.id}/retry`, { method: 'POST' }).then(reload),
      `Delivery ${d.id} queued again`), { class: 'btn small', 'data-testid': 'delivery-retry', 'data-needs': 'admin' });
    return h('tr', { 'data-testid': 'delivery-row' },
      h('td', { class: 'num' }, d.id),
      h('td', {}, h('span', { class: 'mono' }, d.topic), h('span', { class: 'muted small' }, ` #${d.event_id}`)),
      h('td', {}, badge(d.state)),
      h('td', { class: 'num' }, d.attempts),
      h('td', { class: 'small' }, d.last_status != null ? `HTTP ${d.last_status}` : '', d.last_error && h('div', { class: 'muted' }, d.last_error)),
      h('td', {}, d.state === 'pending' ? timeAgo(d.next_attempt_at) : h('span', { class: 'muted' }, '—')),
      h('td', {}, timeAgo(d.updated_at)),
      h('td', { class: 'row-actions' }, retry));
  }), { class: 'dense' });
}

function webhookForm(reload) {
  const id = h('input', { name: 'id', required: true, placeholder: 'ci-notify', 'data-testid': 'webhook-form-id' });
  const url = h('input', { name: 'url', type: 'url', required: true, placeholder: 'https://example.test/hook', 'data-testid': 'webhook-form-url' });
  const patterns = h('input', { name: 'patterns', placeholder: '* (every event), or agent.*, build.*' });
  const secret = h('input', { name: 'secret', type: 'password', autocomplete: 'off', placeholder: 'optional, used to sign deliveries' });
  const save = h('button', { type: 'submit', class: 'btn primary' }, 'Add webhook');
  const form = h('form', {
    class: 'form-grid',
    onsubmit: (e) => {
      e.preventDefault();
      const body = {
        id: id.value.trim(), url: url.value.trim(), secret: secret.value,
        patterns: patterns.value.split(',').map((s) => s.trim()).filter(Boolean),
      };
      act(save, async () => { await api('/api/webhooks', { method: 'POST', body }); form.reset(); reload(); }, `Webhook ${body.id} added`);
    },
  }, field('Id', id), field('URL', url), field('Topic patterns', patterns, 'Comma-separated.'), field('Secret', secret),
  h('div', { class: 'actions end' }, save));
  return form;
}

/* ------------------------------------------------------------------ */
/* 6e. Compliance                                                      */
/* ------------------------------------------------------------------ */

function compliancePage(ctx) {
  const listEl = h('div', { 'data-testid': 'compliance-runs' }, h('p', { class: 'muted' }, 'Loading…'));
  const load = () => fill(ctx, listEl, async () => {
    const [runs, agents] = await Promise.all([api('/api/compliance/history?limit=100'), api('/api/instances')]);
    return runTable(runs, new Map(agents.map((i) => [i.id, i.name])));
  });
  const runNow = button('Run now', () => act(runNow, async () => {
    const r = await api('/api/compliance/run', { method: 'POST' });
    load();
    return r;
  }, (r) => `Compliance pass done: ${r.count} run(s), ${r.runs.filter((x) => !x.pass).length} failing`),
  { class: 'btn primary', 'data-testid': 'compliance-run', 'data-needs': 'write' });
  ctx.main.append(
    pageHead('Compliance', 'Each pass checks every active agent against the contract specs of the project named by its workspace.', runNow),
    card('Recent runs', {}, listEl));
  load();
  ctx.onEvent((ev) => { if (ev.topic === 'compliance.violation') load(); });
  ctx.every(15000, load);
}

function runTable(runs, names) {
  if (!runs.length) {
    return empty('No compliance runs yet. A pass checks active agents (', code('koor activate ID'),
      ') whose workspace names a project with contract specs; it runs every few minutes, or press Run now.');
  }
  return table(['#', 'When', 'Agent', 'Project', 'Contract', 'Result', 'Violations'], runs.map((r) => h('tr', { 'data-testid': 'compliance-row' },
    h('td', { class: 'num' }, r.id),
    h('td', {}, timeAgo(r.run_at)),
    h('td', {}, names.get(r.instance_id) || h('span', { class: 'mono small', title: r.instance_id }, r.instance_id.slice(0, 8))),
    h('td', {}, r.project),
    h('td', { class: 'mono' }, r.contract),
    h('td', {}, badge(r.pass ? 'pass' : 'fail')),
    h('td', {}, r.violations.length
      ? h('ul', { class: 'plain small' }, r.violations.map((v) => h('li', {}, code(v.path), ' ', v.message)))
      : h('span', { class: 'muted' }, '—')))), { class: 'dense' });
}

/* ------------------------------------------------------------------ */
/* 6f. Audit                                                           */
/* ------------------------------------------------------------------ */

const AUDIT_ACTIONS = ['state.put', 'state.rollback', 'state.delete', 'spec.put', 'spec.delete', 'instance.register',
  'instance.activate', 'instance.deregister', 'instance.capabilities', 'rule.propose', 'rule.accept', 'rule.reject', 'rule.delete',
  'rules.import', 'webhook.create', 'webhook.delete', 'webhook.enable', 'webhook.retry', 'template.create',
  'template.delete', 'template.apply', 'llm.usage', 'llm.budget.put', 'llm.budget.delete'];
const AUDIT_FILTERS = ['actor', 'action', 'from', 'to', 'limit'];

/** A datetime-local value (local time) or any ISO string, as an ISO instant for the API. */
function toInstant(value) {
  const t = new Date(value);
  return Number.isNaN(t.getTime()) ? value : t.toISOString();
}

function auditPage(ctx) {
  const verifyEl = h('div', { class: 'verify', 'data-testid': 'audit-verify', 'aria-live': 'polite' }, h('p', { class: 'muted' }, 'Verifying the hash chain…'));
  const listEl = h('div', { 'data-testid': 'audit-entries' }, h('p', { class: 'muted' }, 'Loading…'));
  const p = ctx.params;
  const inputs = {
    actor: h('input', { name: 'actor', value: p.get('actor') || '', placeholder: 'any' }),
    action: h('input', { name: 'action', list: 'audit-actions', value: p.get('action') || '', placeholder: 'any' }),
    from: h('input', { name: 'from', type: 'datetime-local', step: 1, value: p.get('from') || '' }),
    to: h('input', { name: 'to', type: 'datetime-local', step: 1, value: p.get('to') || '' }),
    limit: h('input', { name: 'limit', type: 'number', min: 1, max: 10000, value: p.get('limit') || '50' }),
  };
  const form = h('form', {
    class: 'inline-form filters', 'data-testid': 'audit-filters',
    onsubmit: (e) => {
      e.preventDefault();
      const q = new URLSearchParams();
      for (const name of AUDIT_FILTERS) if (inputs[name].value.trim()) q.set(name, inputs[name].value.trim());
      navigate(`/audit?${q}`);
    },
  },
  field('Actor', inputs.actor), field('Action', inputs.action), field('From', inputs.from), field('To', inputs.to), field('Limit', inputs.limit),
  h('button', { type: 'submit', class: 'btn primary', 'data-testid': 'audit-apply' }, 'Apply'),
  h('a', { href: '/audit', class: 'btn ghost' }, 'Clear'),
  h('datalist', { id: 'audit-actions' }, AUDIT_ACTIONS.map((a) => h('option', { value: a }))));

  const verify = () => fill(ctx, verifyEl, async () => verifyResult(await api('/api/audit/verify')));
  const load = () => fill(ctx, listEl, async () => {
    const q = new URLSearchParams();
    for (const name of AUDIT_FILTERS) {
      const value = p.get(name);
      if (value) q.set(name, name === 'from' || name === 'to' ? toInstant(value) : value);
    }
    return auditTable(await api(`/api/audit?${q}`), [...q.keys()].some((k) => k !== 'limit'));
  });
  const again = button('Verify again', () => act(again, verify), { class: 'btn small' });
  ctx.main.append(
    pageHead('Audit log', 'Every change, append-only and hash-chained.'),
    card('Chain verification', { testid: 'verify-card', actions: [again] }, verifyEl),
    card('Entries', {}, form, listEl));
  verify();
  load();
}

function verifyResult(v) {
  if (v.ok) {
    return h('p', { class: 'verify-ok', 'data-testid': 'verify-ok' }, h('span', { class: 'icon', 'aria-hidden': 'true' }, '✔'),
      h('strong', {}, 'Chain verified'), ` — ${fmtInt(v.entries)} ${v.entries === 1 ? 'entry' : 'entries'} intact.`);
  }
  return h('div', { class: 'verify-broken', 'data-testid': 'verify-broken', role: 'alert' },
    h('p', {}, h('span', { class: 'icon', 'aria-hidden': 'true' }, '✖'), h('strong', {}, `Chain broken at entry #${v.broken_id}`),
      ` — ${fmtInt(v.entries)} ${v.entries === 1 ? 'entry' : 'entries'} before it are intact.`),
    h('p', {}, v.reason));
}

function auditTable(entries, filtered) {
  if (!entries.length) {
    return empty(filtered ? 'No entries match these filters.'
      : 'No audit entries yet. Changes (state writes, registrations, rule decisions, webhooks…) are recorded here.');
  }
  return table(['#', 'When', 'Actor', 'Action', 'Resource', 'Detail', 'Hash'], entries.map((e) => h('tr', { 'data-testid': 'audit-row' },
    h('td', { class: 'num' }, e.id),
    h('td', {}, timeAgo(e.timestamp)),
    h('td', {}, e.actor || h('span', { class: 'muted' }, '—')),
    h('td', { class: 'mono' }, e.action),
    h('td', { class: 'mono small' }, e.resource),
    h('td', { class: 'mono small' }, e.detail === '{}' ? '' : e.detail),
    h('td', { class: 'mono small', title: e.hash }, shortHash(e.hash)))), { class: 'dense' });
}

/* ------------------------------------------------------------------ */
/* 6g. Tasks                                                           */
/* ------------------------------------------------------------------ */

const TASK_STATUSES = ['queued', 'leased', 'failed', 'dead', 'done', 'cancelled'];
const TASK_BADGE = { queued: 'pending', leased: 'active', failed: 'warning', done: 'ok', dead: 'error', cancelled: 'cancelled' };
// The queue list is read from the newest tasks (there is no endpoint listing queues).
const QUEUE_SCAN_LIMIT = 1000;
const TASK_LIST_LIMIT = 200;
const TASK_TOPIC = /^task\./;

function tasksPageUrl(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
  const s = q.toString();
  return s ? `/tasks?${s}` : '/tasks';
}

/** A stats answer with its oldest queued age as an instant (rounded to the second), so it can show a live relative time. */
function taskStats(stats) {
  const age = stats.oldest_queued_age_seconds;
  const { oldest_queued_age_seconds: _, ...counts } = stats;
  return {
    ...counts,
    oldest_queued_at: age == null ? null : new Date(Math.round((Date.now() - age * 1000) / 1000) * 1000).toISOString(),
  };
}

function tasksPage(ctx) {
  const queue = ctx.params.get('queue') || '';
  const status = TASK_STATUSES.includes(ctx.params.get('status')) ? ctx.params.get('status') : '';
  const queuesEl = h('div', { 'data-testid': 'task-queues' }, h('p', { class: 'muted' }, 'Loading…'));
  const tabsEl = h('nav', { class: 'tabs', 'aria-label': 'Task status', 'data-testid': 'task-status-tabs' });
  const listEl = h('div', { 'data-testid': 'tasks' }, h('p', { class: 'muted' }, 'Loading…'));

  const loadQueues = refresher(ctx, queuesEl, async () => {
    const recent = await api(`/api/tasks?limit=${QUEUE_SCAN_LIMIT}`);
    const names = [...new Set(recent.map((t) => t.queue).concat(queue ? [queue] : []))].sort();
    const stats = await Promise.all(names.map((q) => api(`/api/tasks/stats?queue=${enc(q)}`)));
    return names.map((name, i) => ({ name, ...taskStats(stats[i]) }));
  }, (queues) => queueTable(queues, queue));

  const loadTasks = refresher(ctx, listEl, async () => {
    const q = new URLSearchParams({ limit: TASK_LIST_LIMIT });
    if (queue) q.set('queue', queue);
    if (status) q.set('status', status);
    const [tasks, stats, agents] = await Promise.all([
      api(`/api/tasks?${q}`),
      api(`/api/tasks/stats${queue ? `?queue=${enc(queue)}` : ''}`),
      api('/api/instances'),
    ]);
    const { oldest_queued_age_seconds: _, ...counts } = stats;
    return { tasks, counts, names: agents.map((i) => [i.id, i.name]) };
  }, ({ tasks, counts, names }) => {
    tabsEl.replaceChildren(...taskTabs(queue, status, counts));
    return taskTable(tasks, new Map(names), { queue, status, reload });
  });

  const reload = () => { loadQueues(); loadTasks(); };
  const refresh = debounce(reload, 150);
  const scope = queue ? ['Tasks in queue ', code(queue)] : ['Tasks in every queue'];
  ctx.main.append(
    pageHead('Tasks', 'Work queues with leases: an agent claims a task, holds its lease while it works, then completes or fails it.'),
    card('Queues', { testid: 'queues-card' }, queuesEl),
    card(scope, {
      testid: 'tasks-card',
      actions: queue ? [h('a', { href: tasksPageUrl({ status }), class: 'btn small ghost', 'data-testid': 'all-queues' }, 'All queues')] : null,
    }, tabsEl, listEl));
  reload();
  ctx.onEvent((ev) => {
    if (TASK_TOPIC.test(ev.topic) || ev.topic === 'koor.lagged') refresh();
    else if (INSTANCE_TOPIC.test(ev.topic)) loadTasks();
  });
  // A failed task's retry time and the queue ages pass without events; a slow look keeps them honest.
  ctx.every(10000, reload);
}

function queueTable(queues, selected) {
  if (!queues.length) {
    return empty(h('strong', {}, 'No tasks yet'), ' — add one with ', code(`koor tasks add --queue builds --data '{"ref":"main"}'`),
      ' (or POST /api/tasks); an agent takes it with ', code('koor tasks claim --queue builds'), ' or runs a worker with ',
      code('koor tasks work --queue builds -- CMD'), '.');
  }
  return table(['Queue', ...TASK_STATUSES, 'Oldest queued'], queues.map((q) => h('tr', {
    'data-testid': 'queue-row', 'data-queue': q.name, 'aria-current': q.name === selected ? 'true' : null,
  },
  h('td', {}, h('a', { href: tasksPageUrl({ queue: q.name }), class: 'mono' }, q.name)),
  TASK_STATUSES.map((s) => h('td', { class: `num${q[s] && (s === 'dead' || s === 'failed') ? ' warn-text' : ''}`, 'data-testid': `queue-${s}` }, fmtInt(q[s]))),
  h('td', { 'data-testid': 'queue-oldest' }, q.oldest_queued_at ? timeAgo(q.oldest_queued_at) : h('span', { class: 'muted' }, '—')))),
  { class: 'dense' });
}

function taskTabs(queue, status, counts) {
  const total = TASK_STATUSES.reduce((n, s) => n + (counts[s] || 0), 0);
  const tab = (value, label, n) => h('a', {
    href: tasksPageUrl({ queue, status: value }), class: 'tab', 'aria-current': status === value ? 'page' : null,
    'data-testid': `task-tab-${value || 'all'}`,
  }, label, ' ', h('span', { class: 'muted small' }, fmtInt(n)));
  return [tab('', 'All', total), ...TASK_STATUSES.map((s) => tab(s, s, counts[s] || 0))];
}

function holderName(names, id) {
  if (!id) return h('span', { class: 'muted' }, '—');
  const name = names.get(id);
  return name ? h('span', { title: id }, name) : h('span', { class: 'mono small', title: id }, id.length > 12 ? `${id.slice(0, 8)}…` : id);
}

/** When the task's next step is due: lease expiry, retry time, or a delayed start. */
function taskDue(t) {
  if (t.status === 'leased' && t.lease) return h('span', {}, 'lease ends ', timeAgo(t.lease.expires_at));
  if (t.status === 'failed' && t.not_before) return h('span', {}, 'retry ', timeAgo(t.not_before));
  if (t.status === 'queued' && t.not_before && parseTime(t.not_before) > Date.now()) return h('span', {}, 'not before ', timeAgo(t.not_before));
  return h('span', { class: 'muted' }, '—');
}

function taskTable(tasks, names, { queue, status, reload }) {
  if (!tasks.length) {
    const where = queue ? [' in queue ', code(queue)] : [];
    return empty(status ? [`No ${status} tasks`, where, '.'] : ['No tasks', where, ' yet. Add one with ',
      code(`koor tasks add --queue ${queue || 'builds'} --data '{…}'`), '.']);
  }
  return [
    table(['Task', 'Queue', 'Status', 'Attempts', 'Holder', 'Due', 'Created', ''], tasks.map((t) => {
      const actions = [];
      if (t.status === 'dead' || t.status === 'cancelled') {
        const retry = button('Retry', async () => {
          const ok = await confirmAction({
            title: `Retry task ${t.id}?`,
            message: `It goes back to queue ${t.queue} as queued, with its attempts reset to 0, and the next claim takes it.`,
            ok: 'Retry',
          });
          if (ok) act(retry, () => api(`/api/tasks/${enc(t.id)}/retry`, { method: 'POST' }).then(reload), `Task ${t.id} queued again`);
        }, { class: 'btn small', 'data-testid': 'task-retry', 'data-needs': 'write' });
        actions.push(retry);
      }
      if (t.status === 'queued' || t.status === 'leased' || t.status === 'failed') {
        const cancel = button('Cancel', async () => {
          const holder = t.lease && (names.get(t.lease.holder) || t.lease.holder);
          const ok = await confirmAction({
            title: `Cancel task ${t.id}?`,
            message: `${holder ? `${holder} loses its lease at once, and its complete or fail will be refused. ` : ''}`
              + 'The task is not claimed again unless someone retries it.',
            ok: 'Cancel task',
            danger: true,
          });
          if (ok) act(cancel, () => api(`/api/tasks/${enc(t.id)}/cancel`, { method: 'POST' }).then(reload), `Task ${t.id} cancelled`);
        }, { class: 'btn small ghost', 'data-testid': 'task-cancel', 'data-needs': 'write' });
        actions.push(cancel);
      }
      const payload = compact(t.payload, 80);
      return h('tr', { 'data-testid': 'task-row', 'data-task': t.id, 'data-status': t.status },
        h('td', {},
          h('span', { class: 'mono small' }, t.id),
          t.priority ? h('span', { class: 'muted small' }, ` · priority ${t.priority}`) : null,
          t.group ? h('span', { class: 'muted small' }, ' · group ', code(t.group)) : null,
          payload && h('div', { class: 'muted mono small', title: JSON.stringify(t.payload, null, 2) }, payload),
          t.error && h('div', { class: 'small warn-text', 'data-testid': 'task-error' }, t.error)),
        h('td', {}, h('a', { href: tasksPageUrl({ queue: t.queue, status }), class: 'mono' }, t.queue)),
        h('td', { 'data-testid': 'task-status' }, badge(t.status, TASK_BADGE[t.status])),
        h('td', { class: 'num', 'data-testid': 'task-attempts' }, `${t.attempts} / ${t.max_attempts}`),
        h('td', { 'data-testid': 'task-holder' }, t.lease ? holderName(names, t.lease.holder) : h('span', { class: 'muted' }, '—')),
        h('td', { class: 'small' }, taskDue(t)),
        h('td', {}, timeAgo(t.created_at)),
        h('td', { class: 'row-actions' }, actions));
    }), { class: 'dense' }),
    tasks.length >= TASK_LIST_LIMIT && h('p', { class: 'muted small' }, `The newest ${TASK_LIST_LIMIT} are shown; pick a queue or a status to narrow the list.`),
  ];
}

/* ------------------------------------------------------------------ */
/* 6h. Locks                                                           */
/* ------------------------------------------------------------------ */

const LOCK_TOPIC = /^lock\./;
const LOCK_LIST_LIMIT = 1000;

function locksPage(ctx) {
  const resource = ctx.params.get('resource') || '';
  const listEl = h('div', { 'data-testid': 'locks' }, h('p', { class: 'muted' }, 'Loading…'));
  let locks = [];
  let names = new Map();
  let loaded = false;
  let shown = null;
  let started = 0;
  let applied = 0;

  // Expired locks are not held: they drop off as their expiry passes, before the server's
  // lock.expired event arrives.
  const draw = () => {
    if (!loaded || !ctx.alive) return;
    const now = Date.now();
    const held = locks.filter((l) => parseTime(l.expires_at) > now);
    const key = JSON.stringify(held.map((l) => [l.id, l.expires_at, names.get(l.holder)]));
    if (key === shown) return;
    shown = key;
    listEl.replaceChildren(...[lockTable(held, names, resource, load)].flat().filter(Boolean));
  };
  const load = async () => {
    const mine = ++started;
    try {
      const q = new URLSearchParams({ limit: LOCK_LIST_LIMIT });
      if (resource) q.set('resource', resource);
      const [list, agents] = await Promise.all([api(`/api/locks?${q}`), api('/api/instances')]);
      if (!ctx.alive || mine < applied) return;
      applied = mine;
      locks = list;
      names = new Map(agents.map((i) => [i.id, i.name]));
      loaded = true;
      draw();
    } catch (err) {
      if (!ctx.alive || mine < applied) return;
      applied = mine;
      loaded = false;
      shown = null;
      if (!err.auth) listEl.replaceChildren(errorBox(err));
    }
  };

  const input = h('input', {
    name: 'resource', value: resource, placeholder: 'src/api/** or docs/guide.md', 'data-testid': 'lock-filter',
    title: 'Only locks whose pattern can match a path in common with this one',
  });
  const filter = h('form', {
    class: 'inline-form filters',
    onsubmit: (e) => {
      e.preventDefault();
      const value = input.value.trim();
      navigate(value ? `/locks?${new URLSearchParams({ resource: value })}` : '/locks');
    },
  }, field('Overlapping path or glob', input),
  h('button', { type: 'submit', class: 'btn' }, 'Filter'),
  resource && h('a', { href: '/locks', class: 'btn ghost' }, 'Clear'));

  ctx.main.append(
    pageHead('Locks', 'Reservations of files and other resources: a held exclusive lock keeps other agents off every path its pattern matches.'),
    card('Held locks', { testid: 'locks-card' }, filter, listEl));
  load();
  const refresh = debounce(load, 100);
  ctx.onEvent((ev) => {
    if (LOCK_TOPIC.test(ev.topic) || INSTANCE_TOPIC.test(ev.topic) || ev.topic === 'koor.lagged') refresh();
  });
  ctx.every(1000, draw);
  // Renewals publish no event: look again now and then for new expiry times.
  ctx.every(10000, load);
}

function lockTable(locks, names, resource, reload) {
  if (!locks.length) {
    if (resource) return empty('No held lock overlaps ', code(resource), '.');
    return empty(h('strong', {}, 'No locks are held'), ' — an agent reserves files before editing them with ',
      code('koor locks acquire "src/api/**" --reason "refactor the handlers"'), '; ', code('koor locks check'),
      ' (a pre-commit hook after ', code('koor hooks install'), ') then blocks commits that touch them.');
  }
  return table(['Resource', 'Mode', 'Holder', 'Reason', 'Acquired', 'Expires', 'Token', ''], locks.map((l) => {
    const release = button('Force release', async () => {
      const holder = names.get(l.holder) || l.holder;
      const ok = await confirmAction({
        title: `Force release ${l.resource}?`,
        message: `${holder} holds this ${l.mode} lock${l.reason ? ` (“${l.reason}”)` : ''}. Releasing it without its token frees `
          + `the resource for other agents at once; the holder's token ${l.token} no longer renews or releases it.`,
        ok: 'Force release',
        danger: true,
      });
      if (ok) act(release, () => api(`/api/locks/${enc(l.id)}`, { method: 'DELETE' }).then(reload), `Lock on ${l.resource} released`);
    }, { class: 'btn small ghost', 'data-testid': 'lock-release', 'data-needs': 'admin' });
    return h('tr', { 'data-testid': 'lock-row', 'data-lock': l.id },
      h('td', {}, code(l.resource)),
      h('td', {}, badge(l.mode, l.mode === 'exclusive' ? 'warning' : 'pending')),
      h('td', { 'data-testid': 'lock-holder' }, holderName(names, l.holder)),
      h('td', {}, l.reason || h('span', { class: 'muted' }, '—')),
      h('td', {}, timeAgo(l.acquired_at)),
      h('td', { 'data-testid': 'lock-expires' }, timeAgo(l.expires_at)),
      h('td', { class: 'num mono small' }, l.token),
      h('td', { class: 'row-actions' }, release));
  }), { class: 'dense' });
}

/* Storage: the database's health and a snapshot to download. */

const fmtBytes = (n) => {
  if (n == null) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = Number(n);
  let u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u += 1; }
  return `${u === 0 ? v : v.toFixed(1)} ${units[u]}`;
};

function storagePage(ctx) {
  const healthEl = h('div', { 'data-testid': 'storage-health' }, h('p', { class: 'muted' }, 'Checking…'));
  const load = () => fill(ctx, healthEl, async () => storageHealth(await api('/api/admin/check')));
  const again = button('Check again', () => act(again, load), { class: 'btn small ghost', 'data-testid': 'storage-recheck' });
  const download = h('a', {
    class: 'btn', href: '/api/admin/snapshot', download: '', 'data-testid': 'snapshot-download',
  }, 'Download snapshot');
  ctx.main.append(
    pageHead('Storage', 'The database behind this server: what koor doctor checks, and a consistent copy to keep.'),
    card('Health', { testid: 'storage-card', actions: again }, healthEl),
    card('Snapshot', { testid: 'snapshot-card' },
      h('p', {}, 'A copy of the whole database (state with history, specs, events, tasks, locks, rules, the audit log…), '
        + 'taken while the server keeps serving. Start a server on it as ', code('data.db'), ' in its data directory.'),
      h('p', {}, download),
      h('p', { class: 'muted small' }, 'From a shell or a timer: ', code('koor backup --snapshot koor.db'),
        '; state and rules in Go Koor\u2019s format: ', code('koor backup --output backup.json'), '.')));
  load();
}

function storageHealth(c) {
  const sound = c.integrity.length === 1 && c.integrity[0] === 'ok';
  const m = c.migrations;
  return kv([
    ['Integrity', sound ? badge('ok', 'ok') : h('span', {}, badge('damaged', 'failed'), ' ', c.integrity.join('; ')), 'storage-integrity'],
    ['Migrations', m.pending.length
      ? h('span', {}, badge('pending', 'warning'), ` ${m.pending.join(', ')}`)
      : `${fmtInt(m.applied)} of ${fmtInt(m.known)} applied`, 'storage-migrations'],
    ['Database', fmtBytes(c.database_bytes), 'storage-database'],
    ['Write-ahead log', fmtBytes(c.wal_bytes), 'storage-wal'],
    ['Free disk', fmtBytes(c.free_bytes), 'storage-free'],
    ['Server time', c.time, 'storage-time'],
  ]);
}

/* ------------------------------------------------------------------ */
/* 6i. Topology                                                        */
/* ------------------------------------------------------------------ */

const SVG_NS = 'http://www.w3.org/2000/svg';
// Interactions (publish/subscribe, tasks, locks) publish no event of their own: look again
// now and then.
const TOPOLOGY_REFRESH_MS = 10000;
const NODE_W = 176;
const NODE_H = 46;
const GAP_X = 72;
const GAP_Y = 22;

/** Creates an SVG element with attributes: svgEl('rect', {x: 1}, child…). */
function svgEl(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value != null) el.setAttribute(key, String(value));
  }
  el.append(...children.filter((c) => c != null).map((c) => (c instanceof Node ? c : document.createTextNode(String(c)))));
  return el;
}

/**
 * Places each node in a column by its depth in the parent tree (roots at the left) and
 * stacks each column by name; a parent missing from the graph makes a root.
 */
function topologyLayout(nodes) {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const depth = new Map();
  const depthOf = (n, seen = new Set()) => {
    if (depth.has(n.id)) return depth.get(n.id);
    const parent = n.parent_id && byId.get(n.parent_id);
    const d = parent && !seen.has(parent.id) ? depthOf(parent, seen.add(n.id)) + 1 : 0;
    depth.set(n.id, d);
    return d;
  };
  nodes.forEach((n) => depthOf(n));
  const columns = [];
  for (const n of [...nodes].sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id))) {
    const d = depth.get(n.id);
    (columns[d] = columns[d] || []).push(n);
  }
  const at = new Map();
  columns.forEach((col, c) => col.forEach((n, r) => at.set(n.id, { x: 16 + c * (NODE_W + GAP_X), y: 16 + r * (NODE_H + GAP_Y) })));
  const width = 32 + Math.max(1, columns.length) * (NODE_W + GAP_X) - GAP_X;
  const height = 32 + Math.max(1, ...columns.map((c) => c.length)) * (NODE_H + GAP_Y) - GAP_Y;
  return { at, width, height };
}

function topologySvg(graph) {
  const { at, width, height } = topologyLayout(graph.nodes);
  const svg = svgEl('svg', {
    class: 'topology', viewBox: `0 0 ${width} ${height}`, width, height,
    role: 'img', 'aria-label': `${graph.nodes.length} agents and ${graph.edges.length} links`, 'data-testid': 'topology-graph',
  }, svgEl('defs', {}, svgEl('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
    svgEl('path', { d: 'M 0 0 L 10 5 L 0 10 z', class: 'arrow-head' }))));
  for (const e of graph.edges) {
    const a = at.get(e.from);
    const b = at.get(e.to);
    if (!a || !b) continue;
    const x1 = a.x + NODE_W;
    const y1 = a.y + NODE_H / 2;
    const x2 = b.x;
    const y2 = b.y + NODE_H / 2;
    // Backward and same-column links bend around instead of crossing the nodes.
    const bend = x2 > x1 ? (x2 - x1) / 2 : GAP_X;
    const d = `M ${x1} ${y1} C ${x1 + bend} ${y1}, ${x2 - bend} ${y2}, ${x2} ${y2}`;
    svg.append(svgEl('path', { d, class: `edge ${e.kind}`, 'marker-end': 'url(#arrow)', 'data-testid': 'topology-edge', 'data-kind': e.kind },
      svgEl('title', {}, `${e.kind}: ${e.via}${e.count > 1 ? ` (×${e.count})` : ''}`)));
  }
  for (const n of graph.nodes) {
    const p = at.get(n.id);
    const state = n.health && n.health !== 'ok' ? n.health : n.status;
    const label = n.name.length > 22 ? `${n.name.slice(0, 21)}…` : n.name;
    svg.append(svgEl('g', { class: `node ${state}`, transform: `translate(${p.x} ${p.y})`, 'data-testid': 'topology-node', 'data-id': n.id, 'data-status': n.status },
      svgEl('title', {}, `${n.name} (${n.id})\nstatus ${n.status}${n.health ? `, health ${n.health}` : ''}${n.workspace ? `\nworkspace ${n.workspace}` : ''}`),
      svgEl('rect', { width: NODE_W, height: NODE_H, rx: 8 }),
      svgEl('text', { x: 10, y: 19, class: 'name' }, label),
      svgEl('text', { x: 10, y: 36, class: 'meta' }, n.health ? `${n.status} · ${n.health}` : n.status)));
  }
  return svg;
}

function topologyPage(ctx) {
  const graphEl = h('div', { class: 'topology-wrap', 'data-testid': 'topology' }, h('p', { class: 'muted' }, 'Loading…'));
  const edgesEl = h('div', { 'data-testid': 'topology-edges' });
  let started = 0;
  let applied = 0;
  const load = async () => {
    const mine = ++started;
    try {
      const graph = await api('/api/topology');
      if (!ctx.alive || mine < applied) return;
      applied = mine;
      const names = new Map(graph.nodes.map((n) => [n.id, n.name]));
      if (!graph.nodes.length) {
        graphEl.replaceChildren(empty(h('strong', {}, 'No agents are registered'), ' — an agent registers with ',
          code('koor register backend --parent <id of the agent that started it>'), ' and appears here at once.'));
      } else {
        graphEl.replaceChildren(...[topologySvg(graph),
          graph.truncated && h('p', { class: 'muted' }, 'Only part of the graph is shown (it is bounded).')].filter(Boolean));
      }
      edgesEl.replaceChildren(graph.edges.length
        ? table(['From', 'To', 'Kind', 'How it was seen', 'Count'], graph.edges.map((e) => h('tr', {},
          h('td', {}, names.get(e.from) || e.from), h('td', {}, names.get(e.to) || e.to),
          h('td', {}, badge(e.kind, 'source')), h('td', {}, e.via), h('td', { class: 'num' }, fmtInt(e.count)))))
        : empty('No links yet: agents started with a ', code('parent_id'), ', events one publishes and another subscribes to, tasks one creates and another completes, and lock waits show here.'));
    } catch (err) {
      if (!ctx.alive || mine < applied) return;
      applied = mine;
      if (!err.auth) graphEl.replaceChildren(errorBox(err));
    }
  };
  ctx.main.append(
    pageHead('Topology', 'Who started whom (solid) and who works with whom (dashed: events, bold: tasks, dotted: locks), live as agents come and go.'),
    card('Agents', { testid: 'topology-card', wide: true }, graphEl),
    card('Links', { testid: 'topology-links', wide: true }, edgesEl));
  load();
  const refresh = debounce(load, 100);
  ctx.onEvent((ev) => {
    if (INSTANCE_TOPIC.test(ev.topic) || ev.topic === 'koor.lagged') refresh();
  });
  ctx.every(TOPOLOGY_REFRESH_MS, load);
}

/* ------------------------------------------------------------------ */
/* 6j. Cluster                                                         */
/* ------------------------------------------------------------------ */

// Members prove they are alive every second and publish no event about it: look again
// every few seconds.
const CLUSTER_REFRESH_MS = 3000;
// A heartbeat older than this (three missed beats) is shown as a warning.
const CLUSTER_SILENT_MS = 3000;
const ROLE_BADGE = { leader: 'active', follower: 'pending', single: 'source' };

const roleBadge = (role) => badge(role, ROLE_BADGE[role] || 'source');
/** A unix-microseconds instant (as GET /api/cluster gives them) as an ISO string for timeAgo. */
const microsToIso = (us) => (Number.isFinite(us) ? new Date(us / 1000).toISOString() : null);

function clusterPage(ctx) {
  const el = h('div', { 'data-testid': 'cluster' }, h('p', { class: 'muted' }, 'Loading…'));
  const load = refresher(ctx, el, () => api('/api/cluster'), clusterView);
  ctx.main.append(
    pageHead('Cluster', 'The koor servers that share this database: the one that leads and writes, and those that follow.'),
    el);
  load();
  ctx.every(CLUSTER_REFRESH_MS, load);
}

function clusterView(c) {
  const single = c.role === 'single';
  const summary = card('This server', { testid: 'cluster-summary' }, kv([
    ['Role', roleBadge(c.role), 'cluster-role'],
    [single ? 'API address' : 'Leader', c.leader ? code(c.leader) : h('span', { class: 'muted' }, 'not known yet'), 'cluster-leader'],
    ['Epoch', single ? h('span', { class: 'muted' }, '— (no election)') : fmtInt(c.epoch), 'cluster-epoch'],
  ]));
  if (single) {
    return [summary, card('Members', { testid: 'cluster-members' }, h('div', { class: 'empty', 'data-testid': 'cluster-single' },
      h('strong', {}, 'This server runs alone'), ' (role ', code('single'), '): its data is in a SQLite file that no other server shares, so there is no leader to elect and no member to list. ',
      'Several koor servers on one PostgreSQL database form a cluster with a leader and followers; see “A cluster on PostgreSQL” in ',
      code('docs/deployment.md'), '.'))];
  }
  const members = c.members || [];
  const now = Date.now();
  return [summary, card('Members', { testid: 'cluster-members', wide: true },
    members.length
      ? table(['Member', 'URL', 'Role', 'Last heartbeat', 'Started'], members.map((m) => {
        // The dashboard is served by the leader, so the leader's row is this server.
        const here = c.role === 'leader' && m.role === 'leader';
        return h('tr', { 'data-testid': 'cluster-member', 'data-role': m.role, 'aria-current': here ? 'true' : null },
          h('td', {}, h('span', { class: 'mono' }, m.member), here && h('div', { class: 'muted small' }, 'this server')),
          h('td', {}, code(m.url)),
          h('td', {}, roleBadge(m.role)),
          h('td', { 'data-testid': 'cluster-member-seen', class: now - m.seen_at / 1000 > CLUSTER_SILENT_MS ? 'warn-text' : null },
            timeAgo(microsToIso(m.seen_at))),
          h('td', {}, timeAgo(microsToIso(m.started_at))));
      }), { class: 'dense' })
      : empty('No member has proven it is alive within the failover time; the list fills again as members heartbeat.'),
    h('p', { class: 'muted small' }, 'Each member proves it is alive every second. A leader silent for ', code('--failover-seconds'),
      ' is deposed by a follower, which raises the epoch; a member silent a little longer leaves this list.'))];
}

/* ------------------------------------------------------------------ */
/* 7. Boot                                                             */
/* ------------------------------------------------------------------ */

/**
 * Who this browser acts as (GET /api/whoami): its highest scope goes on <body data-scope>,
 * and the stylesheet hides every element whose data-needs is a scope it lacks (the Keys
 * page for all but admin). The server checks every request anyway.
 */
async function loadScope() {
  try {
    const me = await api('/api/whoami');
    const scopes = me.scopes || [];
    document.body.dataset.scope = scopes.includes('admin') ? 'admin' : scopes.includes('write') ? 'write' : 'read';
    document.body.dataset.principal = me.principal || '';
  } catch (err) {
    if (!err.auth) showError(err);
  }
}

/* ------------------------------------------------------------------ */
/* 6h. Keys (admin only)                                               */
/* ------------------------------------------------------------------ */

function keysPage(ctx) {
  if (document.body.dataset.scope && document.body.dataset.scope !== 'admin') {
    ctx.main.append(pageHead('Keys'), h('div', { class: 'empty', 'data-testid': 'keys-admin-only' }, 'Managing keys needs an admin credential.'));
    return;
  }
  const listEl = h('div', { 'data-testid': 'keys' }, h('p', { class: 'muted' }, 'Loading…'));
  const secretEl = h('div', { 'data-testid': 'key-secret-box' });
  const showSecret = (k, verb) => {
    secretEl.replaceChildren(h('section', { class: 'card', 'data-testid': 'key-secret' },
      h('h2', {}, `Key ${k.name} ${verb}`),
      h('p', {}, 'Copy the secret now: it is shown only once, and koor keeps only its digest.'),
      h('p', {}, code(k.key))));
  };
  const load = refresher(ctx, listEl, () => api('/api/keys'), (keys) => (keys.length
    ? table(['Name', 'Scopes', 'Projects', 'Rate limit', 'Expires', 'Last used', 'Created', ''], keys.map((k) => {
      const rotate = button('Rotate', async () => {
        const ok = await confirmAction({ title: `Rotate key ${k.name}?`, message: 'A new secret replaces the old one, which is refused from the next request on.', ok: 'Rotate' });
        if (ok) act(rotate, async () => { showSecret(await api(`/api/keys/${enc(k.id)}/rotate`, { method: 'POST' }), 'rotated'); load(); }, `Key ${k.name} rotated`);
      }, { class: 'btn small', 'data-testid': 'key-rotate' });
      const revoke = button('Revoke', async () => {
        const ok = await confirmAction({ title: `Revoke key ${k.name}?`, message: 'Every request with it is refused from now on.', ok: 'Revoke', danger: true });
        if (ok) act(revoke, () => api(`/api/keys/${enc(k.id)}`, { method: 'DELETE' }).then(load), `Key ${k.name} revoked`);
      }, { class: 'btn small ghost', 'data-testid': 'key-revoke' });
      return h('tr', { 'data-testid': 'key-row' },
        h('td', {}, h('strong', {}, k.name), h('div', { class: 'muted small mono' }, k.id)),
        h('td', {}, k.scopes.join(', ')),
        h('td', {}, k.projects ? k.projects.join(', ') : h('span', { class: 'muted' }, 'all')),
        h('td', {}, k.rate_limit != null ? `${k.rate_limit}/s` : h('span', { class: 'muted' }, 'server')),
        h('td', {}, k.expires_at ? timeAgo(k.expires_at) : h('span', { class: 'muted' }, 'never')),
        h('td', {}, k.last_used_at ? timeAgo(k.last_used_at) : h('span', { class: 'muted' }, '—')),
        h('td', {}, timeAgo(k.created_at)),
        h('td', { class: 'row-actions' }, rotate, revoke));
    }))
    : empty('No keys. Create one below, or with ', code('koor keys create NAME --scopes read'), '.')));

  const name = h('input', { name: 'name', required: true, placeholder: 'ci-reader', 'data-testid': 'key-form-name' });
  const scope = select('scope', [['read', 'read'], ['write', 'read, write'], ['admin', 'read, write, admin']], 'read', { 'data-testid': 'key-form-scope' });
  const projects = h('input', { name: 'projects', placeholder: 'all projects, or web, api' });
  const rate = h('input', { name: 'rate_limit', type: 'number', min: 0, step: 'any', placeholder: 'server limit' });
  const save = h('button', { type: 'submit', class: 'btn primary', 'data-testid': 'key-form-submit' }, 'Create key');
  const form = h('form', {
    class: 'form-grid',
    onsubmit: (e) => {
      e.preventDefault();
      const body = { name: name.value.trim(), scopes: [scope.value] };
      const ps = projects.value.split(',').map((x) => x.trim()).filter(Boolean);
      if (ps.length) body.projects = ps;
      if (rate.value) body.rate_limit = Number(rate.value);
      act(save, async () => { showSecret(await api('/api/keys', { method: 'POST', body }), 'created'); form.reset(); load(); }, `Key ${body.name} created`);
    },
  }, field('Name', name), field('Scope', scope), field('Projects', projects, 'Comma-separated; empty for every project.'),
  field('Rate limit (requests/s)', rate), h('div', { class: 'actions end' }, save));

  ctx.main.append(
    pageHead('Keys', 'Access keys: scoped credentials for agents, CI and people. See docs/security.md.'),
    secretEl, listEl, card('Create a key', { testid: 'key-add' }, form));
  load();
  ctx.onEvent((ev) => { if (ev.topic.startsWith('key.')) load(); });
}

async function startApp() {
  session.prompting = false;
  document.body.classList.remove('signed-out');
  $('#sign-out').hidden = !session.required;
  await loadScope();
  try {
    await stream.start();
  } catch (err) {
    if (err.auth) return;
    showError(err);
  }
  if (!session.prompting) render(false);
}

async function boot() {
  document.addEventListener('click', onLinkClick);
  window.addEventListener('popstate', () => render(true));
  $('#sign-out').addEventListener('click', () => session.signOut());
  setInterval(refreshRelativeTimes, 1000);
  const s = await session.check();
  session.required = Boolean(s.auth_required);
  if (s.auth_required && !s.authenticated) {
    session.prompt();
    return;
  }
  await startApp();
}

boot();
