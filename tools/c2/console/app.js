// The operator console: plain ES module, no build step, no framework. One page with hash-routed views
// (#/devices, #/devices/<id>, #/joins, #/campaigns, #/campaigns/<id>, #/images, #/audit, #/operators); each view
// loads only what it shows (the device list and the audit a page at a time), so it stays fast with ten thousand
// devices. The result of an action is written next to the control that asked for it.
// The join challenge is drawn with modules/challenge (served as /console/challenge.js, bundled from the same
// source the device uses): gridRgb for the cell colours in the device's palette, blinkSchedule + blinkAt for the
// blinking dot.
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

// ------------------------------------------------------------------------------------------------ times

const pad = (n) => String(n).padStart(2, '0');
const startOfToday = () => { const d = new Date(); d.setHours(0, 0, 0, 0); return d.getTime(); };
const dateText = (d) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
const clockText = (d) => `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
/** A time: the clock for today, the date and clock for anything older (so no time is ever ambiguous). */
function when(ms) {
  if (!ms) return '—';
  const d = new Date(ms);
  return ms >= startOfToday() ? clockText(d) : `${dateText(d)} ${clockText(d).slice(0, 5)}`;
}
/** How long ago, with the date when it was before today: "42 s ago", "3 h ago", "2 d ago · 2026-11-30 14:02". */
function ago(ms, now = Date.now()) {
  if (!ms) return 'never';
  const s = Math.max(0, Math.round((now - ms) / 1000));
  const rel = s < 60 ? `${s} s ago` : s < 3600 ? `${Math.floor(s / 60)} min ago` : s < 86400 ? `${Math.floor(s / 3600)} h ago` : `${Math.floor(s / 86400)} d ago`;
  return ms >= startOfToday() ? rel : `${rel} · ${when(ms)}`;
}
const fullTime = (ms) => (ms ? `${dateText(new Date(ms))} ${clockText(new Date(ms))}` : '');
const bytes = (n) => (n === null || n === undefined ? '' : n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1048576).toFixed(1)} MiB`);

// ------------------------------------------------------------------------------------------------ API

let csrf = null;
let overview = null;
let events = null;
let refreshTimer = null;
const chosen = new Set(); // devices selected for a campaign, across pages

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
  if (!res.ok) throw new ApiError(res.status, res.status === 404 && !data.error ? 'not available on this server' : data.error || res.statusText);
  return data;
}

/** An endpoint a server may not have yet: null when it answers 404 or 405 for the route itself. */
async function optional(method, path, body) {
  try {
    return await api(method, path, body);
  } catch (e) {
    if ((e.status === 404 || e.status === 405) && /^(not found|method not allowed|not available on this server)$/.test(e.message)) return null;
    throw e;
  }
}
const unavailable = (e) => (e.status === 404 || e.status === 405) && /^(not found|method not allowed|not available on this server)$/.test(e.message);

function flash(msg, isError = false) {
  const f = $('#flash');
  f.textContent = msg;
  f.className = isError ? 'error' : '';
}

/**
 * Runs an action and writes its outcome into `out` (the output element next to the control), or into the page's
 * flash line when there is none. A route the server does not have shows as "not available on this server".
 */
async function act(what, fn, out = null) {
  const show = (msg, isError) => {
    if (out) { out.textContent = msg; out.className = 'result ' + (isError ? 'error' : 'ok'); }
    else flash(msg, isError);
  };
  if (out) { out.textContent = `${what}…`; out.className = 'result busy'; }
  try {
    const r = await fn();
    show(typeof r === 'string' ? r : `${what}: done`, false);
    scheduleRefresh(0);
    return r;
  } catch (e) {
    show(`${what}: ${unavailable(e) ? 'not available on this server' : e.message}`, true);
    return undefined;
  }
}

function note(el, text) {
  el.hidden = !text;
  el.textContent = text || '';
}

// ------------------------------------------------------------------------------------------------ login

function showLogin() {
  csrf = null;
  if (events) { events.close(); events = null; }
  $('#main').hidden = true;
  $('#tabs').hidden = true;
  $('#logout').hidden = true;
  $('#login').hidden = false;
  $('#token').focus();
}

function showMain() {
  $('#login').hidden = true;
  $('#main').hidden = false;
  $('#tabs').hidden = false;
  $('#logout').hidden = false;
}

/** First load: the overview answers both "am I logged in?" and the header's contents; the view loads alongside. */
async function start() {
  try {
    const viewLoad = route();
    const o = await fetch('/api/overview', { credentials: 'same-origin' });
    if (o.status === 401) return showLogin();
    if (!o.ok) throw new Error(o.statusText);
    overview = await o.json();
    csrf = overview.session ? overview.session.csrf : null;
    showMain();
    renderOverview();
    connectEvents();
    await viewLoad;
    loadWho();
  } catch (e) {
    showLogin();
    $('#login-error').textContent = `cannot reach the server: ${e.message}`;
  }
}

async function loadWho() {
  const s = await api('GET', '/api/session').catch(() => null);
  $('#operator').textContent = s && s.operator ? `operator ${s.operator}` : '';
}

