// The operator console: plain ES module, no build step. The join challenge is drawn with modules/challenge
// (served as /console/challenge.js, bundled from the same source the device uses): gridRgb for the cell
// colours in the device's palette, blinkSchedule + blinkAt for the blinking dot.
import { blinkAt, blinkSchedule, gridRgb } from './challenge.js';

const $ = (sel, root = document) => root.querySelector(sel);
const field = (form, name) => form.elements.namedItem(name);
const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);

const STATUS = {
  0x00: 'download ok', 0xfc: 'HTTP error', 0xfd: 'server unreachable', 0xfe: 'file error', 0xff: 'digest mismatch',
  0x10: 'activated, confirmed', 0x1f: 'activation failed', 0x20: 'action done', 0x2e: 'unknown action', 0x2f: 'action failed',
  0x50: 'join accepted', 0x5e: 'join refused', 0x5f: 'join failed', 0x60: 'observation valid', 0x6e: 'observation invalid', 0x6f: 'observation failed',
};
const hex2 = (n) => '0x' + n.toString(16).padStart(2, '0').toUpperCase();
const statusText = (n) => (n === null || n === undefined ? '' : `${hex2(n)} ${STATUS[n] ?? ''}`.trim());
// A reference (pySRUP) device answers neither actions nor activates: say so instead of showing a status.
const actionText = (n) => (n === null ? 'sent (the device does not answer actions)' : statusText(n));
const PROFILE = { srup: 'SRUP agent', reference: 'reference (pySRUP): answers neither actions nor activates' };
const time = (ms) => (ms ? new Date(ms).toLocaleTimeString() : '—');

let csrf = null;
let state = null;
let selectedDevice = null;
const chosen = new Set();
let refreshTimer = null;
let events = null;
let listRendered = false;

// ------------------------------------------------------------------------------------------------ API

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(method, path, body, raw = false) {
  const headers = {};
  if (method !== 'GET' && csrf) headers['X-CSRF-Token'] = csrf;
  let payload;
  if (raw) { payload = body; headers['Content-Type'] = 'application/octet-stream'; }
  else if (body !== undefined) { payload = JSON.stringify(body); headers['Content-Type'] = 'application/json'; }
  const res = await fetch(path, { method, headers, body: payload, credentials: 'same-origin' });
  const data = await res.json().catch(() => ({}));
  if (res.status === 401 && path !== '/api/login') { showLogin(); throw new ApiError(401, 'please log in again'); }
  if (!res.ok) throw new ApiError(res.status, data.error || res.statusText);
  return data;
}

function flash(msg, isError = false) {
  const f = $('#flash');
  f.textContent = msg;
  f.className = isError ? 'error' : '';
}

async function act(what, fn) {
  try {
    const r = await fn();
    flash(typeof r === 'string' ? r : `${what}: done`);
    scheduleRefresh(0);
    return r;
  } catch (e) {
    flash(`${what}: ${e.message}`, true);
    return undefined;
  }
}

// ------------------------------------------------------------------------------------------------ login

function showLogin() {
  csrf = null;
  if (events) { events.close(); events = null; }
  $('#main').hidden = true;
  $('#logout').hidden = true;
  $('#login').hidden = false;
  $('#token').focus();
}

async function showMain() {
  $('#login').hidden = true;
  $('#main').hidden = false;
  $('#logout').hidden = false;
  await refresh();
  connectEvents();
}

/** First load: the state answers both "am I logged in?" and "what is there?" in one request. */
async function start() {
  try {
    const s = await fetch('/api/state', { credentials: 'same-origin' });
    if (s.status === 401) return showLogin();
    if (!s.ok) throw new Error(s.statusText);
    state = await s.json();
    csrf = state.session ? state.session.csrf : null;
    $('#login').hidden = true;
    $('#main').hidden = false;
    $('#logout').hidden = false;
    render();
    connectEvents();
    loadAudit().catch(() => undefined);
  } catch (e) {
    showLogin();
    $('#login-error').textContent = `cannot reach the server: ${e.message}`;
  }
}

