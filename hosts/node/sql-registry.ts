/**
 * The C2 registry (modules/c2/registry.ts) over one SQL connection (sql.ts): SQLite for one server (the default,
 * sqlite-registry.ts), PostgreSQL for several server nodes on one fleet (pg-registry.ts). The statements are the
 * same for both.
 *
 * Storage forms: ids are 16 lowercase hex digits (TEXT, so that the whole u64 range sorts and compares
 * correctly); sequence IDs likewise; tokens and messages are BLOB / BYTEA; times are integer milliseconds.
 *
 * Several nodes: allocateSequence() locks the device's counter row (an upsert) until the transaction ends, so
 * two nodes never send the same sequence ID; everything else a node keeps is read from the database when used.
 */
import { rsaPublicKey } from '../../crypto/keys.js';
import type { RsaPublicKey } from '../../crypto/types.js';
import { C2Error } from '../../modules/c2/errors.js';
import type {
  AuditEntry,
  AuditInput,
  AuditQuery,
  Reading,
  ReadingInput,
  DevicePatch,
  DeviceProfile,
  DeviceRecord,
  DeviceState,
  JoinKind,
  Registry,
  SequenceState,
  UpdatePatch,
  UpdateRecord,
  UpdateState,
} from '../../modules/c2/registry.js';
import { READINGS_PER_DATA_ID, provisionedRecord } from '../../modules/c2/registry.js';
import { idHex16, parseIdHex } from '../../modules/srup/bytes.js';
import { nextSequenceId } from '../../modules/srup/topics.js';
import { migrate, schemaVersion } from './sql-schema.js';
import type { SqlDb, SqlValue } from './sql.js';

const ZERO16 = '0000000000000000';

/** Ids and counters as stored: 16 lowercase hex digits (idHex16 checks the u64 range). */
const hex16 = idHex16;

/** Read back (written by hex16, so always 16 hex digits). */
function fromHex16(s: string): bigint {
  return parseIdHex(s, false) as bigint;
}

/** The audit's message entries (the C2 application adds entries of direction 'operator' beside them). */
const MESSAGES = "direction IN ('in', 'out')";

/** The newest ID accepted from a peer (`?` is the peer), as a subquery. */
const TOP_ACCEPTED = 'SELECT a.seq FROM accepted a WHERE a.peer = ? ORDER BY a.seq DESC LIMIT 1';

/** The larger of two hex16 counters (either may be missing). */
function newest(a: string | null, b: string | null): bigint {
  const x = a === null ? 0n : fromHex16(a);
  const y = b === null ? 0n : fromHex16(b);
  return x > y ? x : y;
}

export interface DeviceRow {
  id: string;
  key_n: string;
  key_e: string;
  state: string;
  profile: string;
  join_kind: string | null;
  join_token: Uint8Array | null;
  join_secret: string | null;
  observer_id: string | null;
  observation_token: Uint8Array | null;
  last_seen: number | null;
  identification: string | null;
  firmware_name: string | null;
  firmware_version: string | null;
  last_status: number | null;
  last_status_token: Uint8Array | null;
  last_status_at: number | null;
  created_at: number;
  updated_at: number;
}

interface UpdateRow {
  token: string;
  device: string;
  url: string;
  digest: string;
  state: string;
  status: number | null;
  failure: string | null;
  created_at: number;
  updated_at: number;
}

interface AuditRow {
  seq: number;
  at: number;
  direction: string;
  device: string;
  type: string;
  sequence_id: string;
  token: Uint8Array;
  status: number | null;
  bytes: Uint8Array;
}

export const DEVICE_STATES: readonly DeviceState[] = [
  'provisioned',
  'pending',
  'joined',
  'refused',
  'failed',
  'terminated',
  'deregistered',
  'resigned',
];

const DEVICE_COLUMNS = `id, key_n, key_e, state, profile, join_kind, join_token, join_secret, observer_id, observation_token,
  last_seen, identification, firmware_name, firmware_version, last_status, last_status_token, last_status_at, created_at,
  updated_at`;

