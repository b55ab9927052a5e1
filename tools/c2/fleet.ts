/**
 * The device list of a fleet: search, filters, order and paging, done by the database (the page and the number
 * of matching devices in one query; the whole fleet's first pages in index order), so that no request loads
 * the fleet into the server; and the checks of what an operator may write into a device's label and tags.
 *
 * Online: a device is online while it was heard from (any accepted message, devices.last_seen, written with the
 * message's group commit) within the silence threshold. Every server node reads the same column, so all of them
 * answer alike.
 */
import type { DeviceRecord, DeviceState } from '../../modules/c2/registry.js';
import { toDevice, type DeviceRow, DEVICE_STATES } from '../../hosts/node/sql-registry.js';
import type { SqlDb, SqlValue } from '../../hosts/node/sql.js';
import { AppError } from './errors.js';

/** The default silence threshold: a device not heard from for this long is offline (ms). */
export const DEFAULT_SILENCE_MS = 300_000;
export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 500;
export const MAX_TAGS = 16;
export const MAX_LABEL = 100;
export const TAG_PATTERN = /^[A-Za-z0-9_.:-]{1,32}$/;
export const SORT_KEYS = ['id', 'label', 'state', 'firmware', 'lastSeen'] as const;
export type SortKey = (typeof SORT_KEYS)[number];

/** Which devices: the filters of the device list (also a campaign's target group). */
export interface DeviceFilter {
  search?: string;
  state?: DeviceState;
  online?: boolean;
  firmware?: string;
  tag?: string;
}

export interface DeviceQuery extends DeviceFilter {
  sort: SortKey;
  descending: boolean;
  page: number;
  pageSize: number;
}

const QUERY_KEYS = ['search', 'state', 'online', 'firmware', 'tag', 'sort', 'page', 'pageSize'];

function positiveInt(name: string, v: string, max: number): number {
  if (!/^[0-9]{1,9}$/.test(v) || Number(v) < 1) throw new AppError('bad_argument', `${name} must be a whole number from 1${max < Infinity ? ` to ${max}` : ''}: ${v}`);
  const n = Number(v);
  if (n > max) throw new AppError('bad_argument', `${name} must be at most ${max}: ${v}`);
  return n;
}

/** Reads GET /api/devices's parameters; a bad one is a 400 naming it. Unknown parameters are refused too. */
export function parseDeviceQuery(p: URLSearchParams): DeviceQuery {
  for (const k of p.keys()) {
    if (!QUERY_KEYS.includes(k)) throw new AppError('bad_argument', `unknown parameter ${k} (one of ${QUERY_KEYS.join(', ')})`);
  }
  const one = (k: string): string | undefined => {
    const all = p.getAll(k);
    if (all.length > 1) throw new AppError('bad_argument', `${k} is given more than once`);
    return all[0];
  };
  const q: DeviceQuery = { sort: 'id', descending: false, page: 1, pageSize: DEFAULT_PAGE_SIZE };
  const search = one('search');
  if (search !== undefined && search.trim() !== '') {
    if (search.length > 100) throw new AppError('bad_argument', 'search is at most 100 characters');
    q.search = search.trim();
  }
  const state = one('state');
  if (state !== undefined && state !== '') {
    if (!(DEVICE_STATES as readonly string[]).includes(state)) throw new AppError('bad_argument', `state must be one of ${DEVICE_STATES.join(', ')}: ${state}`);
    q.state = state as DeviceState;
  }
  const online = one('online');
  if (online !== undefined && online !== '') {
    if (online !== 'true' && online !== 'false') throw new AppError('bad_argument', `online must be true or false: ${online}`);
    q.online = online === 'true';
  }
  const firmware = one('firmware');
  if (firmware !== undefined && firmware !== '') {
    if (firmware.length > 100) throw new AppError('bad_argument', 'firmware is at most 100 characters');
    q.firmware = firmware;
  }
  const tag = one('tag');
  if (tag !== undefined && tag !== '') {
    if (!TAG_PATTERN.test(tag)) throw new AppError('bad_argument', `tag must be 1 to 32 of A-Z a-z 0-9 _ . : -: ${tag}`);
    q.tag = tag;
  }
  const sort = one('sort');
  if (sort !== undefined && sort !== '') {
    const key = sort.startsWith('-') ? sort.slice(1) : sort;
    if (!(SORT_KEYS as readonly string[]).includes(key)) throw new AppError('bad_argument', `sort must be one of ${SORT_KEYS.join(', ')}, with - before it for descending: ${sort}`);
    q.sort = key as SortKey;
    q.descending = sort.startsWith('-');
  }
  const page = one('page');
  if (page !== undefined && page !== '') q.page = positiveInt('page', page, 1e9);
  const size = one('pageSize');
  if (size !== undefined && size !== '') q.pageSize = positiveInt('pageSize', size, MAX_PAGE_SIZE);
  return q;
}