$('#login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  $('#login-error').textContent = '';
  try {
    const r = await api('POST', '/api/login', { token: $('#token').value });
    csrf = r.csrf;
    $('#token').value = '';
    await showMain();
  } catch (e) {
    $('#login-error').textContent = e.status === 401 ? 'Wrong token.' : e.message;
  }
});

$('#logout').addEventListener('click', async () => {
  await api('POST', '/api/logout').catch(() => undefined);
  showLogin();
});

// ------------------------------------------------------------------------------------------------ live updates

function connectEvents() {
  if (events) events.close();
  events = new EventSource('/api/events');
  const onEvent = () => scheduleRefresh(120);
  // After a reconnect (server restart, network) whatever changed meanwhile is fetched at once.
  events.onopen = () => scheduleRefresh(0);
  for (const kind of ['c2', 'devices', 'campaign']) events.addEventListener(kind, onEvent);
  events.onerror = () => {
    // EventSource reconnects by itself; a 401 ends it, so check the session.
    if (events && events.readyState === EventSource.CLOSED) api('GET', '/api/session').then(() => setTimeout(connectEvents, 2000), () => undefined);
  };
}

function scheduleRefresh(ms) {
  if (refreshTimer !== null) return;
  refreshTimer = setTimeout(() => { refreshTimer = null; refresh().catch(() => undefined); }, ms);
}

async function refresh() {
  state = await api('GET', '/api/state');
  render();
  if (selectedDevice) loadDevice(selectedDevice).catch(() => undefined);
  loadAudit().catch(() => undefined);
}

// ------------------------------------------------------------------------------------------------ rendering

function render() {
  const s = state;
  $('#server').textContent = `server ${s.server.id}`;
  const b = $('#broker');
  b.textContent = s.server.connected ? 'broker connected' : 'broker offline';
  b.className = 'pill ' + (s.server.connected ? 'up' : 'down');
  renderDevices(s.devices);
  renderJoins(s.joins);
  renderCampaigns(s.campaigns);
}

function renderDevices(devices) {
  $('#devices-count').textContent = `(${devices.length})`;
  const known = new Set(devices.filter((d) => d.state === 'joined').map((d) => d.id));
  for (const id of [...chosen]) if (!known.has(id)) chosen.delete(id);
  const rows = new Array(devices.length);
  for (let i = 0; i < devices.length; i++) {
    const d = devices[i];
    const fw = (d.firmwareName ? `${esc(d.firmwareName)} ${esc(d.firmwareVersion ?? '')}` : '') +
      (d.profile === 'reference' ? ' <span class="pill profile" title="answers neither actions nor activates">reference</span>' : '');
    const lr = d.lastResponse ? `${statusText(d.lastResponse.status)} <span class="muted">${time(d.lastResponse.at)}</span>` : '';
    const can = d.state === 'joined';
    rows[i] = `<tr data-id="${d.id}" data-state="${d.state}"${d.id === selectedDevice ? ' class="selected"' : ''}>` +
      `<td>${can ? `<span class="pick" role="checkbox" tabindex="0" aria-label="select ${d.id}" aria-checked="${chosen.has(d.id)}"></span>` : ''}</td>` +
      `<td class="id"><a href="#device-panel" class="open">${d.id}</a></td><td>${esc(d.label)}</td>` +
      `<td><span class="state state-${d.state}">${d.state}</span></td><td>${fw}</td><td>${time(d.lastSeen)}</td><td>${lr}</td></tr>`;
  }
  const tbody = $('#devices tbody');
  tbody.innerHTML = rows.join('');
  $('#selected-count').textContent = String(chosen.size);
  if (!listRendered) {
    // For the benchmark: when the device list was first on screen (after layout), from navigation start.
    listRendered = true;
    void tbody.offsetHeight;
    performance.mark('c2-devices-rendered');
  }
}

$('#devices tbody').addEventListener('click', (ev) => {
  const tr = ev.target.closest('tr');
  if (!tr) return;
  const id = tr.dataset.id;
  if (ev.target.classList.contains('pick')) {
    togglePick(ev.target, id);
    return;
  }
  if (ev.target.classList.contains('open')) {
    ev.preventDefault();
    openDevice(id);
  }
});

