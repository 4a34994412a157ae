// edgegate status page: polls GET /status and reads the live tail from
// GET /v1/events (Server-Sent Events, read with fetch so that the request
// carries the bearer token). Everything is written with textContent: no
// value from the gateway is ever parsed as HTML.
'use strict';

const $ = (id) => document.getElementById(id);
const KEY = 'edgegate.admin-token';
const POLL_MS = 2000;
const TAIL_MAX = 50;

let token = sessionStorage.getItem(KEY) || '';
let pollTimer = 0;
let prev = null;     // counters of the previous poll, for rates
let tail = null;     // AbortController of the live tail's request
let lastID = '';     // id of the last tail message, to resume after a drop
let paused = false;

class AuthError extends Error {}

function headers() {
  return token ? { Authorization: 'Bearer ' + token } : {};
}

async function api(path) {
  const r = await fetch(path, { headers: headers(), cache: 'no-store' });
  if (r.status === 401) throw new AuthError('token refused');
  if (!r.ok) throw new Error(path + ': HTTP ' + r.status);
  return r.json();
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function num(n) {
  return Number(n).toLocaleString('en');
}

function rate(r) {
  if (r === null || r === undefined || !isFinite(r)) return '–';
  return r < 10 ? r.toFixed(1) : Math.round(r).toLocaleString('en');
}

function age(s) {
  if (s === null || s === undefined) return '–';
  s = Math.max(0, Math.floor(s));
  if (s < 60) return s + 's';
  if (s < 3600) return Math.floor(s / 60) + 'm ' + (s % 60) + 's';
  if (s < 86400) return Math.floor(s / 3600) + 'h ' + Math.floor(s % 3600 / 60) + 'm';
  return Math.floor(s / 86400) + 'd ' + Math.floor(s % 86400 / 3600) + 'h';
}

function since(ts, now) {
  return ts ? age((Date.parse(now) - Date.parse(ts)) / 1000) : 'never';
}

function bytes(n) {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + ' ' + u[i];
}

// rates turns the counters of two polls into per-second rates, timed by
// the gateway's own clock.
function rates(st) {
  const cur = { t: Date.parse(st.now) / 1000, in: st.counters.events_ingested, out: st.counters.events_delivered, up: {} };
  for (const u of st.uplinks) cur.up[u.name] = u.delivered;
  let r = null;
  if (prev && cur.t > prev.t) {
    const dt = cur.t - prev.t;
    r = { in: (cur.in - prev.in) / dt, out: (cur.out - prev.out) / dt, up: {} };
    for (const name in cur.up) {
      if (name in prev.up) r.up[name] = (cur.up[name] - prev.up[name]) / dt;
    }
  }
  prev = cur;
  return r;
}

function render(st) {
  const r = rates(st);
  document.title = st.gateway_id + ' · edgegate';
  $('gateway').textContent = st.gateway_id;
  const ready = $('ready');
  ready.textContent = st.ready ? 'ready' : 'not ready';
  ready.className = 'badge ' + (st.ready ? 'ok' : 'bad');
  const nr = $('not-ready');
  nr.replaceChildren(...(st.not_ready || []).map((w) => el('li', '', w)));
  nr.hidden = st.ready;
  const cfg = st.config.hash ? 'config ' + st.config.hash.slice(0, 12) : 'config (not from a file)';
  $('meta').textContent = [
    st.version ? 'edgegate ' + st.version : 'edgegate',
    cfg + ', loaded ' + since(st.config.loaded_at, st.now) + ' ago' + (st.config.last_reload_ok ? '' : ' (last reload failed)'),
    'up ' + since(st.started_at, st.now),
  ].join(' · ');

  $('devices').textContent = num(st.mqtt_clients);
  $('rate-in').textContent = r ? rate(r.in) : '–';
  $('rate-out').textContent = r ? rate(r.out) : '–';
  let backlog = 0, oldest = 0;
  for (const u of st.uplinks) { backlog += u.backlog; oldest = Math.max(oldest, u.oldest_age_seconds); }
  // After an unclean stop the stored records are counted after startup:
  // until then the backlog is what has been counted so far.
  $('backlog').textContent = num(backlog) + (st.buffer && st.buffer.counting ? '+ (counting…)' : '');
  $('oldest').textContent = backlog ? age(oldest) : '–';
  $('dead-letters').textContent = num(st.dead_letters);

  renderUplinks(st, r);
  renderRules(st);
  renderClients(st);
  $('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
}

function renderUplinks(st, r) {
  const box = $('uplinks');
  box.replaceChildren(...st.uplinks.map((u) => {
    const card = el('div', 'card');
    card.dataset.uplink = u.name;
    const h = el('h3', '', u.name);
    h.append(el('span', 'state state-' + u.state, u.state));
    card.append(h);
    const dl = el('dl');
    const row = (k, v, cls) => { dl.append(el('dt', '', k), el('dd', cls, v)); };
    row('endpoint', u.type + (u.mode ? ' ' + u.mode : '') + ' ' + u.url, 'url');
    row('backlog', num(u.backlog) + ' (' + bytes(u.backlog_bytes) + ')', 'backlog');
    row('oldest waiting', u.oldest_age_seconds ? age(u.oldest_age_seconds) : '–', 'oldest');
    row('delivered', num(u.delivered) + (r && u.name in r.up ? ' · ' + rate(r.up[u.name]) + '/s' : ''), 'delivered');
    row('last success', u.last_success ? since(u.last_success, st.now) + ' ago' : 'never', 'last-success');
    if (u.last_error) {
      row('last error', since(u.last_failure, st.now) + ' ago' + (u.consecutive_failures ? ' (' + u.consecutive_failures + ' in a row)' : '') + ': ' + u.last_error, 'last-error');
    }
    row('dead-lettered', num(u.dead_lettered) + ' → ' + u.dead_letter_queue, 'dead-lettered');
    card.append(dl);
    return card;
  }));
}

function renderRules(st) {
  const body = $('rules').tBodies[0];
  body.replaceChildren(...st.rules.map((x) => {
    const tr = el('tr');
    tr.dataset.rule = x.name;
    tr.append(el('td', '', x.name), el('td', 'n', num(x.evaluations)), el('td', 'n matches', num(x.matches)), el('td', 'n', num(x.errors)));
    return tr;
  }));
  $('rules').hidden = st.rules.length === 0;
  $('no-rules').hidden = st.rules.length !== 0;
}

function renderClients(st) {
  const body = $('clients').tBodies[0];
  body.replaceChildren(...st.clients.map((c) => {
    const tr = el('tr');
    tr.dataset.client = c.client_id;
    const id = el('td', '', c.client_id);
    id.append(el('small', '', c.username ? c.username + ' (' + c.auth + ')' : c.auth));
    const from = el('td', '', c.remote_addr);
    from.append(el('small', '', c.listener + ' · MQTT ' + (c.protocol_version === 5 ? '5' : '3.1.1')));
    tr.append(id, from, el('td', '', since(c.connected_since, st.now)));
    return tr;
  }));
  const more = st.mqtt_clients - st.clients.length;
  $('devices-more').textContent = more > 0 ? '(first ' + st.clients.length + ' of ' + num(st.mqtt_clients) + ')' : '';
}

async function poll() {
  clearTimeout(pollTimer);
  pollTimer = 0;
  try {
    render(await api('/status?clients=50'));
    $('main').hidden = false;
    $('error').hidden = true;
  } catch (e) {
    if (e instanceof AuthError) { needToken(); return; }
    $('error').textContent = 'cannot reach the gateway: ' + e.message;
    $('error').hidden = false;
  }
  if (!document.hidden && !pollTimer) pollTimer = setTimeout(poll, POLL_MS);
}

// The live tail.

function tailState(s) {
  $('tail-state').textContent = s;
}

function stopTail() {
  if (tail) { tail.abort(); tail = null; }
}

async function runTail() {
  stopTail();
  if (paused || document.hidden) { tailState(paused ? 'paused' : ''); return; }
  const ctrl = new AbortController();
  tail = ctrl;
  const h = headers();
  if (lastID) h['Last-Event-ID'] = lastID;
  tailState('connecting…');
  try {
    const r = await fetch('/v1/events?q=' + encodeURIComponent($('filter').value.trim()), { headers: h, signal: ctrl.signal, cache: 'no-store' });
    if (r.status === 401) { needToken(); return; }
    if (!r.ok) throw new Error('HTTP ' + r.status);
    tailState('live');
    const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        onMessage(buf.slice(0, i));
        buf = buf.slice(i + 2);
      }
    }
    tailState('reconnecting…');
  } catch (e) {
    if (ctrl.signal.aborted) return;
    tailState('disconnected (' + e.message + '), retrying…');
  }
  setTimeout(() => { if (tail === ctrl) runTail(); }, 2000);
}