/** `text` for a LIKE pattern that matches it anywhere, with % _ and \ taken literally (ESCAPE '\'). */
function contains(text: string): string {
  return '%' + text.replace(/[\\%_]/g, (c) => '\\' + c) + '%';
}

export interface DeviceRowWithSettings {
  device: DeviceRecord;
  label: string | null;
  palette: string;
}

/** The WHERE conditions (over devices d and device_settings s) of a query's filters, and their parameters. */
function filterSql(q: DeviceFilter, now: number, silenceMs: number): { where: string[]; params: SqlValue[] } {
  const where: string[] = [];
  const params: SqlValue[] = [];
  if (q.search !== undefined) {
    const s = contains(q.search.toLowerCase());
    where.push(
      `(d.id LIKE ? ESCAPE '\\' OR lower(COALESCE(s.label, '')) LIKE ? ESCAPE '\\' OR lower(COALESCE(d.firmware_name, '')) LIKE ? ESCAPE '\\'` +
        ` OR lower(COALESCE(d.firmware_version, '')) LIKE ? ESCAPE '\\')`,
    );
    params.push(s, s, s, s);
  }
  if (q.state !== undefined) {
    where.push('d.state = ?');
    params.push(q.state);
  }
  if (q.online !== undefined) {
    where.push(q.online ? 'd.last_seen >= ?' : '(d.last_seen IS NULL OR d.last_seen < ?)');
    params.push(now - silenceMs);
  }
  if (q.firmware !== undefined) {
    // The version, or "name version" as the list shows it.
    where.push(`(d.firmware_version = ? OR lower(COALESCE(d.firmware_name, '') || ' ' || COALESCE(d.firmware_version, '')) LIKE ? ESCAPE '\\')`);
    params.push(q.firmware, contains(q.firmware.toLowerCase()));
  }
  if (q.tag !== undefined) {
    where.push('EXISTS (SELECT 1 FROM device_tags t WHERE t.device = d.id AND t.tag = ?)');
    params.push(q.tag);
  }
  return { where, params };
}

/**
 * One page of devices and how many match. `now - silenceMs` is the oldest last-seen time that still counts as
 * online.
 */
export function queryDevices(db: SqlDb, q: DeviceQuery, now: number, silenceMs: number): { rows: DeviceRowWithSettings[]; total: number } {
  const { where, params } = filterSql(q, now, silenceMs);
  // PostgreSQL: byte order for text, as SQLite compares; lower() is the same for ASCII on both.
  const c = db.dialect === 'postgres' ? ' COLLATE "C"' : '';
  const from = 'FROM devices d LEFT JOIN device_settings s ON s.id = d.id';
  const cond = where.length === 0 ? '' : ` WHERE ${where.join(' AND ')}`;
  const dir = q.descending ? 'DESC' : 'ASC';
  // Ids are 16 lowercase hex digits: every collation orders them as bytes, so the primary key's index serves
  // the id order as it is (a COLLATE would keep PostgreSQL from using it).
  const order: Record<SortKey, string> = {
    id: `d.id ${dir}`,
    label: `lower(COALESCE(s.label, ''))${c} ${dir}, d.id ${dir}`,
    state: `d.state${c} ${dir}, d.id ${dir}`,
    firmware: `COALESCE(d.firmware_name, '')${c} ${dir}, COALESCE(d.firmware_version, '')${c} ${dir}, d.id ${dir}`,
    // Never heard from sorts as the oldest.
    lastSeen: `COALESCE(d.last_seen, -1) ${dir}, d.id ${dir}`,
  };
  const offset = (q.page - 1) * q.pageSize;
  type Row = DeviceRow & { label: string | null; palette: string | null; total_count?: number };
  let rows: Row[];
  let total: number;
  if (where.length === 0) {
    // The whole fleet: the count needs no join, and the page is read in index order.
    total = Number(db.get<{ n: number }>('SELECT COUNT(*) AS n FROM devices')?.n ?? 0);
    rows = db.all<Row>(`SELECT d.*, s.label AS label, s.palette AS palette ${from} ORDER BY ${order[q.sort]} LIMIT ? OFFSET ?`, [q.pageSize, offset]);
  } else {
    // Filtered: one pass over the matching rows gives both the page and their number.
    rows = db.all<Row>(
      `SELECT d.*, s.label AS label, s.palette AS palette, COUNT(*) OVER () AS total_count ${from}${cond} ORDER BY ${order[q.sort]} LIMIT ? OFFSET ?`,
      [...params, q.pageSize, offset],
    );
    total = rows.length > 0 ? Number(rows[0].total_count) : offset === 0 ? 0 : Number(db.get<{ n: number }>(`SELECT COUNT(*) AS n ${from}${cond}`, params)?.n ?? 0);
  }
  return { rows: rows.map((r) => ({ device: toDevice(r), label: r.label, palette: r.palette ?? 'default' })), total };
}