$('#devices tbody').addEventListener('keydown', (ev) => {
  if (!ev.target.classList.contains('pick') || (ev.key !== ' ' && ev.key !== 'Enter')) return;
  ev.preventDefault();
  togglePick(ev.target, ev.target.closest('tr').dataset.id);
});

// Row selection: light elements rather than 1,000 form controls, so a big list renders fast.
function togglePick(el, id) {
  const on = !chosen.has(id);
  if (on) chosen.add(id); else chosen.delete(id);
  el.setAttribute('aria-checked', String(on));
  $('#selected-count').textContent = String(chosen.size);
}

$('#select-all').addEventListener('change', (ev) => {
  chosen.clear();
  if (ev.target.checked) for (const d of state.devices) if (d.state === 'joined') chosen.add(d.id);
  renderDevices(state.devices);
});

// --- pending joins, with the challenge

const blinkers = new Map(); // device id -> { schedule, start, led, digits }
let blinkFrame = null;
let joinsKey = '';

function renderJoins(joins) {
  $('#joins-count').textContent = joins.length ? `(${joins.length})` : '';
  $('#joins-empty').hidden = joins.length > 0;
  // Rebuild only when the set of joins (or a challenge) changed, so the blinking keeps its phase.
  const key = joins.map((j) => `${j.id}:${j.requestedAt}:${j.expiresAt}:${j.joinKind}:${j.challenge ? j.challenge.blink + j.challenge.grid.join('') : ''}:${j.observer}`).join('|');
  if (key === joinsKey) return;
  joinsKey = key;
  const box = $('#joins');
  box.textContent = '';
  blinkers.clear();
  for (const j of joins) box.appendChild(joinCard(j));
  if (blinkers.size > 0 && blinkFrame === null) blinkFrame = requestAnimationFrame(tick);
}

function joinCard(j) {
  const card = document.createElement('div');
  card.className = 'join';
  card.dataset.id = j.id;
  card.dataset.kind = j.joinKind ?? '';
  const kind = { human: 'human-moderated join', observed: 'observed join', simple: 'join request' }[j.joinKind] ?? 'join';
  card.innerHTML = `<h3>${j.id}</h3><div class="muted">${esc(kind)}${j.label ? ' · ' + esc(j.label) : ''}</div>` +
    `<div class="muted age" data-requested="${Number(j.requestedAt)}" data-expires="${j.expiresAt === null ? '' : Number(j.expiresAt)}"></div>`;
  if (j.challenge) {
    const c = j.challenge;
    const grid = document.createElement('div');
    grid.className = 'grid';
    grid.setAttribute('role', 'img');
    grid.setAttribute('aria-label', 'join challenge grid');
    grid.dataset.palette = c.palette.name;
    const rgb = gridRgb(c.grid, c.palette);
    for (let i = 0; i < 64; i++) {
      const cell = document.createElement('div');
      cell.className = 'cell';
      cell.dataset.index = String(i);
      cell.dataset.colour = String(c.grid[i]);
      cell.title = c.palette.colours[c.grid[i]].name;
      cell.style.backgroundColor = `rgb(${rgb[3 * i]}, ${rgb[3 * i + 1]}, ${rgb[3 * i + 2]})`;
      grid.appendChild(cell);
    }
    card.appendChild(grid);
    const legend = document.createElement('div');
    legend.className = 'legend';
    legend.textContent = c.palette.colours.map((x) => `${x.symbol} ${x.name}`).join(' · ');
    card.appendChild(legend);
    const blink = document.createElement('div');
    blink.className = 'blink';
    blink.innerHTML = `<span class="led" aria-hidden="true"></span><span class="digits" data-blink="${c.blink}">${c.blink.split('').join(' ')}</span>`;
    card.appendChild(blink);
    blinkers.set(j.id, { schedule: blinkSchedule(c.blink), start: performance.now(), led: blink.querySelector('.led') });
    const hint = document.createElement('p');
    hint.className = 'muted';
    hint.textContent = j.joinKind === 'observed'
      ? `Observer ${j.observer ?? '?'} was asked to confirm that this device shows this; its verdict decides the join.`
      : 'Approve only if the device shows this grid (or blinks this code).';
    card.appendChild(hint);
  } else if (j.joinKind === 'observed') {
    const p = document.createElement('p');
    p.innerHTML = `Observer <code>${esc(j.observer ?? '?')}</code> was asked to confirm this device; its verdict decides the join.`;
    card.appendChild(p);
  } else if (j.joinKind === 'human') {
    card.insertAdjacentHTML('beforeend', '<p class="muted">Sending the challenge…</p>');
  }
  const buttons = document.createElement('div');
  buttons.className = 'buttons';
  buttons.innerHTML = '<button type="button" class="primary approve">Approve</button><button type="button" class="danger refuse">Refuse</button>';
  buttons.querySelector('.approve').addEventListener('click', () => act(`approve ${j.id}`, () => api('POST', `/api/devices/${j.id}/approve`, {})));
  buttons.querySelector('.refuse').addEventListener('click', () => act(`refuse ${j.id}`, () => api('POST', `/api/devices/${j.id}/refuse`, {})));
  card.appendChild(buttons);
  updateAge(card, Date.now());
  return card;
}