$('#login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  $('#login-error').textContent = '';
  const operator = $('#login-operator').value.trim();
  const secret = $('#token').value;
  try {
    const r = await api('POST', '/api/login', operator ? { operator, password: secret } : { token: secret });
    csrf = r.csrf;
    $('#token').value = '';
    showMain();
    await refreshAll();
    connectEvents();
    loadWho();
  } catch (e) {
    $('#login-error').textContent = e.status === 401 ? (operator ? 'Wrong operator or password.' : 'Wrong token.') : e.message;
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
  const onEvent = () => scheduleRefresh(150);
  // On every open (the first too: something may have changed between the page's first load and now, and after a
  // reconnect whatever changed meanwhile) the view is fetched again.
  events.onopen = () => scheduleRefresh(0);
  for (const kind of ['c2', 'devices', 'campaign']) events.addEventListener(kind, onEvent);
  events.onerror = () => {
    // EventSource reconnects by itself; a 401 ends it, so check the session.
    if (events && events.readyState === EventSource.CLOSED) api('GET', '/api/session').then(() => setTimeout(connectEvents, 2000), () => undefined);
  };
}

function scheduleRefresh(ms) {
  if (refreshTimer !== null) return;
  refreshTimer = setTimeout(() => { refreshTimer = null; refreshAll().catch(() => undefined); }, ms);
}

async function refreshAll() {
  const o = api('GET', '/api/overview').then((x) => { overview = x; renderOverview(); });
  await Promise.all([o, loadView()]);
}

function renderOverview() {
  const s = overview;
  $('#server').textContent = `server ${s.server.id}`;
  const b = $('#broker');
  b.textContent = s.server.connected ? 'broker connected' : 'broker offline';
  b.className = 'pill ' + (s.server.connected ? 'up' : 'down');
  const total = s.counts ? Object.values(s.counts).reduce((a, n) => a + n, 0) : null;
  $('#tab-devices-count').textContent = total === null ? '' : `(${total})`;
  const badge = $('#joins-badge');
  badge.hidden = s.joins.length === 0;
  badge.textContent = String(s.joins.length);
  renderJoins(s.joins);
}

// ------------------------------------------------------------------------------------------------ routing

const VIEWS = { devices: '#view-devices', device: '#device-panel', joins: '#view-joins', campaigns: '#view-campaigns', campaign: '#view-campaign', images: '#view-images', audit: '#view-audit', operators: '#view-operators' };
let current = { view: null, id: null, query: new URLSearchParams() };
let flashNext = null; // what the next view shows in its flash line (an action that moved to another view)
let lastDeviceFilter = ''; // the device list's query, for a campaign aimed at "the devices matching the filter"

function parseHash() {
  const h = location.hash.replace(/^#\/?/, '');
  const [p, q = ''] = h.split('?');
  const parts = p.split('/').filter(Boolean);
  const query = new URLSearchParams(q);
  if (parts[0] === 'devices' && parts[1]) return { view: 'device', id: parts[1], query };
  if (parts[0] === 'campaigns' && parts[1]) return { view: 'campaign', id: parts[1], query };
  if (parts[0] && VIEWS[parts[0]] && parts[0] !== 'device' && parts[0] !== 'campaign') return { view: parts[0], id: null, query };
  return { view: 'devices', id: null, query };
}

/** Changes the current view's query (filters, sort, page) without a new history entry, and reloads it. */
function setQuery(view, query) {
  const q = query.toString();
  history.replaceState(null, '', `#/${view}${q ? '?' + q : ''}`);
  return route();
}

async function route() {
  const next = parseHash();
  const changed = next.view !== current.view || next.id !== current.id;
  current = next;
  if (current.view === 'devices') lastDeviceFilter = current.query.toString();
  for (const [v, sel] of Object.entries(VIEWS)) $(sel).hidden = v !== current.view;
  const tab = { device: 'devices', campaign: 'campaigns' }[current.view] ?? current.view;
  for (const a of document.querySelectorAll('#tabs a')) {
    if (a.dataset.view === tab) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  if (changed) { flash(flashNext ?? ''); flashNext = null; }
  try {
    await loadView(changed);
  } catch (e) {
    if (e.status !== 401) flash(`${current.view}: ${e.message}`, true);
  }
}

window.addEventListener('hashchange', () => { route(); });

function loadView(first = false) {
  switch (current.view) {
    case 'devices': return loadDevices(first);
    case 'device': return loadDevice(current.id, first);
    case 'joins': return Promise.resolve();
    case 'campaigns': return loadCampaigns(first);
    case 'campaign': return loadCampaign(current.id);
    case 'images': return loadImages();
    case 'audit': return loadAudit(first);
    case 'operators': return loadOperators();
    default: return Promise.resolve();
  }
}

// ------------------------------------------------------------------------------------------------ devices

const DEVICE_FILTERS = ['search', 'state', 'online', 'firmware', 'tag'];
let devicesSeq = 0;
let listRendered = false;
let pageRows = [];
let tagsLoaded = false;

function deviceQuery() {
  const q = current.query;
  const out = new URLSearchParams();
  for (const k of DEVICE_FILTERS) if (q.get(k)) out.set(k, q.get(k));
  out.set('sort', q.get('sort') || 'id');
  out.set('page', String(Math.max(1, Number(q.get('page')) || 1)));
  out.set('pageSize', String(Math.min(500, Math.max(1, Number(q.get('pageSize')) || 50))));
  return out;
}

/** The same filters the server applies, for a server whose device list has no search or paging yet. */
function filterHere(all, q) {
  const search = (q.get('search') || '').toLowerCase();
  const fw = (q.get('firmware') || '').toLowerCase();
  const firmware = (d) => `${d.firmwareName ?? ''} ${d.firmwareVersion ?? ''}`.toLowerCase();
  let rows = all.filter((d) =>
    (!search || d.id.toLowerCase().includes(search) || (d.label ?? '').toLowerCase().includes(search) || firmware(d).includes(search)) &&
    (!q.get('state') || d.state === q.get('state')) &&
    (!q.get('online') || String(d.online) === q.get('online')) &&
    (!fw || firmware(d).includes(fw)) &&
    (!q.get('tag') || (d.tags ?? []).includes(q.get('tag'))));
  const sort = q.get('sort') || 'id';
  const key = sort.replace(/^-/, '');
  const val = (d) => (key === 'firmware' ? firmware(d) : key === 'lastSeen' ? d.lastSeen ?? 0 : String(d[key] ?? '').toLowerCase());
  const dir = sort.startsWith('-') ? -1 : 1;
  const keyed = rows.map((d) => [val(d), d]);
  keyed.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0) * dir);
  return keyed.map((k) => k[1]);
}

async function loadDevices(first) {
  const seq = ++devicesSeq;
  const q = deviceQuery();
  if (first) fillDeviceFilter(q);
  const r = await api('GET', '/api/devices?' + q.toString());
  if (seq !== devicesSeq) return; // a newer query was asked meanwhile
  const page = Number(q.get('page'));
  const size = Number(q.get('pageSize'));
  let rows;
  let total;
  if (typeof r.total === 'number') {
    rows = r.devices;
    total = r.total;
    note($('#devices-note'), '');
  } else {
    const all = filterHere(r.devices, q);
    total = all.length;
    rows = all.slice((page - 1) * size, page * size);
    note($('#devices-note'), 'This server has no device search: the list is filtered and paged in the page (online state and tags are not available).');
  }
  renderDevices(rows, total, page, size, q.get('sort'));
  if (!tagsLoaded) loadTags();
}

async function loadTags() {
  tagsLoaded = true;
  const r = await optional('GET', '/api/tags').catch(() => null);
  if (!r) return;
  $('#tag-list').innerHTML = r.tags.map((t) => `<option value="${esc(t.tag)}">${esc(t.tag)} (${t.count})</option>`).join('');
}

function fillDeviceFilter(q) {
  const f = $('#device-filter');
  for (const k of DEVICE_FILTERS) if (document.activeElement !== field(f, k)) field(f, k).value = q.get(k) ?? '';
  field(f, 'pageSize').value = q.get('pageSize');
}

function onlineCell(d) {
  if (d.online === undefined) return '<span class="muted">—</span>';
  return d.online ? '<span class="dot on"></span>online' : '<span class="dot"></span><span class="muted">offline</span>';
}

function tagChips(tags) {
  return (tags ?? []).map((t) => `<a class="tag" href="#/devices?tag=${encodeURIComponent(t)}">${esc(t)}</a>`).join(' ');
}

function renderDevices(devices, total, page, size, sort) {
  pageRows = devices;
  $('#devices-count').textContent = `(${total}${total === 1 ? ' device' : ' devices'})`;
  const now = Date.now();
  const rows = new Array(devices.length);
  for (let i = 0; i < devices.length; i++) {
    const d = devices[i];
    const fw = (d.firmwareName ? `${esc(d.firmwareName)} ${esc(d.firmwareVersion ?? '')}` : '') +
      (d.profile === 'reference' ? ' <span class="pill profile" title="answers neither actions nor activates">reference</span>' : '');
    const lr = d.lastResponse ? `${statusText(d.lastResponse.status)} <span class="muted">${when(d.lastResponse.at)}</span>` : '';
    const can = d.state === 'joined';
    rows[i] = `<tr data-id="${d.id}" data-state="${d.state}" data-online="${d.online ?? ''}">` +
      `<td>${can ? `<span class="pick" role="checkbox" tabindex="0" aria-label="select ${d.id}" aria-checked="${chosen.has(d.id)}"></span>` : ''}</td>` +
      `<td class="id"><a href="#/devices/${d.id}" class="open">${d.id}</a><span class="sub">${esc(d.label)}</span></td><td class="label">${esc(d.label)}</td>` +
      `<td><span class="state state-${d.state}">${d.state}</span></td><td class="c-online">${onlineCell(d)}</td><td>${fw}</td>` +
      `<td class="c-tags">${tagChips(d.tags)}</td><td class="seen" data-at="${d.lastSeen ?? ''}" title="${esc(fullTime(d.lastSeen))}">${ago(d.lastSeen, now)}</td><td class="c-response">${lr}</td></tr>`;
  }
  const tbody = $('#devices tbody');
  tbody.innerHTML = rows.length ? rows.join('') : '<tr class="empty"><td colspan="9" class="muted">No device matches.</td></tr>';
  for (const th of document.querySelectorAll('#devices th')) {
    const b = th.querySelector('.sort');
    if (!b) continue;
    const k = b.dataset.sort;
    th.setAttribute('aria-sort', sort === k ? 'ascending' : sort === '-' + k ? 'descending' : 'none');
  }
  renderPager($('#devices-pager'), page, size, total);
  updateSelection();
  if (!listRendered) {
    // For the benchmark: when the device list was first on screen (after layout), from navigation start.
    listRendered = true;
    void tbody.offsetHeight;
    performance.mark('c2-devices-rendered');
  }
}

// "How long ago" moves on while the list stays on screen without events.
setInterval(() => {
  if (current.view !== 'devices') return;
  const now = Date.now();
  for (const td of document.querySelectorAll('#devices td.seen')) if (td.dataset.at) td.textContent = ago(Number(td.dataset.at), now);
}, 10000);

function renderPager(nav, page, size, total) {
  const pages = Math.max(1, Math.ceil(total / size));
  const from = total === 0 ? 0 : (page - 1) * size + 1;
  const to = Math.min(total, page * size);
  nav.innerHTML = `<button type="button" class="first" data-page="1"${page <= 1 ? ' disabled' : ''} aria-label="first page">«</button>` +
    `<button type="button" class="prev" data-page="${page - 1}"${page <= 1 ? ' disabled' : ''}>‹ previous</button>` +
    `<span class="where">page <b class="page">${page}</b> of <span class="pages">${pages}</span> · ${from}–${to} of ${total}</span>` +
    `<button type="button" class="next" data-page="${page + 1}"${page >= pages ? ' disabled' : ''}>next ›</button>` +
    `<button type="button" class="last" data-page="${pages}"${page >= pages ? ' disabled' : ''} aria-label="last page">»</button>`;
}

$('#devices-pager').addEventListener('click', (ev) => {
  const b = ev.target.closest('button[data-page]');
  if (!b || b.disabled) return;
  const q = deviceQuery();
  q.set('page', b.dataset.page);
  setQuery('devices', q);
});

let searchTimer = null;
$('#device-filter').addEventListener('input', (ev) => {
  const f = ev.currentTarget;
  const apply = () => {
    if (current.view !== 'devices') return; // the operator went elsewhere meanwhile
    const q = deviceQuery();
    for (const k of DEVICE_FILTERS) { const v = field(f, k).value.trim(); if (v) q.set(k, v); else q.delete(k); }
    q.set('pageSize', field(f, 'pageSize').value);
    q.set('page', '1');
    setQuery('devices', q);
  };
  clearTimeout(searchTimer);
  // Typing is debounced; a choice from a list applies at once.
  if (ev.target.tagName === 'SELECT') apply(); else searchTimer = setTimeout(apply, 200);
});
$('#device-filter').addEventListener('submit', (ev) => ev.preventDefault());
$('#filter-clear').addEventListener('click', () => {
  const q = new URLSearchParams();
  q.set('sort', deviceQuery().get('sort'));
  for (const k of DEVICE_FILTERS) field($('#device-filter'), k).value = '';
  setQuery('devices', q);
});

$('#devices thead').addEventListener('click', (ev) => {
  const b = ev.target.closest('.sort');
  if (!b) return;
  const q = deviceQuery();
  const k = b.dataset.sort;
  q.set('sort', q.get('sort') === k ? '-' + k : k);
  q.set('page', '1');
  setQuery('devices', q);
});

$('#devices tbody').addEventListener('click', (ev) => {
  if (!ev.target.classList.contains('pick')) return;
  togglePick(ev.target, ev.target.closest('tr').dataset.id);
});

$('#devices tbody').addEventListener('keydown', (ev) => {
  if (!ev.target.classList.contains('pick') || (ev.key !== ' ' && ev.key !== 'Enter')) return;
  ev.preventDefault();
  togglePick(ev.target, ev.target.closest('tr').dataset.id);
});

// Row selection: light elements rather than hundreds of form controls, so a big page renders fast.
function togglePick(el, id) {
  const on = !chosen.has(id);
  if (on) chosen.add(id); else chosen.delete(id);
  el.setAttribute('aria-checked', String(on));
  updateSelection();
}

function updateSelection() {
  $('#selected-count').textContent = String(chosen.size);
  $('#campaign-selected').textContent = String(chosen.size);
  const joined = pageRows.filter((d) => d.state === 'joined');
  $('#select-all').checked = joined.length > 0 && joined.every((d) => chosen.has(d.id));
}

function pickPage(on) {
  for (const d of pageRows) if (d.state === 'joined') { if (on) chosen.add(d.id); else chosen.delete(d.id); }
  for (const el of document.querySelectorAll('#devices .pick')) el.setAttribute('aria-checked', String(chosen.has(el.closest('tr').dataset.id)));
  updateSelection();
}
$('#select-all').addEventListener('change', (ev) => pickPage(ev.target.checked));
$('#select-page').addEventListener('click', () => pickPage(true));
$('#select-none').addEventListener('click', () => {
  chosen.clear();
  pickPage(false);
});

// --- registering devices

$('#add-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const f = ev.target;
  const out = field(f, 'result');
  const fail = (msg) => { out.textContent = msg; out.className = 'result error'; };
  let id = field(f, 'id').value.trim();
  let key = field(f, 'key').value.trim();
  if (key.startsWith('{')) {
    // The device.json that `srup provision` writes: { id, publicKey, ... }
    let j;
    try {
      j = JSON.parse(key);
    } catch { return fail('The provisioning JSON does not parse.'); }
    if (typeof j.publicKey !== 'string') return fail('The provisioning JSON has no "publicKey".');
    if (typeof j.id !== 'string' || !/^[0-9a-fA-F]{1,16}$/.test(j.id)) return fail('The provisioning JSON has no device "id".');
    if (id && BigInt('0x' + id) !== BigInt('0x' + j.id)) return fail(`The ID ${id} is not the one in the provisioning JSON (${j.id}).`);
    key = j.publicKey;
    id = j.id;
  }
  if (!id) return fail('Give the device ID (or paste the provisioning JSON).');
  act(`register ${id}`, async () => {
    await api('POST', '/api/devices', { id, publicKey: key, label: field(f, 'label').value, palette: field(f, 'palette').value, profile: field(f, 'profile').value || undefined });
    f.reset();
    return `device ${id} registered`;
  }, out);
});