/**
 * Reads a filter given as a JSON object `{search?, state?, online?, firmware?, tag?}` (online a boolean), with
 * the same checks as the device list's parameters; throws a 400 naming what is wrong.
 */
export function parseDeviceFilter(v: unknown): DeviceFilter {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new AppError('bad_argument', 'the filter must be an object');
  const p = new URLSearchParams();
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    if (!['search', 'state', 'online', 'firmware', 'tag'].includes(k)) throw new AppError('bad_argument', `unknown filter field ${k} (search, state, online, firmware, tag)`);
    if (x === undefined || x === null) continue;
    if (k === 'online' ? typeof x !== 'boolean' : typeof x !== 'string') throw new AppError('bad_argument', `filter ${k} must be ${k === 'online' ? 'true or false' : 'a string'}`);
    p.set(k, String(x));
  }
  const { search, state, online, firmware, tag } = parseDeviceQuery(p);
  const out: DeviceFilter = {};
  if (search !== undefined) out.search = search;
  if (state !== undefined) out.state = state;
  if (online !== undefined) out.online = online;
  if (firmware !== undefined) out.firmware = firmware;
  if (tag !== undefined) out.tag = tag;
  return out;
}

/** Every device matching `f` (ids, in id order): a campaign's target group. One query, ids only. */
export function deviceIdsMatching(db: SqlDb, f: DeviceFilter, now: number, silenceMs: number): bigint[] {
  const { where, params } = filterSql(f, now, silenceMs);
  const cond = where.length === 0 ? '' : ` WHERE ${where.join(' AND ')}`;
  return db
    .all<{ id: string }>(`SELECT d.id FROM devices d LEFT JOIN device_settings s ON s.id = d.id${cond} ORDER BY d.id`, params)
    .map((r) => BigInt('0x' + r.id));
}

/**
 * Checks a meta edit's body: `label` a string (trimmed, at most MAX_LABEL; empty clears it) or null, `tags` a
 * list of at most MAX_TAGS distinct tags of TAG_PATTERN. At least one of the two. Throws a 400 naming what is wrong.
 */
export function parseMeta(b: Record<string, unknown>): { label?: string | null; tags?: string[] } {
  for (const k of Object.keys(b)) if (k !== 'label' && k !== 'tags') throw new AppError('bad_argument', `unknown field ${k} (label, tags)`);
  if (b.label === undefined && b.tags === undefined) throw new AppError('bad_argument', 'give label and/or tags');
  const out: { label?: string | null; tags?: string[] } = {};
  if (b.label !== undefined) {
    if (b.label === null) out.label = null;
    else if (typeof b.label !== 'string') throw new AppError('bad_argument', 'label must be a string or null');
    else {
      const label = b.label.trim();
      if (label.length > MAX_LABEL) throw new AppError('bad_argument', `label is at most ${MAX_LABEL} characters`);
      if (/[\u0000-\u001f\u007f]/.test(label)) throw new AppError('bad_argument', 'label must not hold control characters');
      out.label = label === '' ? null : label;
    }
  }
  if (b.tags !== undefined) {
    if (!Array.isArray(b.tags)) throw new AppError('bad_argument', 'tags must be a list of strings');
    const tags: string[] = [];
    for (const t of b.tags) {
      if (typeof t !== 'string' || !TAG_PATTERN.test(t)) throw new AppError('bad_argument', `a tag is 1 to 32 of A-Z a-z 0-9 _ . : -: ${JSON.stringify(t)}`);
      if (!tags.includes(t)) tags.push(t);
    }
    if (tags.length > MAX_TAGS) throw new AppError('bad_argument', `at most ${MAX_TAGS} tags per device`);
    out.tags = tags.sort();
  }
  return out;
}