// Each pending join's age and expiry, once a second; an expired join loses its Approve button (the device
// has given up and would refuse the acceptance; the server fails the join and the card goes away).
function span(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
}

function updateAge(card, now) {
  const el = card.querySelector('.age');
  if (!el) return;
  const requested = Number(el.dataset.requested);
  const expires = el.dataset.expires === '' ? null : Number(el.dataset.expires);
  const expired = expires !== null && now >= expires;
  el.textContent = `asked ${span(now - requested)} ago` + (expires === null ? '' : expired ? ', expired: the device no longer waits' : `, expires in ${span(expires - now)}`);
  card.classList.toggle('expired', expired);
  const approve = card.querySelector('.approve');
  if (approve) approve.hidden = expired;
}

setInterval(() => {
  const now = Date.now();
  for (const card of document.querySelectorAll('#joins .join')) updateAge(card, now);
}, 1000);

function tick(now) {
  for (const b of blinkers.values()) {
    const on = blinkAt(b.schedule, Math.max(0, now - b.start));
    if (b.led.classList.contains('on') !== on) b.led.classList.toggle('on', on);
  }
  blinkFrame = blinkers.size > 0 ? requestAnimationFrame(tick) : null;
}

// --- campaigns

function renderCampaigns(campaigns) {
  const box = $('#campaigns');
  box.innerHTML = campaigns.map((c) => {
    const staged = c.targets.filter((t) => t.state === 'staged').length;
    const rows = c.targets.map((t) => {
      const status = t.state === 'activated' && t.status === null ? 'activated (the device does not confirm)'
        : t.status !== null ? statusText(t.status) : t.failure ? t.failure.replace('_', ' ') : t.error ? esc(t.error) : '';
      const btn = t.state === 'staged' ? `<button type="button" class="activate-one" data-device="${t.device}">Activate</button>`
        : t.state === 'failed' || t.state === 'error' ? `<button type="button" class="retry-one" data-device="${t.device}">Retry</button>`
        : t.activate && t.state === 'initiated' ? '<span class="muted">activates when ready</span>' : '';
      return `<tr data-device="${t.device}" data-state="${t.state}" data-status="${t.status ?? ''}"><td class="id">${t.device}</td>` +
        `<td><span class="state state-${t.state}">${t.state.replace('_', ' ')}</span></td><td class="status">${status}</td><td>${time(t.updatedAt)}</td><td>${btn}</td></tr>`;
    }).join('');
    const counts = Object.entries(c.counts).map(([k, v]) => `${v} ${k.replace('_', ' ')}`).join(', ');
    return `<div class="campaign" data-id="${c.id}"><h3>#${c.id} ${esc(c.name)}</h3>` +
      `<div class="muted">sha256 <code>${c.digest}</code>${c.size !== null ? ` · ${c.size} bytes` : ''}${c.autoActivate ? ' · automatic activation' : ''}</div>` +
      `<div class="muted">url <code>${esc(c.url)}</code></div><div>${esc(counts)} · <span class="done">${c.done} of ${c.targets.length} done</span></div>` +
      `<table><thead><tr><th>Device</th><th>State</th><th>Status</th><th>Updated</th><th></th></tr></thead><tbody>${rows}</tbody></table>` +
      `<div class="buttons"><button type="button" class="activate-all"${staged ? '' : ' disabled'}>Activate all ready (${staged})</button></div></div>`;
  }).join('');
}