const WRITE_DEVICE = `INSERT INTO devices (${DEVICE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
  ON CONFLICT (id) DO UPDATE SET key_n = excluded.key_n, key_e = excluded.key_e, state = excluded.state,
  profile = excluded.profile, join_kind = excluded.join_kind, join_token = excluded.join_token,
  join_secret = excluded.join_secret, observer_id = excluded.observer_id, observation_token = excluded.observation_token,
  last_seen = excluded.last_seen, identification = excluded.identification, firmware_name = excluded.firmware_name,
  firmware_version = excluded.firmware_version, last_status = excluded.last_status,
  last_status_token = excluded.last_status_token, last_status_at = excluded.last_status_at,
  created_at = excluded.created_at, updated_at = excluded.updated_at`;

/**
 * Public keys as read back, by their stored text: the same key object for the same key, so that parsing it (two
 * 2048-bit hex numbers) and the crypto layer's per-key-object work (hosts/node/crypto.ts caches the native key
 * per object) happen once per key, not once per message. A key is immutable, so a cached one is never stale; a
 * re-provisioned device has other text, hence another entry. At most KEY_CACHE_SIZE keys (the oldest go first).
 */
const KEY_CACHE_SIZE = 10_000;
const keyCache = new Map<string, RsaPublicKey>();

function publicKeyOf(n: string, e: string): RsaPublicKey {
  const text = `${e}:${n}`;
  let k = keyCache.get(text);
  if (k === undefined) {
    k = rsaPublicKey(BigInt('0x' + n), BigInt('0x' + e));
    if (keyCache.size >= KEY_CACHE_SIZE) keyCache.delete(keyCache.keys().next().value as string);
    keyCache.set(text, k);
  }
  return k;
}