function onMessage(block) {
  let event = 'message', data = '', id = '';
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) continue;
    const i = line.indexOf(':');
    const field = i < 0 ? line : line.slice(0, i);
    const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
    if (field === 'event') event = value;
    else if (field === 'data') data += value;
    else if (field === 'id') id = value;
  }
  if (id) lastID = id;
  if (!data) return;
  const m = JSON.parse(data);
  if (event === 'event') addEvent(m);
  else if (event === 'skipped') addLine(el('li', 'skipped', '… ' + num(m.skipped) + ' more events not shown (rate limit)'));
}

function addEvent(m) {
  const e = m.event;
  const dead = m.queues.some((q) => q.startsWith('deadletter.'));
  const li = el('li', dead ? 'dead' : '');
  li.append(el('span', 't', new Date(m.stored).toLocaleTimeString() + ' '));
  li.append(document.createTextNode([e.type, e.subject || e.source, m.queues.join(', ')].join(' · ')));
  let d = '';
  if (m.data_omitted) d = '(' + bytes(m.data_omitted) + ' of data, not shown)';
  else if (e.data_base64 !== undefined) d = '(' + e.datacontenttype + ', ' + bytes(Math.floor(e.data_base64.length * 3 / 4)) + ')';
  else if (e.data !== undefined) d = JSON.stringify(e.data);
  if (e.edgegateerror) d = 'error: ' + e.edgegateerror + (d ? ' · ' + d : '');
  if (d) li.append(el('span', 'd', d.length > 200 ? d.slice(0, 200) + '…' : d));
  addLine(li);
}