$('#campaigns').addEventListener('click', (ev) => {
  const card = ev.target.closest('.campaign');
  if (!card) return;
  const id = card.dataset.id;
  if (ev.target.classList.contains('activate-one')) {
    const d = ev.target.dataset.device;
    act(`activate ${d}`, () => api('POST', `/api/campaigns/${id}/activate`, { devices: [d] }));
  } else if (ev.target.classList.contains('retry-one')) {
    const d = ev.target.dataset.device;
    act(`retry ${d}`, () => api('POST', `/api/campaigns/${id}/retry`, { devices: [d] }));
  } else if (ev.target.classList.contains('activate-all')) {
    act(`activate campaign ${id}`, () => api('POST', `/api/campaigns/${id}/activate`, {}));
  }
});

$('#campaign-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = ev.target;
  const devices = [...chosen];
  const file = field(f, 'file').files[0];
  const url = field(f, 'url').value.trim();
  if (devices.length === 0) return flash('Select the joined devices to update in the device list first.', true);
  if (!file && !url) return flash('Choose an image file or give a URL.', true);
  if (file && url) return flash('Choose either a file or a URL, not both.', true);
  await act('campaign', async () => {
    const body = { name: field(f, 'name').value, devices, autoActivate: field(f, 'autoActivate').checked };
    if (file) {
      flash(`uploading ${file.name}…`);
      const img = await api('POST', '/api/images', file, true);
      body.file = img.file;
      if (!field(f, 'name').value) body.name = file.name;
    } else body.url = url;
    const c = await api('POST', '/api/campaigns', body);
    f.reset();
    return `campaign #${c.id} started on ${c.targets.length} device(s)`;
  });
});

// --- one device

async function openDevice(id) {
  selectedDevice = id;
  $('#device-panel').hidden = false;
  renderDevices(state.devices);
  await loadDevice(id);
  $('#device-panel').scrollIntoView({ block: 'nearest' });
}

async function loadDevice(id) {
  const d = await api('GET', `/api/devices/${id}`);
  if (selectedDevice !== id) return;
  $('#dp-id').textContent = d.id;
  const info = [
    ['State', d.state], ['Profile', PROFILE[d.profile] ?? d.profile], ['Join', d.joinKind ?? '—'], ['Label', d.label ?? '—'], ['Palette', d.palette],
    ['Firmware', d.identification ?? '—'], ['Last seen', time(d.lastSeen)],
    ['Last response', d.lastResponse ? `${statusText(d.lastResponse.status)} at ${time(d.lastResponse.at)}` : '—'],
  ];
  $('#dp-info').innerHTML = info.map(([k, v]) => `<dt>${k}</dt><dd>${esc(v)}</dd>`).join('');
  const joined = d.state === 'joined';
  for (const el of document.querySelectorAll('#device-panel form button, #dp-id-request, #dp-terminate, #dp-deregister')) el.disabled = !joined;
  $('#dp-join-command').disabled = joined;
  $('#dp-readings tbody').innerHTML = d.data.length === 0
    ? '<tr><td colspan="4" class="muted">no data yet</td></tr>'
    : d.data.map((r) => `<tr data-id="${esc(r.dataId)}"><td>${esc(r.dataId)}</td><td class="value">${esc(r.text)} <span class="muted">${r.kind}</span></td><td>${time(r.at)}</td><td>${sparkline(r.history)}</td></tr>`).join('');
  $('#dp-audit tbody').innerHTML = d.audit.map((a) =>
    `<tr><td>${time(a.at)}</td><td>${a.direction === 'in' ? '←' : '→'}</td><td>${a.type}</td><td>${a.sequenceId}</td><td>${statusText(a.status)}</td></tr>`).join('');
}