/** A device as read from its row (also for queries that select `devices.*` with more columns). */
export function toDevice(r: DeviceRow): DeviceRecord {
  return {
    id: fromHex16(r.id),
    publicKey: publicKeyOf(r.key_n, r.key_e),
    state: r.state as DeviceState,
    profile: r.profile as DeviceProfile,
    joinKind: r.join_kind as JoinKind | null,
    joinToken: r.join_token,
    joinSecret: r.join_secret,
    observerId: r.observer_id === null ? null : fromHex16(r.observer_id),
    observationToken: r.observation_token,
    lastSeen: r.last_seen,
    identification: r.identification,
    firmwareName: r.firmware_name,
    firmwareVersion: r.firmware_version,
    lastResponse:
      r.last_status === null || r.last_status_token === null || r.last_status_at === null
        ? null
        : { status: r.last_status, token: r.last_status_token, at: r.last_status_at },
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

function deviceValues(d: DeviceRecord): SqlValue[] {
  return [
    hex16(d.id),
    d.publicKey.n.toString(16),
    d.publicKey.e.toString(16),
    d.state,
    d.profile,
    d.joinKind,
    d.joinToken,
    d.joinSecret,
    d.observerId === null ? null : hex16(d.observerId),
    d.observationToken,
    d.lastSeen,
    d.identification,
    d.firmwareName,
    d.firmwareVersion,
    d.lastResponse === null ? null : d.lastResponse.status,
    d.lastResponse === null ? null : d.lastResponse.token,
    d.lastResponse === null ? null : d.lastResponse.at,
    d.createdAt,
    d.updatedAt,
  ];
}

function toUpdate(r: UpdateRow): UpdateRecord {
  return {
    token: r.token,
    device: fromHex16(r.device),
    url: r.url,
    digest: r.digest,
    state: r.state as UpdateState,
    status: r.status,
    failure: r.failure,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

function toAudit(r: AuditRow): AuditEntry {
  return {
    seq: r.seq,
    at: r.at,
    direction: r.direction as 'in' | 'out',
    device: fromHex16(r.device),
    type: r.type,
    sequenceId: fromHex16(r.sequence_id),
    token: r.token,
    status: r.status,
    bytes: r.bytes,
  };
}

export class SqlRegistry implements Registry {
  /** The connection, shared with the C2 application's tables (tools/c2/store.ts). */
  readonly db: SqlDb;

  /**
   * 0: one server, the strict replay rule (each message newer than all before). N > 0: several server nodes,
   * which may take one device's messages out of order: a message up to N IDs older than the newest accepted is
   * taken if its ID was never accepted (each accepted ID is remembered in the table `accepted`).
   */
  readonly acceptWindow: number;

  /** Opens the registry on `db`, migrating its schema to this program's version. */
  constructor(db: SqlDb, options: { acceptWindow?: number } = {}) {
    this.db = db;
    this.acceptWindow = options.acceptWindow ?? 0;
    if (this.acceptWindow > 0) this.replayFloor = (peer) => this.floor(peer);
    try {
      migrate(db);
    } catch (e) {
      db.close();
      throw e;
    }
  }

  close(): void {
    this.db.close();
  }

  schemaVersion(): number {
    return schemaVersion(this.db);
  }

  /** Runs `fn` in one transaction (all of its writes become durable together, or none). */
  transaction<T>(fn: () => T): T {
    try {
      return this.db.transaction(fn);
    } catch (e) {
      this.peeked = null; // perhaps read inside what was undone
      throw e;
    }
  }

  group<T>(fn: () => T): Promise<T> {
    return this.db.group(() => {
      try {
        return fn();
      } catch (e) {
        this.peeked = null;
        throw e;
      }
    });
  }

  // ------------------------------------------------------------------------------------------ devices

  /**
   * The sequence counters read with the last device(), kept until the end of the current job (a microtask
   * clears them) or the next write to the counters: a message received is checked with device() then
   * sequence() (modules/srup/session.ts admitMessage), one statement instead of two, one round trip on PostgreSQL.
   */
  private peeked: { key: string; seq: SequenceState } | null = null;

  device(id: bigint): DeviceRecord | null {
    const key = hex16(id);
    const windowed = this.acceptWindow > 0;
    const r = this.db.get<DeviceRow & { s_last_sent: string | null; s_last_accepted: string | null; s_top?: string | null }>(
      `SELECT d.*, s.last_sent AS s_last_sent, s.last_accepted AS s_last_accepted${windowed ? `, (${TOP_ACCEPTED}) AS s_top` : ''}
       FROM devices d LEFT JOIN sequences s ON s.peer = d.id WHERE d.id = ?`,
      windowed ? [key, key] : [key],
    );
    if (r === undefined) return null;
    this.peek(key, {
      lastSent: r.s_last_sent === null ? 0n : fromHex16(r.s_last_sent),
      lastAccepted: windowed ? newest(r.s_last_accepted, r.s_top ?? null) : r.s_last_accepted === null ? 0n : fromHex16(r.s_last_accepted),
    });
    const { s_last_sent: _a, s_last_accepted: _b, s_top: _c, ...row } = r;
    return toDevice(row);
  }

  private peek(key: string, seq: SequenceState): void {
    if (this.peeked === null) queueMicrotask(() => (this.peeked = null));
    this.peeked = { key, seq };
  }

  devices(state?: DeviceState): DeviceRecord[] {
    const rows =
      state === undefined
        ? this.db.all<DeviceRow>('SELECT * FROM devices ORDER BY id')
        : this.db.all<DeviceRow>('SELECT * FROM devices WHERE state = ? ORDER BY id', [state]);
    return rows.map(toDevice);
  }

  /** How many devices are in each state (every state listed, zero included). */
  deviceCounts(): Record<DeviceState, number> {
    const out = Object.fromEntries(DEVICE_STATES.map((s) => [s, 0])) as Record<DeviceState, number>;
    for (const r of this.db.all<{ state: DeviceState; n: number }>('SELECT state, COUNT(*) AS n FROM devices GROUP BY state')) {
      out[r.state] = Number(r.n);
    }
    return out;
  }

  addDevice(id: bigint, publicKey: RsaPublicKey, now: number, profile?: DeviceProfile): DeviceRecord {
    return this.db.transaction(() => {
      const d = provisionedRecord(id, publicKey, this.device(id), now, profile);
      this.db.run(WRITE_DEVICE, deviceValues(d));
      return d;
    });
  }

  updateDevice(id: bigint, patch: DevicePatch, now: number): DeviceRecord {
    return this.db.transaction(() => {
      const d = this.device(id);
      if (d === null) throw new C2Error('unknown_device', `device ${id.toString(16)} is not registered`);
      const defined: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(patch)) if (v !== undefined) defined[k] = v;
      const next: DeviceRecord = { ...d, ...(defined as DevicePatch), id: d.id, createdAt: d.createdAt, updatedAt: now };
      this.db.run(WRITE_DEVICE, deviceValues(next));
      return toDevice(this.deviceRow(next));
    });
  }

  /** The row a record is stored as, read back as it would be (copies of the byte fields). */
  private deviceRow(d: DeviceRecord): DeviceRow {
    const copy = (b: Uint8Array | null) => (b === null ? null : b.slice());
    return {
      id: hex16(d.id),
      key_n: d.publicKey.n.toString(16),
      key_e: d.publicKey.e.toString(16),
      state: d.state,
      profile: d.profile,
      join_kind: d.joinKind,
      join_token: copy(d.joinToken),
      join_secret: d.joinSecret,
      observer_id: d.observerId === null ? null : hex16(d.observerId),
      observation_token: copy(d.observationToken),
      last_seen: d.lastSeen,
      identification: d.identification,
      firmware_name: d.firmwareName,
      firmware_version: d.firmwareVersion,
      last_status: d.lastResponse === null ? null : d.lastResponse.status,
      last_status_token: d.lastResponse === null ? null : copy(d.lastResponse.token),
      last_status_at: d.lastResponse === null ? null : d.lastResponse.at,
      created_at: d.createdAt,
      updated_at: d.updatedAt,
    };
  }

  /** Inside a transaction or group, nothing is waited for (PostgreSQL); outside, a write durable on return. */
  private quietWrite(sql: string, params: SqlValue[]): void {
    if (this.db.inTransaction) this.db.runQuiet(sql, params);
    else this.db.write(sql, params);
  }

  markSeen(id: bigint, now: number, lastResponse: { status: number; token: Uint8Array; at: number } | null): void {
    if (lastResponse === null) {
      this.quietWrite('UPDATE devices SET last_seen = ?, updated_at = ? WHERE id = ?', [now, now, hex16(id)]);
    } else {
      this.quietWrite(
        'UPDATE devices SET last_seen = ?, updated_at = ?, last_status = ?, last_status_token = ?, last_status_at = ? WHERE id = ?',
        [now, now, lastResponse.status, lastResponse.token, lastResponse.at, hex16(id)],
      );
    }
  }

  removeDevice(id: bigint, options: { keepCounters?: boolean } = {}): boolean {
    this.peeked = null;
    const key = hex16(id);
    return this.db.transaction(() => {
      const had = this.db.run('DELETE FROM devices WHERE id = ?', [key]) > 0;
      if (options.keepCounters !== true) {
        this.db.run('DELETE FROM sequences WHERE peer = ?', [key]);
        this.db.run('DELETE FROM accepted WHERE peer = ?', [key]);
      }
      this.db.run('DELETE FROM updates WHERE device = ?', [key]);
      this.db.run('DELETE FROM readings WHERE device = ?', [key]);
      return had;
    });
  }

  // ------------------------------------------------------------------------------------------ sequence IDs

  replayFloor?: (peer: bigint) => bigint;

  sequence(peer: bigint): SequenceState {
    const key = hex16(peer);
    if (this.peeked !== null && this.peeked.key === key) return this.peeked.seq;
    if (this.acceptWindow > 0) {
      // One round trip: the counters and the newest accepted ID.
      const r = this.db.get<{ last_sent: string | null; last_accepted: string | null; top: string | null }>(
        `SELECT s.last_sent, s.last_accepted, (${TOP_ACCEPTED}) AS top FROM (SELECT ? AS peer) p LEFT JOIN sequences s ON s.peer = p.peer`,
        [key, key],
      );
      return {
        lastSent: r?.last_sent == null ? 0n : fromHex16(r.last_sent),
        lastAccepted: newest(r?.last_accepted ?? null, r?.top ?? null),
      };
    }
    const r = this.db.get<{ last_sent: string; last_accepted: string }>('SELECT last_sent, last_accepted FROM sequences WHERE peer = ?', [key]);
    return r === undefined ? { lastSent: 0n, lastAccepted: 0n } : { lastSent: fromHex16(r.last_sent), lastAccepted: fromHex16(r.last_accepted) };
  }

  private floor(peer: bigint): bigint {
    const last = this.sequence(peer).lastAccepted;
    const w = BigInt(this.acceptWindow);
    return last > w ? last - w : 0n;
  }

  setLastSent(peer: bigint, seq: bigint): void {
    this.peeked = null;
    this.db.write(
      `INSERT INTO sequences (peer, last_sent, last_accepted) VALUES (?, ?, '${ZERO16}')
       ON CONFLICT (peer) DO UPDATE SET last_sent = excluded.last_sent`,
      [hex16(peer), hex16(seq)],
    );
  }

  setLastAccepted(peer: bigint, seq: bigint): void {
    this.peeked = null;
    if (this.acceptWindow > 0) {
      // Several nodes: no shared row to lock (two nodes taking two messages of one device never wait for each
      // other); a second node inserting the same ID waits for the first one's commit, then inserts nothing.
      const key = hex16(peer);
      const n = this.db.write('INSERT INTO accepted (peer, seq) VALUES (?, ?) ON CONFLICT (peer, seq) DO NOTHING', [key, hex16(seq)]);
      if (n === 0) throw new C2Error('already_accepted', `sequence ID ${seq} of ${idHex16(peer)} was accepted already`);
      if (seq % 64n === 0n && seq > 4n * BigInt(this.acceptWindow)) {
        // Forget IDs far below the window (the floor refuses them anyway); keep the newest ones.
        this.db.write('DELETE FROM accepted WHERE peer = ? AND seq < ?', [key, hex16(seq - 2n * BigInt(this.acceptWindow))]);
      }
      return;
    }
    // Conditional: on PostgreSQL a second node accepting the same message waits for the first one's row lock,
    // then finds the counter moved and changes nothing. Hex16 text compares as the numbers do (byte order).
    const collate = this.db.dialect === 'postgres' ? ' COLLATE "C"' : '';
    const n = this.db.write(
      `INSERT INTO sequences (peer, last_sent, last_accepted) VALUES (?, '${ZERO16}', ?)
       ON CONFLICT (peer) DO UPDATE SET last_accepted = excluded.last_accepted
       WHERE sequences.last_accepted${collate} < excluded.last_accepted${collate}`,
      [hex16(peer), hex16(seq)],
    );
    if (n === 0) throw new C2Error('already_accepted', `sequence ID ${seq} of ${idHex16(peer)} was accepted already`);
  }

  allocateSequence(peer: bigint): bigint {
    this.peeked = null;
    const key = hex16(peer);
    return this.db.transaction(() => {
      // The upsert locks the row (PostgreSQL) until the transaction ends: no other node reads it meanwhile.
      const windowed = this.acceptWindow > 0;
      const r = this.db.all<{ last_sent: string; last_accepted: string; top?: string | null }>(
        `INSERT INTO sequences (peer, last_sent, last_accepted) VALUES (?, '${ZERO16}', '${ZERO16}')
         ON CONFLICT (peer) DO UPDATE SET peer = excluded.peer RETURNING last_sent, last_accepted${windowed ? `, (${TOP_ACCEPTED}) AS top` : ''}`,
        windowed ? [key, key] : [key],
      )[0];
      const accepted = windowed ? newest(r.last_accepted, r.top ?? null) : fromHex16(r.last_accepted);
      const next = nextSequenceId(fromHex16(r.last_sent), accepted);
      this.db.runQuiet('UPDATE sequences SET last_sent = ? WHERE peer = ?', [hex16(next), key]);
      return next;
    });
  }

  forgetSequence(peer: bigint): void {
    this.peeked = null;
    this.db.transaction(() => {
      this.db.run('DELETE FROM sequences WHERE peer = ?', [hex16(peer)]);
      this.db.run('DELETE FROM accepted WHERE peer = ?', [hex16(peer)]);
    });
  }

  // ------------------------------------------------------------------------------------------ updates

  addUpdate(u: { token: string; device: bigint; url: string; digest: string }, now: number): UpdateRecord {
    return this.db.transaction(() => {
      if (this.update(u.token) !== null) throw new C2Error('duplicate_token', `update token ${u.token} already exists`);
      this.db.run(
        `INSERT INTO updates (token, device, url, digest, state, status, failure, created_at, updated_at)
         VALUES (?, ?, ?, ?, 'initiated', NULL, NULL, ?, ?)`,
        [u.token, hex16(u.device), u.url, u.digest, now, now],
      );
      return { token: u.token, device: u.device, url: u.url, digest: u.digest, state: 'initiated', status: null, failure: null, createdAt: now, updatedAt: now };
    });
  }

  update(token: string): UpdateRecord | null {
    const r = this.db.get<UpdateRow>('SELECT * FROM updates WHERE token = ?', [token]);
    return r === undefined ? null : toUpdate(r);
  }

  updates(device?: bigint): UpdateRecord[] {
    const rows =
      device === undefined
        ? this.db.all<UpdateRow>('SELECT * FROM updates ORDER BY ord')
        : this.db.all<UpdateRow>('SELECT * FROM updates WHERE device = ? ORDER BY ord', [hex16(device)]);
    return rows.map(toUpdate);
  }

  setUpdate(token: string, patch: UpdatePatch, now: number): UpdateRecord {
    return this.db.transaction(() => {
      const u = this.update(token);
      if (u === null) throw new C2Error('unknown_update', `no update with token ${token}`);
      const next: UpdateRecord = {
        ...u,
        state: patch.state !== undefined ? patch.state : u.state,
        status: patch.status !== undefined ? patch.status : u.status,
        failure: patch.failure !== undefined ? patch.failure : u.failure,
        updatedAt: now,
      };
      this.db.run('UPDATE updates SET state = ?, status = ?, failure = ?, updated_at = ? WHERE token = ?', [next.state, next.status, next.failure, now, token]);
      return next;
    });
  }

  // ------------------------------------------------------------------------------------------ audit log

  /**
   * Who caused the messages being audited now (the C2 application sets it: the operator whose request is being
   * handled), or null; stored with each entry appendAudit writes.
   */
  auditOperator: () => string | null = () => null;

  recordAudit(entry: AuditInput): void {
    this.quietWrite(
      'INSERT INTO audit (at, direction, device, type, sequence_id, token, status, bytes, operator) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      [entry.at, entry.direction, hex16(entry.device), entry.type, hex16(entry.sequenceId), entry.token, entry.status, entry.bytes, this.auditOperator()],
    );
  }

  appendAudit(entry: AuditInput): AuditEntry {
    const r = this.db.writeReturning<{ seq: number }>(
      `INSERT INTO audit (at, direction, device, type, sequence_id, token, status, bytes, operator) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
       RETURNING seq`,
      [entry.at, entry.direction, hex16(entry.device), entry.type, hex16(entry.sequenceId), entry.token, entry.status, entry.bytes, this.auditOperator()],
    )[0];
    return { ...entry, token: entry.token.slice(), bytes: entry.bytes.slice(), seq: Number(r.seq) };
  }

  audit(query: AuditQuery = {}): AuditEntry[] {
    const after = query.after ?? 0;
    // SQLite takes LIMIT -1 as "no limit"; PostgreSQL takes LIMIT NULL.
    const limit = query.limit ?? (this.db.dialect === 'sqlite' ? -1 : null);
    const rows =
      query.device === undefined
        ? this.db.all<AuditRow>(`SELECT * FROM audit WHERE seq > ? AND ${MESSAGES} ORDER BY seq LIMIT ?`, [after, limit])
        : this.db.all<AuditRow>(`SELECT * FROM audit WHERE device = ? AND seq > ? AND ${MESSAGES} ORDER BY seq LIMIT ?`, [hex16(query.device), after, limit]);
    return rows.map(toAudit);
  }

  /**
   * Retention: deletes the audit entries older than `before` (ms), then the oldest until the rest hold at most
   * `maxBytes` of messages and tokens. Returns how many were deleted. (SQLite keeps the file's size and reuses
   * the pages.)
   */
  pruneAudit(before: number, maxBytes: number): number {
    return this.db.transaction(() => {
      let n = this.db.run('DELETE FROM audit WHERE at < ?', [before]);
      // The newest entry that no longer fits, counting bytes from the newest back.
      const cut = this.db.all<{ seq: number }>(
        'SELECT seq FROM (SELECT seq, SUM(length(bytes) + length(token)) OVER (ORDER BY seq DESC) AS total FROM audit) t WHERE total > ? ORDER BY seq DESC LIMIT 1',
        [maxBytes],
      );
      if (cut.length > 0) n += this.db.run('DELETE FROM audit WHERE seq <= ?', [Number(cut[0].seq)]);
      return n;
    });
  }

  /** The newest `limit` audit entries (of one device, or all), newest first. */
  latestAudit(limit: number, device?: bigint): AuditEntry[] {
    const rows =
      device === undefined
        ? this.db.all<AuditRow>(`SELECT * FROM audit WHERE ${MESSAGES} ORDER BY seq DESC LIMIT ?`, [limit])
        : this.db.all<AuditRow>(`SELECT * FROM audit WHERE device = ? AND ${MESSAGES} ORDER BY seq DESC LIMIT ?`, [hex16(device), limit]);
    return rows.map(toAudit);
  }

  // ------------------------------------------------------------------------------------------ data history

  appendReading(r: ReadingInput): Reading {
    const key = hex16(r.device);
    return this.db.transaction(() => {
      const row = this.db.writeReturning<{ seq: number }>(
        'INSERT INTO readings (device, data_id, at, token, data) VALUES (?, ?, ?, ?, ?) RETURNING seq',
        [key, r.dataId, r.at, r.token, r.data],
      )[0];
      this.db.run(
        `DELETE FROM readings WHERE device = ? AND data_id = ? AND seq <= (
           SELECT seq FROM readings WHERE device = ? AND data_id = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)`,
        [key, r.dataId, key, r.dataId, READINGS_PER_DATA_ID],
      );
      return { device: r.device, dataId: r.dataId, at: r.at, token: r.token.slice(), data: r.data.slice(), seq: Number(row.seq) };
    });
  }

  readings(device: bigint, dataId?: string): Reading[] {
    const key = hex16(device);
    type Row = { seq: number; data_id: string; at: number; token: Uint8Array; data: Uint8Array };
    const rows =
      dataId === undefined
        ? this.db.all<Row>('SELECT seq, data_id, at, token, data FROM readings WHERE device = ? ORDER BY seq', [key])
        : this.db.all<Row>('SELECT seq, data_id, at, token, data FROM readings WHERE device = ? AND data_id = ? ORDER BY seq', [key, dataId]);
    return rows.map((x) => ({ seq: Number(x.seq), device, dataId: x.data_id, at: x.at, token: new Uint8Array(x.token), data: new Uint8Array(x.data) }));
  }
}