// ------------------------------------------------------------------------------------------------ one device

let shownDevice = null;

async function loadDevice(id, first) {
  if (first) {
    shownDevice = null;
    for (const o of document.querySelectorAll('#device-panel .result')) { o.textContent = ''; o.className = 'result'; }
  }
  let d;
  try {
    d = await api('GET', `/api/devices/${id}`);
  } catch (e) {
    if (current.view === 'device' && current.id === id) {
      $('#dp-id').textContent = id;
      $('#dp-info').innerHTML = `<dt>Error</dt><dd class="error">${esc(e.message)}</dd>`;
    }
    return;
  }
  if (current.view !== 'device' || current.id !== id) return;
  $('#dp-id').textContent = d.id;
  $('#dp-online').innerHTML = d.online === undefined ? '' : d.online ? '<span class="pill up">online</span>' : '<span class="pill down">offline</span>';
  const info = [
    ['State', d.state], ['Profile', PROFILE[d.profile] ?? d.profile], ['Join', d.joinKind ?? '—'], ['Label', d.label ?? '—'],
    ['Tags', d.tags === undefined ? 'not available on this server' : d.tags.length ? d.tags.join(' ') : '—'], ['Palette', d.palette],
    ['Firmware', d.identification ?? '—'], ['Last seen', d.lastSeen ? `${ago(d.lastSeen)} (${fullTime(d.lastSeen)})` : 'never'],
    ['Last response', d.lastResponse ? `${statusText(d.lastResponse.status)} at ${when(d.lastResponse.at)}` : '—'],
    ['Registered', when(d.createdAt)],
  ];
  $('#dp-info').innerHTML = info.map(([k, v]) => `<dt>${k}</dt><dd>${esc(v)}</dd>`).join('');
  // The label and tags form is filled when the device is opened, not on every refresh (it may be being edited).
  const meta = $('#dp-meta');
  if (shownDevice !== d.id) {
    field(meta, 'label').value = d.label ?? '';
    field(meta, 'tags').value = (d.tags ?? []).join(' ');
    field(meta, 'tags').disabled = d.tags === undefined;
    field(meta, 'tags').placeholder = d.tags === undefined ? 'not available on this server' : 'space separated, e.g. lab site:b';
  }
  shownDevice = d.id;
  $('#dp-audit-link').href = `#/audit?device=${d.id}`;
  const joined = d.state === 'joined';
  for (const el of document.querySelectorAll('#dp-action button, #dp-data button, #dp-id-request, #dp-terminate, #dp-deregister')) el.disabled = !joined;
  $('#dp-join-command').disabled = joined;
  $('#dp-readings tbody').innerHTML = d.data.length === 0
    ? '<tr><td colspan="4" class="muted">no data yet</td></tr>'
    : d.data.map((r) => `<tr data-id="${esc(r.dataId)}"><td>${esc(r.dataId)}</td><td class="value">${esc(r.text)} <span class="muted">${r.kind}</span></td><td>${when(r.at)}</td><td>${sparkline(r.history)}</td></tr>`).join('');
  const updates = d.updates ?? [];
  $('#dp-updates tbody').innerHTML = updates.length === 0
    ? '<tr><td colspan="4" class="muted">no update yet</td></tr>'
    : updates.map((u) => `<tr data-state="${esc(u.state)}"><td>${u.campaign !== undefined ? `<a href="#/campaigns/${Number(u.campaign)}">#${Number(u.campaign)}</a>` : `<code>${esc(String(u.digest ?? '').slice(0, 12))}</code>`}</td>` +
      `<td><span class="state state-${esc(u.state)}">${esc(u.state)}</span>${u.rolledBack ? ' <span class="pill rollback">rolled back</span>' : ''}</td><td>${statusText(u.status) || esc(u.failure ?? '')}</td><td>${when(u.updatedAt)}</td></tr>`).join('');
  $('#dp-audit tbody').innerHTML = d.audit.map((a) =>
    `<tr><td>${when(a.at)}</td><td>${a.direction === 'in' ? '←' : '→'}</td><td>${esc(a.type)}</td><td>${esc(a.sequenceId)}</td><td>${statusText(a.status)}</td></tr>`).join('');
}