function addLine(li) {
  const list = $('tail');
  list.prepend(li);
  while (list.children.length > TAIL_MAX) list.lastElementChild.remove();
}

// Authentication and lifecycle.

function needToken() {
  if (!$('login').hidden) return; // asked already (the poll and the tail both hear 401)
  stopTail();
  clearTimeout(pollTimer);
  $('main').hidden = true;
  $('login-error').hidden = !token;
  $('login-error').textContent = token ? 'That token was refused.' : '';
  token = '';
  sessionStorage.removeItem(KEY);
  $('login').hidden = false;
  $('token').focus();
}

function start() {
  $('login').hidden = true;
  $('logout').hidden = !token;
  poll();
  runTail();
}

function init() {
  $('login').addEventListener('submit', (ev) => {
    ev.preventDefault();
    token = $('token').value.trim();
    $('token').value = '';
    sessionStorage.setItem(KEY, token);
    start();
  });
  $('logout').addEventListener('click', () => {
    sessionStorage.removeItem(KEY);
    token = '';
    location.reload();
  });
  let debounce = 0;
  $('filter').addEventListener('input', () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => {
      lastID = '';
      $('tail').replaceChildren();
      runTail();
    }, 300);
  });
  $('pause').addEventListener('click', () => {
    paused = !paused;
    $('pause').textContent = paused ? 'Resume' : 'Pause';
    runTail(); // resumes after the last event shown
  });
  document.addEventListener('visibilitychange', () => {
    if (document.hidden) {
      clearTimeout(pollTimer);
      pollTimer = 0;
      stopTail();
      tailState('');
    } else if ($('login').hidden) {
      prev = null;
      poll();
      runTail();
    }
  });
  start();
}

init();
