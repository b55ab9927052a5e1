/**
 * The audit log as the console and the CLI read it: the messages the engine sent and accepted, and the
 * operators' actions (direction 'operator'), filtered by device, type, operator and time, newest first, paged by
 * the database; and its CSV form.
 */
import { idHex16 } from '../../modules/srup/bytes.js';
import { hexToId } from '../../hosts/node/durable.js';
import type { SqlDb, SqlValue } from '../../hosts/node/sql.js';
import { AppError } from './errors.js';
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE } from './fleet.js';

export interface AuditFilter {
  device?: string;
  type?: string;
  operator?: string;
  direction?: 'in' | 'out' | 'operator';
  /** ms since the epoch, inclusive. */
  from?: number;
  to?: number;
}

export interface AuditPage extends AuditFilter {
  page: number;
  pageSize: number;
}

/** One audit entry as the API answers it. */
export interface AuditView {
  id: number;
  at: number;
  /** 16 hex digits, or null for an operator action on no single device. */
  device: string | null;
  type: string;
  direction: 'in' | 'out' | 'operator';
  /** Who caused it: the operator, or null for what devices sent and what the server did by itself. */
  operator: string | null;
  summary: string;
  sequenceId: string | null;
  status: number | null;
}

/** The parameters the new form of GET /api/audit takes (the old form took only after and limit). */
export const AUDIT_KEYS = ['device', 'type', 'operator', 'direction', 'from', 'to', 'page', 'pageSize'];

function time(name: string, v: string): number {
  if (!/^[0-9]{1,16}$/.test(v) || !Number.isSafeInteger(Number(v))) throw new AppError('bad_argument', `${name} must be a time in ms since the epoch: ${v}`);
  return Number(v);
}

/** Reads the filter and page; a bad value is a 400 naming it. */
export function parseAuditQuery(p: URLSearchParams, paged = true): AuditPage {
  const allowed = paged ? [...AUDIT_KEYS, 'after', 'limit'] : AUDIT_KEYS.filter((k) => k !== 'page' && k !== 'pageSize');
  for (const k of p.keys()) if (!allowed.includes(k)) throw new AppError('bad_argument', `unknown parameter ${k} (one of ${allowed.join(', ')})`);
  const q: AuditPage = { page: 1, pageSize: DEFAULT_PAGE_SIZE };
  const v = (k: string): string | undefined => {
    const all = p.getAll(k);
    if (all.length > 1) throw new AppError('bad_argument', `${k} is given more than once`);
    return all[0] === '' ? undefined : all[0];
  };
  const device = v('device');
  if (device !== undefined) {
    const id = hexToId(device);
    if (id === null) throw new AppError('bad_argument', `device must be a device id (1 to 16 hex digits): ${device}`);
    q.device = idHex16(id);
  }
  const type = v('type');
  if (type !== undefined) {
    if (!/^[a-z0-9_.-]{1,40}$/i.test(type)) throw new AppError('bad_argument', `type must be a message or action type such as response, action, meta: ${type}`);
    q.type = type;
  }
  const operator = v('operator');
  if (operator !== undefined) {
    if (operator.length > 64) throw new AppError('bad_argument', 'operator is at most 64 characters');
    q.operator = operator;
  }
  const direction = v('direction');
  if (direction !== undefined) {
    if (direction !== 'in' && direction !== 'out' && direction !== 'operator') throw new AppError('bad_argument', `direction must be in, out or operator: ${direction}`);
    q.direction = direction;
  }
  const from = v('from');
  if (from !== undefined) q.from = time('from', from);
  const to = v('to');
  if (to !== undefined) q.to = time('to', to);
  if (q.from !== undefined && q.to !== undefined && q.from > q.to) throw new AppError('bad_argument', 'from must not be after to');
  const page = v('page');
  if (page !== undefined) {
    if (!/^[0-9]{1,9}$/.test(page) || Number(page) < 1) throw new AppError('bad_argument', `page must be a whole number from 1: ${page}`);
    q.page = Number(page);
  }
  const size = v('pageSize');
  if (size !== undefined) {
    if (!/^[0-9]{1,9}$/.test(size) || Number(size) < 1 || Number(size) > MAX_PAGE_SIZE) {
      throw new AppError('bad_argument', `pageSize must be a whole number from 1 to ${MAX_PAGE_SIZE}: ${size}`);
    }
    q.pageSize = Number(size);
  }
  return q;
}