/** A small trend line (SVG) of numeric readings, oldest on the left; empty for fewer than two. */
function sparkline(history) {
  if (history.length < 2) return '';
  const w = 120, h = 24;
  const vs = history.map((p) => p.value);
  const lo = Math.min(...vs), hi = Math.max(...vs);
  const range = hi - lo || 1;
  const pts = vs.map((v, i) => `${((i / (vs.length - 1)) * w).toFixed(1)},${(h - 2 - ((v - lo) / range) * (h - 4)).toFixed(1)}`).join(' ');
  return `<svg class="trend" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" role="img" aria-label="trend of ${vs.length} readings from ${lo} to ${hi}"><polyline points="${pts}"/></svg>`;
}

$('#dp-meta').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const id = current.id;
  const f = ev.target;
  const label = field(f, 'label').value.trim();
  const body = { label: label === '' ? null : label };
  if (!field(f, 'tags').disabled) body.tags = field(f, 'tags').value.split(/[\s,]+/).filter(Boolean);
  act('save', async () => {
    const r = await api('POST', `/api/devices/${id}/meta`, body);
    return `saved: label ${r.label === null || r.label === undefined ? 'none' : `"${r.label}"`}, tags ${(r.tags ?? []).join(' ') || 'none'}`;
  }, field(f, 'result'));
});

$('#dp-action').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const id = current.id;
  const actionId = Number(field(ev.target, 'actionId').value);
  act(`action ${actionId}`, async () => {
    const r = await api('POST', `/api/devices/${id}/action`, { actionId });
    return `action ${actionId}: ${actionText(r.status)}`;
  }, field(ev.target, 'result'));
});