/** A small trend line (SVG) of numeric readings, oldest on the left; empty for fewer than two. */
function sparkline(history) {
  if (history.length < 2) return '';
  const w = 120, h = 24;
  const vs = history.map((p) => p.value);
  const lo = Math.min(...vs), hi = Math.max(...vs);
  const span = hi - lo || 1;
  const pts = vs.map((v, i) => `${((i / (vs.length - 1)) * w).toFixed(1)},${(h - 2 - ((v - lo) / span) * (h - 4)).toFixed(1)}`).join(' ');
  return `<svg class="trend" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" role="img" aria-label="trend of ${vs.length} readings from ${lo} to ${hi}"><polyline points="${pts}"/></svg>`;
}

$('#dp-close').addEventListener('click', () => {
  selectedDevice = null;
  $('#device-panel').hidden = true;
  renderDevices(state.devices);
});

$('#dp-action').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const id = selectedDevice;
  const actionId = Number(field(ev.target, 'actionId').value);
  act(`action ${actionId}`, async () => {
    const r = await api('POST', `/api/devices/${id}/action`, { actionId });
    return `action ${actionId} on ${id}: ${actionText(r.status)}`;
  });
});

$('#dp-data').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const id = selectedDevice;
  const f = ev.target;
  act('data', () => api('POST', `/api/devices/${id}/data`, { dataId: field(f, 'dataId').value, kind: field(f, 'kind').value, value: field(f, 'value').value }));
});

$('#dp-id-request').addEventListener('click', () => {
  const id = selectedDevice;
  act('ID request', async () => {
    const r = await api('POST', `/api/devices/${id}/id`, {});
    return `${id} identifies as "${r.identification}"`;
  });
});

$('#dp-join-command').addEventListener('click', () => {
  const id = selectedDevice;
  act('join command', () => api('POST', `/api/devices/${id}/join-command`, {}));
});

for (const [btn, path, word] of [['#dp-terminate', 'terminate', 'Terminate'], ['#dp-deregister', 'deregister', 'Deregister']]) {
  $(btn).addEventListener('click', () => {
    const id = selectedDevice;
    if (!confirm(`${word} device ${id}? It will stop obeying this server.`)) return;
    act(`${path} ${id}`, () => api('POST', `/api/devices/${id}/${path}`, {}));
  });
}

// --- registering devices

$('#add-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const f = ev.target;
  let id = field(f, 'id').value.trim();
  let key = field(f, 'key').value.trim();
  if (key.startsWith('{')) {
    // The device.json that `srup provision` writes: { id, publicKey, ... }
    let j;
    try {
      j = JSON.parse(key);
    } catch { return flash('The provisioning JSON does not parse.', true); }
    if (typeof j.publicKey !== 'string') return flash('The provisioning JSON has no "publicKey".', true);
    if (typeof j.id !== 'string' || !/^[0-9a-fA-F]{1,16}$/.test(j.id)) return flash('The provisioning JSON has no device "id".', true);
    if (id && BigInt('0x' + id) !== BigInt('0x' + j.id)) return flash(`The ID ${id} is not the one in the provisioning JSON (${j.id}).`, true);
    key = j.publicKey;
    id = j.id;
  }
  if (!id) return flash('Give the device ID (or paste the provisioning JSON).', true);
  act(`register ${id}`, async () => {
    await api('POST', '/api/devices', { id, publicKey: key, label: field(f, 'label').value, palette: field(f, 'palette').value, profile: field(f, 'profile').value || undefined });
    f.reset();
    return `device ${id} registered`;
  });
});

// --- audit

let auditShown = 0;
async function loadAudit() {
  const r = await api('GET', '/api/audit?limit=50');
  const top = r.audit.length ? r.audit[0].seq : 0;
  if (top === auditShown) return;
  auditShown = top;
  $('#audit tbody').innerHTML = r.audit.map((a) =>
    `<tr><td>${a.seq}</td><td>${time(a.at)}</td><td>${a.direction === 'in' ? '←' : '→'}</td><td class="id">${a.device}</td><td>${a.type}</td><td>${a.sequenceId}</td><td>${statusText(a.status)}</td></tr>`).join('');
}

// ------------------------------------------------------------------------------------------------ start

start();