/**
 * True when the query uses the new form (any filter or page parameter); false for the old form (only after and
 * limit). A parameter neither form knows is refused (400).
 */
export function isFilteredAuditQuery(p: URLSearchParams): boolean {
  if (AUDIT_KEYS.some((k) => p.has(k))) return true;
  for (const k of p.keys()) if (k !== 'after' && k !== 'limit') throw new AppError('bad_argument', `unknown parameter ${k} (one of ${[...AUDIT_KEYS, 'after', 'limit'].join(', ')})`);
  return false;
}

interface Row {
  seq: number;
  at: number;
  direction: string;
  device: string;
  type: string;
  sequence_id: string;
  status: number | null;
  operator: string | null;
  summary: string | null;
}

function where(f: AuditFilter): { sql: string; params: SqlValue[] } {
  const w: string[] = [];
  const params: SqlValue[] = [];
  const eq = (col: string, v: SqlValue | undefined) => {
    if (v === undefined) return;
    w.push(`${col} = ?`);
    params.push(v);
  };
  eq('device', f.device);
  eq('type', f.type);
  eq('operator', f.operator);
  eq('direction', f.direction);
  if (f.from !== undefined) {
    w.push('at >= ?');
    params.push(f.from);
  }
  if (f.to !== undefined) {
    w.push('at <= ?');
    params.push(f.to);
  }
  return { sql: w.length === 0 ? '' : ` WHERE ${w.join(' AND ')}`, params };
}

const COLUMNS = 'seq, at, direction, device, type, sequence_id, status, operator, summary';

function view(r: Row): AuditView {
  const direction = r.direction as AuditView['direction'];
  const message = direction !== 'operator';
  return {
    id: Number(r.seq),
    at: r.at,
    device: r.device === '' ? null : r.device,
    type: r.type,
    direction,
    operator: r.operator,
    summary: r.summary ?? (message ? `${direction === 'in' ? 'from' : 'to'} the device${r.status === null ? '' : `, status 0x${r.status.toString(16).padStart(2, '0')}`}` : ''),
    sequenceId: message ? BigInt('0x' + r.sequence_id).toString() : null,
    status: r.status,
  };
}

/** One page of entries, newest first, and how many match. */
export function queryAudit(db: SqlDb, q: AuditPage): { entries: AuditView[]; total: number } {
  const w = where(q);
  const total = Number(db.get<{ n: number }>(`SELECT COUNT(*) AS n FROM audit${w.sql}`, w.params)?.n ?? 0);
  const rows = db.all<Row>(`SELECT ${COLUMNS} FROM audit${w.sql} ORDER BY seq DESC LIMIT ? OFFSET ?`, [...w.params, q.pageSize, (q.page - 1) * q.pageSize]);
  return { entries: rows.map(view), total };
}

/** Every matching entry, newest first, read a chunk at a time (keyset on seq): for the CSV export. */
export function* auditEntries(db: SqlDb, f: AuditFilter, chunk = 1000): Generator<AuditView> {
  const w = where(f);
  let below = Number.MAX_SAFE_INTEGER;
  for (;;) {
    const rows = db.all<Row>(
      `SELECT ${COLUMNS} FROM audit${w.sql === '' ? ' WHERE' : w.sql + ' AND'} seq < ? ORDER BY seq DESC LIMIT ?`,
      [...w.params, below, chunk],
    );
    for (const r of rows) yield view(r);
    if (rows.length < chunk) return;
    below = Number(rows[rows.length - 1].seq);
  }
}

export const CSV_HEADER = ['id', 'time', 'at', 'device', 'direction', 'type', 'operator', 'summary', 'sequence_id', 'status'];

/** One CSV field (RFC 4180): quoted when it holds a comma, a quote, CR or LF; quotes doubled. */
export function csvField(v: string | number | null): string {
  if (v === null) return '';
  let s = String(v);
  // A spreadsheet would run a field that starts like a formula: such text is prefixed with a quote mark.
  if (/^[=+\-@\t\r]/.test(s) && typeof v === 'string') s = "'" + s;
  return /[",\r\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
}

export function csvLine(e: AuditView): string {
  return (
    [e.id, new Date(e.at).toISOString(), e.at, e.device, e.direction, e.type, e.operator, e.summary, e.sequenceId, e.status === null ? null : `0x${e.status.toString(16).padStart(2, '0')}`]
      .map(csvField)
      .join(',') + '\r\n'
  );
}