$('#dp-data').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const id = current.id;
  const f = ev.target;
  const dataId = field(f, 'dataId').value;
  act(`data ${dataId}`, async () => {
    await api('POST', `/api/devices/${id}/data`, { dataId, kind: field(f, 'kind').value, value: field(f, 'value').value });
    return `data ${dataId}: sent`;
  }, field(f, 'result'));
});

$('#dp-id-request').addEventListener('click', () => {
  const id = current.id;
  act('ID request', async () => {
    const r = await api('POST', `/api/devices/${id}/id`, {});
    return `${id} identifies as "${r.identification}"`;
  }, $('#dp-result'));
});

$('#dp-join-command').addEventListener('click', () => {
  const id = current.id;
  act('join command', async () => {
    await api('POST', `/api/devices/${id}/join-command`, {});
    return 'join command sent';
  }, $('#dp-result'));
});

for (const [btn, path, word] of [['#dp-terminate', 'terminate', 'Terminate'], ['#dp-deregister', 'deregister', 'Deregister']]) {
  $(btn).addEventListener('click', () => {
    const id = current.id;
    if (!confirm(`${word} device ${id}? It will stop obeying this server.`)) return;
    act(`${path} ${id}`, async () => {
      await api('POST', `/api/devices/${id}/${path}`, {});
      return `${path}: done`;
    }, $('#dp-result'));
  });
}

$('#dp-remove').addEventListener('click', async () => {
  const id = current.id;
  if (!confirm(`Remove device ${id} from the registry? Its key is forgotten (register it again to bring it back); its message counters are kept.`)) return;
  const r = await act(`remove ${id}`, async () => {
    await api('POST', `/api/devices/${id}/remove`, {});
    return `device ${id} removed from the registry`;
  }, $('#dp-result'));
  if (r !== undefined) {
    chosen.delete(id);
    flashNext = r;
    location.hash = '#/devices';
  }
});

// ------------------------------------------------------------------------------------------------ joins

const blinkers = new Map(); // device id -> { schedule, start, led }
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
  buttons.innerHTML = '<button type="button" class="primary approve">Approve</button><button type="button" class="danger refuse">Refuse</button><output class="result"></output>';
  const out = buttons.querySelector('output');
  buttons.querySelector('.approve').addEventListener('click', () => act(`approve ${j.id}`, () => api('POST', `/api/devices/${j.id}/approve`, {}), out));
  buttons.querySelector('.refuse').addEventListener('click', () => act(`refuse ${j.id}`, () => api('POST', `/api/devices/${j.id}/refuse`, {}), out));
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

// ------------------------------------------------------------------------------------------------ campaigns

/** A campaign's state: the server's, or (a server without waves) running until every target is settled. */
function campaignState(c) {
  if (c.state) return c.state;
  const open = c.targets.filter((t) => !['confirmed', 'activated', 'failed', 'error'].includes(t.state)).length;
  return open === 0 ? 'done' : 'running';
}
const failedCount = (c) => c.targets.filter((t) => t.state === 'failed' || t.state === 'error').length;
let imagesAvailable = null;

async function loadCampaigns(first) {
  const r = await api('GET', '/api/campaigns');
  $('#campaign-list tbody').innerHTML = r.campaigns.length === 0 ? '<tr><td colspan="6" class="muted">No campaign yet.</td></tr>'
    : r.campaigns.slice().reverse().map((c) => {
      const n = c.targets.length;
      const pct = n ? Math.round((100 * c.done) / n) : 0;
      const st = campaignState(c);
      return `<tr data-id="${c.id}" data-state="${st}"><td><a href="#/campaigns/${c.id}">#${c.id}</a></td><td class="name"><a href="#/campaigns/${c.id}">${esc(c.name)}</a></td>` +
        `<td><span class="state cstate-${st}">${st}</span></td><td><progress max="${n}" value="${c.done}"></progress> ${c.done}/${n} <span class="muted">(${pct} %)</span></td>` +
        `<td class="c-failed">${failedCount(c) || ''}</td><td>${when(c.createdAt)}</td></tr>`;
    }).join('');
  if (first && r.campaigns.length === 0) $('#campaign-new').open = true;
  const newServer = r.campaigns.length === 0 || r.campaigns[0].state !== undefined;
  note($('#campaigns-note'), newServer ? '' : 'This server runs every campaign to the end: waves, pause, resume and cancel are not available on it.');
  $('#campaign-filter').textContent = filterSummary();
  if (first || imagesAvailable === null) await loadImageChoices();
}

async function loadImageChoices() {
  const r = await optional('GET', '/api/images').catch(() => null);
  imagesAvailable = r !== null;
  const sel = field($('#campaign-form'), 'image');
  const keep = sel.value;
  sel.innerHTML = r === null ? '<option value="">(no image library on this server)</option>'
    : '<option value="">—</option>' + r.images.map((i) => `<option value="${esc(i.id)}">${esc(i.name)} ${esc(i.version)} · ${esc(String(i.digest).slice(0, 12))}</option>`).join('');
  sel.disabled = r === null;
  if (keep) sel.value = keep;
  for (const el of document.querySelectorAll('#campaign-form input[name=target][value=tag], #campaign-form input[name=target][value=filter], #campaign-form [name=waveKind], #campaign-form [name=waveSize], #campaign-form [name=waveThen], #campaign-form [name=maxFailure]')) {
    // Groups and waves come with the image library (the same server change).
    el.disabled = r === null;
  }
}

function filterSummary() {
  const q = deviceFilterOnly();
  const parts = [...q.entries()].map(([k, v]) => `${k}=${v}`);
  return parts.length ? `(${parts.join(', ')})` : '(no filter: every device)';
}

function deviceFilterOnly() {
  const all = new URLSearchParams(lastDeviceFilter);
  const q = new URLSearchParams();
  for (const k of DEVICE_FILTERS) if (all.get(k)) q.set(k, all.get(k));
  return q;
}

$('#selection-campaign').addEventListener('click', () => {
  $('#campaign-new').open = true;
  field($('#campaign-form'), 'target').value = 'devices';
});

$('#campaign-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = ev.target;
  const out = field(f, 'result');
  const fail = (msg) => { out.textContent = msg; out.className = 'result error'; };
  const file = field(f, 'file').files[0];
  const url = field(f, 'url').value.trim();
  const image = field(f, 'image').value;
  const target = f.querySelector('input[name=target]:checked').value;
  const sources = [file, url, image].filter(Boolean).length;
  if (sources === 0) return fail('Choose an image from the library, a file or a URL.');
  if (sources > 1) return fail('Choose one image: from the library, a file or a URL.');
  const devices = [...chosen];
  if (target === 'devices' && devices.length === 0) return fail('Select the joined devices to update in the device list first.');
  const tag = field(f, 'targetTag').value.trim();
  if (target === 'tag' && !tag) return fail('Give the tag.');
  let waves;
  const waveKind = field(f, 'waveKind').value;
  if (waveKind) {
    const n = Number(field(f, 'waveSize').value);
    if (!Number.isInteger(n) || n < 1 || (waveKind === 'percent' && n > 100)) return fail(waveKind === 'percent' ? 'The first wave is 1 to 100 %.' : 'The first wave is at least one device.');
    waves = { first: waveKind === 'count' ? { count: n } : { percent: n }, then: field(f, 'waveThen').value };
    if (waves.then === 'auto') waves.maxFailureRate = Number(field(f, 'maxFailure').value) / 100;
  }
  const c = await act('campaign', async () => {
    const body = { name: field(f, 'name').value, autoActivate: field(f, 'autoActivate').checked };
    if (target === 'devices' && !waves) body.devices = devices; // the body every server understands
    else if (target === 'devices') body.target = { devices };
    else if (target === 'tag') body.target = { tag };
    else {
      const q = deviceFilterOnly();
      body.target = { filter: Object.fromEntries([...q.entries()].map(([k, v]) => [k, k === 'online' ? v === 'true' : v])) };
    }
    if (waves) body.waves = waves;
    if (image) body.image = /^\d+$/.test(image) ? Number(image) : image;
    else if (file) {
      out.textContent = `uploading ${file.name}…`;
      const img = await api('POST', imagesAvailable ? `/api/images?name=${encodeURIComponent(file.name)}&version=${encodeURIComponent(field(f, 'name').value || 'upload')}` : '/api/images', file, true);
      if (img.id !== undefined && imagesAvailable) body.image = img.id; else body.file = img.file;
      if (!field(f, 'name').value) body.name = file.name;
    } else body.url = url;
    const r = await api('POST', '/api/campaigns', body);
    f.reset();
    return r;
  }, out);
  if (c && c.id !== undefined) {
    out.textContent = `campaign #${c.id} started on ${c.targets.length} device(s)`;
    location.hash = `#/campaigns/${c.id}`;
  }
});

// --- one campaign

const TARGETS_PER_PAGE = 100;
let targetPage = 1;
let targetFilter = '';
let shownCampaign = null;

async function loadCampaign(id) {
  let c;
  try {
    c = await api('GET', `/api/campaigns/${Number(id)}`);
  } catch (e) {
    $('#campaigns').innerHTML = `<p class="error">campaign ${esc(id)}: ${esc(e.message)}</p>`;
    return;
  }
  if (current.view !== 'campaign' || current.id !== id) return;
  if (shownCampaign !== c.id) { targetPage = 1; targetFilter = ''; }
  renderCampaign(c);
}

function renderCampaign(c) {
  const st = campaignState(c);
  const waved = c.state !== undefined;
  const staged = c.targets.filter((t) => t.state === 'staged').length;
  const counts = Object.entries(c.counts).map(([k, v]) => `${v} ${k.replace('_', ' ')}`).join(', ');
  // Failures by status code: the server's when it sends them, else counted from the targets.
  let failures = c.failures;
  if (!failures) {
    failures = {};
    for (const t of c.targets) {
      if (t.state !== 'failed' && t.state !== 'error') continue;
      const k = t.status !== null ? hex2(t.status) : t.failure ?? t.error ?? 'unknown';
      failures[k] = (failures[k] ?? 0) + 1;
    }
  }
  const failRows = Object.entries(failures).sort((a, b) => b[1] - a[1]).map(([k, n]) => {
    const code = /^0x[0-9a-f]{2}$/i.test(k) ? Number(k) : /^[0-9a-f]{1,2}$/i.test(k) ? parseInt(k, 16) : null;
    return `<tr data-code="${esc(k)}"><td>${code !== null ? statusText(code) : esc(k.replace(/_/g, ' '))}</td><td>${n}</td></tr>`;
  }).join('');
  const waves = (c.waves ?? []).map((w) => `<tr data-wave="${w.index}"${w.index === c.currentWave ? ' class="current"' : ''}><td>${w.index + 1}</td><td>${w.size}</td><td>${w.sent}</td><td>${w.done}</td><td>${w.failed}</td></tr>`).join('');
  const rolledBack = c.targets.filter((t) => t.rolledBack).length;
  const shown = targetFilter ? c.targets.filter((t) => t.state === targetFilter || (targetFilter === 'rolledBack' && t.rolledBack)) : c.targets;
  const pages = Math.max(1, Math.ceil(shown.length / TARGETS_PER_PAGE));
  targetPage = Math.min(targetPage, pages);
  const rows = shown.slice((targetPage - 1) * TARGETS_PER_PAGE, targetPage * TARGETS_PER_PAGE).map((t) => {
    const status = t.state === 'activated' && t.status === null ? 'activated (the device does not confirm)'
      : t.status !== null ? statusText(t.status) : t.failure ? t.failure.replace('_', ' ') : t.error ? esc(t.error) : '';
    const btn = t.state === 'staged' ? `<button type="button" class="activate-one" data-device="${t.device}">Activate</button>`
      : t.state === 'failed' || t.state === 'error' ? `<button type="button" class="retry-one" data-device="${t.device}">Retry</button>`
      : t.activate && t.state === 'initiated' ? '<span class="muted">activates when ready</span>' : '';
    return `<tr data-device="${t.device}" data-state="${t.state}" data-status="${t.status ?? ''}"${t.rolledBack ? ' data-rolled-back="true"' : ''}><td class="id"><a href="#/devices/${t.device}">${t.device}</a></td>` +
      `<td><span class="state state-${t.state}">${t.state.replace('_', ' ')}</span>${t.rolledBack ? ' <span class="pill rollback">rolled back</span>' : ''}</td>` +
      `<td class="status">${status}</td>${waved ? `<td class="wave">${t.wave === undefined ? '' : t.wave + 1}</td>` : ''}<td>${when(t.updatedAt)}</td><td>${btn}</td></tr>`;
  }).join('');
  const control = (cls, label, on, extra = '') => (on ? `<button type="button" class="${cls}"${extra}>${label}</button>` : '');
  const states = [...new Set(c.targets.map((t) => t.state))];
  const box = $('#campaigns');
  const hadFocus = document.activeElement && box.contains(document.activeElement) ? document.activeElement.className : null;
  const keptResult = box.querySelector('.campaign-result');
  const resultHtml = keptResult && shownCampaign === c.id ? keptResult.outerHTML : '<output class="result campaign-result"></output>';
  shownCampaign = c.id;
  box.innerHTML = `<div class="campaign" data-id="${c.id}" data-state="${st}"><h3>#${c.id} ${esc(c.name)}</h3>` +
    `<p><span class="state cstate-${st}">${st}</span> · <span class="done">${c.done} of ${c.targets.length} done</span> · ${esc(counts)}</p>` +
    (c.reason ? `<p class="reason">${esc(c.reason)}</p>` : waved && st === 'waiting' ? '<p class="reason">The wave is done; the next one starts on your go.</p>' : '') +
    `<progress class="wide" max="${c.targets.length}" value="${c.done}"></progress>` +
    `<div class="muted">sha256 <code>${c.digest}</code>${c.size !== null ? ` · ${bytes(c.size)}` : ''}${c.autoActivate ? ' · automatic activation' : ''} · created ${when(c.createdAt)}${c.createdBy ? ` by ${esc(c.createdBy)}` : ''}</div>` +
    `<div class="muted">url <code>${esc(c.url)}</code></div>` +
    `<div class="buttons controls">` +
      control('pause', 'Pause', waved && (st === 'running' || st === 'waiting')) +
      control('resume', 'Resume', waved && st === 'paused') +
      control('proceed primary', 'Start the next wave', waved && st === 'waiting') +
      control('cancel danger', 'Cancel', waved && !['cancelled', 'done'].includes(st)) +
      `<button type="button" class="activate-all"${staged ? '' : ' disabled'}>Activate all ready (${staged})</button>` +
      resultHtml + `</div>` +
    (waved ? '' : '<p class="note">This server has no waves, pause or cancel: the campaign runs to the end.</p>') +
    `<div class="cols">` +
    (waves ? `<div><h4>Waves</h4><table class="waves"><thead><tr><th>Wave</th><th>Devices</th><th>Sent</th><th>Done</th><th>Failed</th></tr></thead><tbody>${waves}</tbody></table></div>` : '') +
    `<div><h4>Failures by status</h4>${failRows ? `<table class="failures"><thead><tr><th>Status</th><th>Devices</th></tr></thead><tbody>${failRows}</tbody></table>` : '<p class="muted">none</p>'}` +
    `${rolledBack ? `<p><span class="pill rollback">${rolledBack} rolled back</span></p>` : ''}</div></div>` +
    `<h4>Devices <select class="target-filter" aria-label="show devices in state"><option value="">all (${c.targets.length})</option>` +
      states.map((s) => `<option value="${esc(s)}"${targetFilter === s ? ' selected' : ''}>${esc(s.replace('_', ' '))}</option>`).join('') +
      (rolledBack ? `<option value="rolledBack"${targetFilter === 'rolledBack' ? ' selected' : ''}>rolled back</option>` : '') + `</select></h4>` +
    `<div class="scroll"><table class="targets"><thead><tr><th>Device</th><th>State</th><th>Status</th>${waved ? '<th>Wave</th>' : ''}<th>Updated</th><th></th></tr></thead><tbody>${rows}</tbody></table></div>` +
    (pages > 1 ? `<nav class="pager target-pager"><button type="button" class="prev" data-page="${targetPage - 1}"${targetPage <= 1 ? ' disabled' : ''}>‹ previous</button><span class="where">page ${targetPage} of ${pages}</span><button type="button" class="next" data-page="${targetPage + 1}"${targetPage >= pages ? ' disabled' : ''}>next ›</button></nav>` : '') +
    `</div>`;
  if (hadFocus) box.querySelector(`.${hadFocus.split(' ')[0]}`)?.focus();
}

$('#campaigns').addEventListener('change', (ev) => {
  if (!ev.target.classList.contains('target-filter')) return;
  targetFilter = ev.target.value;
  targetPage = 1;
  loadCampaign(current.id);
});

$('#campaigns').addEventListener('click', (ev) => {
  const card = ev.target.closest('.campaign');
  if (!card || ev.target.tagName !== 'BUTTON') return;
  const id = card.dataset.id;
  const out = card.querySelector('.campaign-result');
  const cls = ev.target.classList;
  const post = (what, path, body = {}) => act(what, async () => { await api('POST', `/api/campaigns/${id}/${path}`, body); return `${what}: done`; }, out);
  if (ev.target.dataset.page) {
    targetPage = Number(ev.target.dataset.page);
    loadCampaign(current.id);
  } else if (cls.contains('activate-one')) {
    const d = ev.target.dataset.device;
    post(`activate ${d}`, 'activate', { devices: [d] });
  } else if (cls.contains('retry-one')) {
    const d = ev.target.dataset.device;
    post(`retry ${d}`, 'retry', { devices: [d] });
  } else if (cls.contains('activate-all')) {
    const n = card.querySelectorAll('tr[data-state="staged"]').length;
    if (!confirm(`Activate the new image on every device of campaign #${id} that has it (${ev.target.textContent.match(/\d+/)?.[0] ?? n})? They restart into it.`)) return;
    post(`activate all of campaign #${id}`, 'activate');
  } else if (cls.contains('pause')) post('pause', 'pause');
  else if (cls.contains('resume')) post('resume', 'resume');
  else if (cls.contains('proceed')) post('next wave', 'proceed');
  else if (cls.contains('cancel')) {
    if (!confirm(`Cancel campaign #${id}? Devices not yet sent the image will not get it.`)) return;
    post('cancel', 'cancel');
  }
});

// ------------------------------------------------------------------------------------------------ images

async function loadImages() {
  const r = await optional('GET', '/api/images');
  const form = $('#image-form');
  for (const el of form.elements) if (el.tagName !== 'OUTPUT') el.disabled = r === null;
  if (r === null) {
    note($('#images-note'), 'This server has no image library (not available): upload an image with a new campaign instead.');
    $('#images tbody').innerHTML = '';
    return;
  }
  note($('#images-note'), '');
  $('#images tbody').innerHTML = r.images.length === 0 ? '<tr><td colspan="8" class="muted">No image yet.</td></tr>'
    : r.images.map((i) => `<tr data-id="${esc(i.id)}"><td>${esc(i.name)}</td><td>${esc(i.version)}</td><td><code title="${esc(i.digest)}">${esc(String(i.digest).slice(0, 16))}…</code></td>` +
      `<td>${bytes(i.size)}</td><td>${when(i.uploadedAt)}</td><td>${esc(i.uploadedBy ?? '')}</td><td>${i.usedBy ? `${i.usedBy} campaign${i.usedBy === 1 ? '' : 's'}` : ''}</td>` +
      `<td><button type="button" class="remove danger" data-id="${esc(i.id)}">Remove</button></td></tr>`).join('');
}

$('#image-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const f = ev.target;
  const file = field(f, 'file').files[0];
  const name = field(f, 'name').value.trim();
  const version = field(f, 'version').value.trim();
  act(`upload ${name} ${version}`, async () => {
    const r = await api('POST', `/api/images?name=${encodeURIComponent(name)}&version=${encodeURIComponent(version)}`, file, true);
    f.reset();
    imagesAvailable = null;
    return `${r.name} ${r.version} stored (sha256 ${String(r.digest).slice(0, 16)}…, ${bytes(r.size)})`;
  }, field(f, 'result'));
});

$('#images tbody').addEventListener('click', (ev) => {
  const b = ev.target.closest('button.remove');
  if (!b) return;
  const row = b.closest('tr');
  if (!confirm(`Remove image ${row.cells[0].textContent} ${row.cells[1].textContent} from the library?`)) return;
  const what = `remove image ${row.cells[0].textContent} ${row.cells[1].textContent}`;
  act(what, async () => { await api('POST', `/api/images/${encodeURIComponent(b.dataset.id)}/remove`, {}); imagesAvailable = null; return `${what}: done`; }, field($('#image-form'), 'result'));
});

// ------------------------------------------------------------------------------------------------ audit

const AUDIT_FILTERS = ['device', 'type', 'operator', 'direction', 'from', 'to'];
const AUDIT_PAGE = 50;
let auditSeq = 0;

const localInput = (ms) => { const d = new Date(ms); return `${dateText(d)}T${pad(d.getHours())}:${pad(d.getMinutes())}`; };

function auditQuery() {
  const q = new URLSearchParams();
  for (const k of AUDIT_FILTERS) if (current.query.get(k)) q.set(k, current.query.get(k));
  q.set('page', String(Math.max(1, Number(current.query.get('page')) || 1)));
  q.set('pageSize', String(AUDIT_PAGE));
  return q;
}

async function loadAudit(first) {
  const seq = ++auditSeq;
  const q = auditQuery();
  if (first) {
    const f = $('#audit-filter');
    for (const k of ['device', 'type', 'operator', 'direction']) field(f, k).value = q.get(k) ?? '';
    for (const k of ['from', 'to']) field(f, k).value = q.get(k) ? localInput(Number(q.get(k))) : '';
  }
  const r = await api('GET', '/api/audit?' + q.toString());
  if (seq !== auditSeq) return;
  const page = Number(q.get('page'));
  const csv = new URLSearchParams(q);
  csv.delete('page');
  csv.delete('pageSize');
  $('#audit-csv').href = '/api/audit.csv' + (csv.toString() ? '?' + csv.toString() : '');
  let entries;
  if (Array.isArray(r.entries)) {
    entries = r.entries;
    note($('#audit-note'), '');
    $('#audit-csv').hidden = false;
    $('#audit-count').textContent = `(${r.total})`;
    renderPager($('#audit-pager'), page, AUDIT_PAGE, r.total);
  } else {
    entries = r.audit ?? [];
    note($('#audit-note'), 'This server has no audit filters, paging, operators or CSV export (not available): the latest 50 messages are shown.');
    $('#audit-csv').hidden = true;
    $('#audit-count').textContent = '';
    $('#audit-pager').innerHTML = '';
  }
  $('#audit tbody').innerHTML = entries.length === 0 ? '<tr><td colspan="7" class="muted">Nothing matches.</td></tr>' : entries.map((a) => {
    const summary = a.summary ?? [a.sequenceId !== undefined ? `seq ${a.sequenceId}` : '', statusText(a.status)].filter(Boolean).join(' · ');
    const dir = a.direction === 'in' ? '←' : a.direction === 'out' ? '→' : a.direction === 'operator' ? '⚑' : '';
    return `<tr data-id="${esc(a.id ?? a.seq)}"><td>${esc(a.id ?? a.seq)}</td><td title="${esc(fullTime(a.at))}">${when(a.at)}</td><td>${dir}</td>` +
      `<td class="id">${a.device ? `<a href="#/devices/${esc(a.device)}">${esc(a.device)}</a>` : ''}</td><td>${esc(a.type)}</td>` +
      `<td class="operator">${esc(a.operator ?? '')}</td><td class="summary">${esc(summary)}</td></tr>`;
  }).join('');
}

let auditTimer = null;
$('#audit-filter').addEventListener('input', (ev) => {
  const f = ev.currentTarget;
  clearTimeout(auditTimer);
  auditTimer = setTimeout(() => {
    if (current.view !== 'audit') return;
    const q = new URLSearchParams();
    for (const k of ['device', 'type', 'operator', 'direction']) { const v = field(f, k).value.trim(); if (v) q.set(k, v); }
    for (const k of ['from', 'to']) { const v = field(f, k).value; if (v) q.set(k, String(new Date(v).getTime())); }
    setQuery('audit', q);
  }, ev.target.type === 'datetime-local' || ev.target.tagName === 'SELECT' ? 0 : 250);
});
$('#audit-filter').addEventListener('submit', (ev) => ev.preventDefault());
$('#audit-clear').addEventListener('click', () => {
  $('#audit-filter').reset();
  setQuery('audit', new URLSearchParams());
});
$('#audit-pager').addEventListener('click', (ev) => {
  const b = ev.target.closest('button[data-page]');
  if (!b || b.disabled) return;
  const q = auditQuery();
  q.set('page', b.dataset.page);
  q.delete('pageSize');
  setQuery('audit', q);
});

// ------------------------------------------------------------------------------------------------ operators

async function loadOperators() {
  const r = await optional('GET', '/api/operators');
  const form = $('#operator-form');
  for (const el of form.elements) if (el.tagName !== 'OUTPUT') el.disabled = r === null;
  if (r === null) {
    note($('#operators-note'), 'This server has no named operators (not available): everyone logs in with the one token.');
    $('#operators tbody').innerHTML = '';
    return;
  }
  note($('#operators-note'), '');
  // 'admin' (the data directory's token) cannot be removed: it has no button.
  $('#operators tbody').innerHTML = r.operators.map((o) => `<tr data-name="${esc(o.name)}"><td>${esc(o.name)}</td><td>${esc(o.login ?? '')}</td><td>${o.createdAt ? when(o.createdAt) : '—'}</td><td>${o.lastLogin ? ago(o.lastLogin) : 'never'}</td>` +
    `<td>${o.name === 'admin' ? '' : '<button type="button" class="remove danger">Remove</button>'}</td></tr>`).join('');
}

$('#operator-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const f = ev.target;
  const name = field(f, 'name').value.trim();
  const password = field(f, 'password').value;
  act(`add ${name}`, async () => {
    const r = await api('POST', '/api/operators', password ? { name, password } : { name });
    f.reset();
    return r.token ? `operator ${r.name} added; their token (shown only now): ${r.token}` : `operator ${r.name} added`;
  }, field(f, 'result'));
});

$('#operators tbody').addEventListener('click', (ev) => {
  const b = ev.target.closest('button.remove');
  if (!b) return;
  const row = b.closest('tr');
  const name = row.dataset.name;
  if (!confirm(`Remove operator ${name}? They can no longer log in.`)) return;
  act(`remove ${name}`, async () => { await api('POST', `/api/operators/${encodeURIComponent(name)}/remove`, {}); return `operator ${name} removed`; }, field($('#operator-form'), 'result'));
});

// ------------------------------------------------------------------------------------------------ start

start();
