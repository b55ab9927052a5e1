/**
 * The C2 registry (modules/c2/registry.ts) on SQLite, through better-sqlite3's synchronous API, plus what the C2
 * application keeps beside it: update campaigns, operator sessions, per-device console settings and a small
 * key/value table.
 *
 * Durability: WAL journal with synchronous=FULL, and every write is its own transaction (or one explicit
 * transaction), so a write that returned has been fsynced and survives kill -9 or power loss.
 *
 * Storage forms: ids are 16 lowercase hex digits (TEXT, so that the whole u64 range sorts and compares
 * correctly); sequence IDs likewise; tokens and messages are BLOBs; times are INTEGER milliseconds. The schema
 * version is PRAGMA user_version; opening a database written by an older version migrates it in place (one
 * transaction per step), opening one written by a newer version is refused.
 */
import Database from 'better-sqlite3';
import { rsaPublicKey } from '../../crypto/keys.js';
import type { RsaPublicKey } from '../../crypto/types.js';
import { C2Error } from '../../modules/c2/errors.js';
import type {
  AuditEntry,
  AuditInput,
  AuditQuery,
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
import { provisionedRecord } from '../../modules/c2/registry.js';

const MIGRATIONS: readonly string[] = [
  // 0 -> 1
  `
  CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    key_n TEXT NOT NULL,
    key_e TEXT NOT NULL,
    state TEXT NOT NULL,
    join_kind TEXT,
    join_token BLOB,
    join_secret TEXT,
    observer_id TEXT,
    observation_token BLOB,
    last_seen INTEGER,
    identification TEXT,
    firmware_name TEXT,
    firmware_version TEXT,
    last_status INTEGER,
    last_status_token BLOB,
    last_status_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  );
  CREATE INDEX devices_state ON devices(state);
  CREATE TABLE sequences (
    peer TEXT PRIMARY KEY,
    last_sent TEXT NOT NULL,
    last_accepted TEXT NOT NULL
  );
  CREATE TABLE updates (
    ord INTEGER PRIMARY KEY AUTOINCREMENT,
    token TEXT NOT NULL UNIQUE,
    device TEXT NOT NULL,
    url TEXT NOT NULL,
    digest TEXT NOT NULL,
    state TEXT NOT NULL,
    status INTEGER,
    failure TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  );
  CREATE INDEX updates_device ON updates(device);
  CREATE TABLE audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    direction TEXT NOT NULL,
    device TEXT NOT NULL,
    type TEXT NOT NULL,
    sequence_id TEXT NOT NULL,
    token BLOB NOT NULL,
    status INTEGER,
    bytes BLOB NOT NULL
  );
  CREATE INDEX audit_device ON audit(device, seq);
  CREATE TABLE device_settings (
    id TEXT PRIMARY KEY,
    palette TEXT NOT NULL DEFAULT 'default',
    label TEXT
  );
  CREATE TABLE campaigns (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    url TEXT NOT NULL,
    digest TEXT NOT NULL,
    size INTEGER,
    file TEXT,
    auto_activate INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  );
  CREATE TABLE campaign_targets (
    campaign INTEGER NOT NULL REFERENCES campaigns(id),
    device TEXT NOT NULL,
    token TEXT,
    error TEXT,
    activate INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (campaign, device)
  );
  CREATE INDEX campaign_targets_token ON campaign_targets(token);
  CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    csrf TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
  );
  CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
  );
  `,
  // 1 -> 2: the device profile (modules/c2/registry.ts DeviceProfile); devices registered before were ours.
  `
  ALTER TABLE devices ADD COLUMN profile TEXT NOT NULL DEFAULT 'srup' CHECK (profile IN ('srup', 'reference'));
  `,
];

/** The schema this program writes: one migration per version. */
export const SCHEMA_VERSION = MIGRATIONS.length;

const U64_MAX = (1n << 64n) - 1n;

function hex16(v: bigint): string {
  if (v < 0n || v > U64_MAX) throw new RangeError(`not a u64: ${v}`);
  return v.toString(16).padStart(16, '0');
}

function fromHex16(s: string): bigint {
  return BigInt('0x' + s);
}

function blob(b: Uint8Array | null): Buffer | null {
  return b === null ? null : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

function bytes(b: Buffer | null): Uint8Array | null {
  if (b === null) return null;
  const out = new Uint8Array(b.byteLength);
  out.set(b);
  return out;
}

interface DeviceRow {
  id: string;
  key_n: string;
  key_e: string;
  state: string;
  profile: string;
  join_kind: string | null;
  join_token: Buffer | null;
  join_secret: string | null;
  observer_id: string | null;
  observation_token: Buffer | null;
  last_seen: number | null;
  identification: string | null;
  firmware_name: string | null;
  firmware_version: string | null;
  last_status: number | null;
  last_status_token: Buffer | null;
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
  token: Buffer;
  status: number | null;
  bytes: Buffer;
}

/** A campaign: one image sent to a set of devices. */
export interface CampaignRecord {
  readonly id: number;
  readonly name: string;
  /** The URL the devices download from. */
  readonly url: string;
  /** Lowercase hex SHA-256 of the image. */
  readonly digest: string;
  /** Size in bytes when the server holds the file, else null. */
  readonly size: number | null;
  /** The file name under the data directory's images folder when the server serves the image, else null. */
  readonly file: string | null;
  /** Send the activate to each device as soon as it reports a good download. */
  readonly autoActivate: boolean;
  readonly createdAt: number;
  readonly updatedAt: number;
}

/** One device in a campaign: the update token once the initiate went out, or why it could not be sent. */
export interface CampaignTarget {
  readonly campaign: number;
  readonly device: bigint;
  readonly token: string | null;
  readonly error: string | null;
  /** The operator asked for activation (sent when the device reports 0x00, or at once if it already has). */
  readonly activate: boolean;
  readonly updatedAt: number;
}

export interface SessionRecord {
  /** SHA-256 (hex) of the session cookie value; the cookie itself is never stored. */
  readonly id: string;
  readonly csrf: string;
  readonly createdAt: number;
  readonly expiresAt: number;
}

export interface DeviceSettings {
  readonly palette: string;
  readonly label: string | null;
}

const DEVICE_STATES: readonly DeviceState[] = [
  'provisioned',
  'pending',
  'joined',
  'refused',
  'failed',
  'terminated',
  'deregistered',
  'resigned',
];

export class SqliteRegistry implements Registry {
  readonly path: string;
  private readonly db: Database.Database;
  private readonly st: Record<string, Database.Statement>;

  constructor(path: string) {
    this.path = path;
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('busy_timeout = 5000');
    this.migrate();
    const p = (sql: string) => this.db.prepare(sql);
    this.st = {
      device: p('SELECT * FROM devices WHERE id = ?'),
      devicesAll: p('SELECT * FROM devices ORDER BY id'),
      devicesByState: p('SELECT * FROM devices WHERE state = ? ORDER BY id'),
      deviceCount: p('SELECT state, COUNT(*) AS n FROM devices GROUP BY state'),
      insertDevice: p(`INSERT OR REPLACE INTO devices (id, key_n, key_e, state, profile, join_kind, join_token,
        join_secret, observer_id, observation_token, last_seen, identification, firmware_name, firmware_version,
        last_status, last_status_token, last_status_at, created_at, updated_at)
        VALUES (@id, @key_n, @key_e, @state, @profile, @join_kind, @join_token, @join_secret, @observer_id,
        @observation_token, @last_seen, @identification, @firmware_name, @firmware_version, @last_status,
        @last_status_token, @last_status_at, @created_at, @updated_at)`),
      deleteDevice: p('DELETE FROM devices WHERE id = ?'),
      deleteDeviceUpdates: p('DELETE FROM updates WHERE device = ?'),
      sequence: p('SELECT last_sent, last_accepted FROM sequences WHERE peer = ?'),
      setSent: p(`INSERT INTO sequences (peer, last_sent, last_accepted) VALUES (?, ?, '0000000000000000')
        ON CONFLICT(peer) DO UPDATE SET last_sent = excluded.last_sent`),
      setAccepted: p(`INSERT INTO sequences (peer, last_sent, last_accepted) VALUES (?, '0000000000000000', ?)
        ON CONFLICT(peer) DO UPDATE SET last_accepted = excluded.last_accepted`),
      forgetSequence: p('DELETE FROM sequences WHERE peer = ?'),
      addUpdate: p(`INSERT INTO updates (token, device, url, digest, state, status, failure, created_at, updated_at)
        VALUES (?, ?, ?, ?, 'initiated', NULL, NULL, ?, ?)`),
      update: p('SELECT * FROM updates WHERE token = ?'),
      updatesAll: p('SELECT * FROM updates ORDER BY ord'),
      updatesByDevice: p('SELECT * FROM updates WHERE device = ? ORDER BY ord'),
      setUpdate: p('UPDATE updates SET state = ?, status = ?, failure = ?, updated_at = ? WHERE token = ?'),
      appendAudit: p(`INSERT INTO audit (at, direction, device, type, sequence_id, token, status, bytes)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
      auditAll: p('SELECT * FROM audit WHERE seq > ? ORDER BY seq LIMIT ?'),
      auditByDevice: p('SELECT * FROM audit WHERE device = ? AND seq > ? ORDER BY seq LIMIT ?'),
      auditLatest: p('SELECT * FROM audit ORDER BY seq DESC LIMIT ?'),
      auditLatestByDevice: p('SELECT * FROM audit WHERE device = ? ORDER BY seq DESC LIMIT ?'),
      settings: p('SELECT palette, label FROM device_settings WHERE id = ?'),
      allSettings: p('SELECT id, palette, label FROM device_settings'),
      setSettings: p(`INSERT INTO device_settings (id, palette, label) VALUES (?, ?, ?)
        ON CONFLICT(id) DO UPDATE SET palette = excluded.palette, label = excluded.label`),
      addCampaign: p(`INSERT INTO campaigns (name, url, digest, size, file, auto_activate, created_at, updated_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
      campaign: p('SELECT * FROM campaigns WHERE id = ?'),
      campaigns: p('SELECT * FROM campaigns ORDER BY id'),
      campaignByFile: p('SELECT * FROM campaigns WHERE file = ?'),
      touchCampaign: p('UPDATE campaigns SET updated_at = ? WHERE id = ?'),
      upsertTarget: p(`INSERT INTO campaign_targets (campaign, device, token, error, activate, updated_at)
        VALUES (@campaign, @device, @token, @error, @activate, @updated_at)
        ON CONFLICT(campaign, device) DO UPDATE SET token = excluded.token, error = excluded.error,
        activate = excluded.activate, updated_at = excluded.updated_at`),
      target: p('SELECT * FROM campaign_targets WHERE campaign = ? AND device = ?'),
      targets: p('SELECT * FROM campaign_targets WHERE campaign = ? ORDER BY device'),
      targetByToken: p('SELECT * FROM campaign_targets WHERE token = ?'),
      addSession: p('INSERT INTO sessions (id, csrf, created_at, expires_at) VALUES (?, ?, ?, ?)'),
      session: p('SELECT * FROM sessions WHERE id = ?'),
      deleteSession: p('DELETE FROM sessions WHERE id = ?'),
      purgeSessions: p('DELETE FROM sessions WHERE expires_at <= ?'),
      getMeta: p('SELECT value FROM meta WHERE key = ?'),
      setMeta: p(`INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`),
    };
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  schemaVersion(): number {
    return this.db.pragma('user_version', { simple: true }) as number;
  }

  private migrate(): void {
    const from = this.schemaVersion();
    if (from > MIGRATIONS.length) {
      throw new Error(`${this.path} was written by a newer version (schema ${from}; this program knows ${MIGRATIONS.length})`);
    }
    for (let v = from; v < MIGRATIONS.length; v++) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[v]);
        this.db.pragma(`user_version = ${v + 1}`);
      })();
    }
  }

  /** Runs `fn` in one transaction (all of its writes become durable together, or none). */
  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  // ------------------------------------------------------------------------------------------ devices

  private toDevice(r: DeviceRow): DeviceRecord {
    return {
      id: fromHex16(r.id),
      publicKey: rsaPublicKey(BigInt('0x' + r.key_n), BigInt('0x' + r.key_e)),
      state: r.state as DeviceState,
      profile: r.profile as DeviceProfile,
      joinKind: r.join_kind as JoinKind | null,
      joinToken: bytes(r.join_token),
      joinSecret: r.join_secret,
      observerId: r.observer_id === null ? null : fromHex16(r.observer_id),
      observationToken: bytes(r.observation_token),
      lastSeen: r.last_seen,
      identification: r.identification,
      firmwareName: r.firmware_name,
      firmwareVersion: r.firmware_version,
      lastResponse:
        r.last_status === null || r.last_status_token === null || r.last_status_at === null
          ? null
          : { status: r.last_status, token: bytes(r.last_status_token) as Uint8Array, at: r.last_status_at },
      createdAt: r.created_at,
      updatedAt: r.updated_at,
    };
  }

  private writeDevice(d: DeviceRecord): void {
    this.st.insertDevice.run({
      id: hex16(d.id),
      key_n: d.publicKey.n.toString(16),
      key_e: d.publicKey.e.toString(16),
      state: d.state,
      profile: d.profile,
      join_kind: d.joinKind,
      join_token: blob(d.joinToken),
      join_secret: d.joinSecret,
      observer_id: d.observerId === null ? null : hex16(d.observerId),
      observation_token: blob(d.observationToken),
      last_seen: d.lastSeen,
      identification: d.identification,
      firmware_name: d.firmwareName,
      firmware_version: d.firmwareVersion,
      last_status: d.lastResponse === null ? null : d.lastResponse.status,
      last_status_token: d.lastResponse === null ? null : blob(d.lastResponse.token),
      last_status_at: d.lastResponse === null ? null : d.lastResponse.at,
      created_at: d.createdAt,
      updated_at: d.updatedAt,
    });
  }

  device(id: bigint): DeviceRecord | null {
    const r = this.st.device.get(hex16(id)) as DeviceRow | undefined;
    return r === undefined ? null : this.toDevice(r);
  }

  devices(state?: DeviceState): DeviceRecord[] {
    const rows = (state === undefined ? this.st.devicesAll.all() : this.st.devicesByState.all(state)) as DeviceRow[];
    return rows.map((r) => this.toDevice(r));
  }

  /** How many devices are in each state (every state listed, zero included). */
  deviceCounts(): Record<DeviceState, number> {
    const out = Object.fromEntries(DEVICE_STATES.map((s) => [s, 0])) as Record<DeviceState, number>;
    for (const r of this.st.deviceCount.all() as { state: DeviceState; n: number }[]) out[r.state] = r.n;
    return out;
  }

  addDevice(id: bigint, publicKey: RsaPublicKey, now: number, profile?: DeviceProfile): DeviceRecord {
    const d = provisionedRecord(id, publicKey, this.device(id), now, profile);
    this.writeDevice(d);
    return d;
  }

  updateDevice(id: bigint, patch: DevicePatch, now: number): DeviceRecord {
    const d = this.device(id);
    if (d === null) throw new C2Error('unknown_device', `device ${id.toString(16)} is not registered`);
    const defined: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(patch)) if (v !== undefined) defined[k] = v;
    const next: DeviceRecord = { ...d, ...(defined as DevicePatch), id: d.id, createdAt: d.createdAt, updatedAt: now };
    this.writeDevice(next);
    return this.device(id) as DeviceRecord;
  }

  removeDevice(id: bigint): boolean {
    const key = hex16(id);
    return this.transaction(() => {
      const had = this.st.deleteDevice.run(key).changes > 0;
      this.st.forgetSequence.run(key);
      this.st.deleteDeviceUpdates.run(key);
      return had;
    });
  }

  // ------------------------------------------------------------------------------------------ sequence IDs

  sequence(peer: bigint): SequenceState {
    const r = this.st.sequence.get(hex16(peer)) as { last_sent: string; last_accepted: string } | undefined;
    if (r === undefined) return { lastSent: 0n, lastAccepted: 0n };
    return { lastSent: fromHex16(r.last_sent), lastAccepted: fromHex16(r.last_accepted) };
  }

  setLastSent(peer: bigint, seq: bigint): void {
    this.st.setSent.run(hex16(peer), hex16(seq));
  }

  setLastAccepted(peer: bigint, seq: bigint): void {
    this.st.setAccepted.run(hex16(peer), hex16(seq));
  }

  forgetSequence(peer: bigint): void {
    this.st.forgetSequence.run(hex16(peer));
  }

  // ------------------------------------------------------------------------------------------ updates

  private toUpdate(r: UpdateRow): UpdateRecord {
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

  addUpdate(u: { token: string; device: bigint; url: string; digest: string }, now: number): UpdateRecord {
    if (this.st.update.get(u.token) !== undefined) {
      throw new C2Error('duplicate_token', `update token ${u.token} already exists`);
    }
    this.st.addUpdate.run(u.token, hex16(u.device), u.url, u.digest, now, now);
    return this.update(u.token) as UpdateRecord;
  }

  update(token: string): UpdateRecord | null {
    const r = this.st.update.get(token) as UpdateRow | undefined;
    return r === undefined ? null : this.toUpdate(r);
  }

  updates(device?: bigint): UpdateRecord[] {
    const rows = (device === undefined ? this.st.updatesAll.all() : this.st.updatesByDevice.all(hex16(device))) as UpdateRow[];
    return rows.map((r) => this.toUpdate(r));
  }

  setUpdate(token: string, patch: UpdatePatch, now: number): UpdateRecord {
    const u = this.update(token);
    if (u === null) throw new C2Error('unknown_update', `no update with token ${token}`);
    const state = patch.state !== undefined ? patch.state : u.state;
    const status = patch.status !== undefined ? patch.status : u.status;
    const failure = patch.failure !== undefined ? patch.failure : u.failure;
    this.st.setUpdate.run(state, status, failure, now, token);
    return this.update(token) as UpdateRecord;
  }

  // ------------------------------------------------------------------------------------------ audit log

  private toAudit(r: AuditRow): AuditEntry {
    return {
      seq: r.seq,
      at: r.at,
      direction: r.direction as 'in' | 'out',
      device: fromHex16(r.device),
      type: r.type,
      sequenceId: fromHex16(r.sequence_id),
      token: bytes(r.token) as Uint8Array,
      status: r.status,
      bytes: bytes(r.bytes) as Uint8Array,
    };
  }

  appendAudit(entry: AuditInput): AuditEntry {
    const info = this.st.appendAudit.run(
      entry.at,
      entry.direction,
      hex16(entry.device),
      entry.type,
      hex16(entry.sequenceId),
      blob(entry.token),
      entry.status,
      blob(entry.bytes),
    );
    return { ...entry, token: entry.token.slice(), bytes: entry.bytes.slice(), seq: Number(info.lastInsertRowid) };
  }

  audit(query: AuditQuery = {}): AuditEntry[] {
    const after = query.after ?? 0;
    const limit = query.limit ?? -1;
    const rows = (
      query.device === undefined
        ? this.st.auditAll.all(after, limit)
        : this.st.auditByDevice.all(hex16(query.device), after, limit)
    ) as AuditRow[];
    return rows.map((r) => this.toAudit(r));
  }

  /** The newest `limit` audit entries (of one device, or all), newest first. */
  latestAudit(limit: number, device?: bigint): AuditEntry[] {
    const rows = (
      device === undefined ? this.st.auditLatest.all(limit) : this.st.auditLatestByDevice.all(hex16(device), limit)
    ) as AuditRow[];
    return rows.map((r) => this.toAudit(r));
  }

  // ------------------------------------------------------------------------------------------ console settings

  deviceSettings(id: bigint): DeviceSettings {
    const r = this.st.settings.get(hex16(id)) as { palette: string; label: string | null } | undefined;
    return r === undefined ? { palette: 'default', label: null } : { palette: r.palette, label: r.label };
  }

  allDeviceSettings(): Map<bigint, DeviceSettings> {
    const out = new Map<bigint, DeviceSettings>();
    for (const r of this.st.allSettings.all() as { id: string; palette: string; label: string | null }[]) {
      out.set(fromHex16(r.id), { palette: r.palette, label: r.label });
    }
    return out;
  }

  setDeviceSettings(id: bigint, s: DeviceSettings): void {
    this.st.setSettings.run(hex16(id), s.palette, s.label);
  }

  // ------------------------------------------------------------------------------------------ campaigns

  private toCampaign(r: {
    id: number;
    name: string;
    url: string;
    digest: string;
    size: number | null;
    file: string | null;
    auto_activate: number;
    created_at: number;
    updated_at: number;
  }): CampaignRecord {
    return {
      id: r.id,
      name: r.name,
      url: r.url,
      digest: r.digest,
      size: r.size,
      file: r.file,
      autoActivate: r.auto_activate !== 0,
      createdAt: r.created_at,
      updatedAt: r.updated_at,
    };
  }

  private toTarget(r: {
    campaign: number;
    device: string;
    token: string | null;
    error: string | null;
    activate: number;
    updated_at: number;
  }): CampaignTarget {
    return {
      campaign: r.campaign,
      device: fromHex16(r.device),
      token: r.token,
      error: r.error,
      activate: r.activate !== 0,
      updatedAt: r.updated_at,
    };
  }

  addCampaign(
    c: { name: string; url: string; digest: string; size: number | null; file: string | null; autoActivate: boolean; devices: readonly bigint[] },
    now: number,
  ): CampaignRecord {
    return this.transaction(() => {
      const info = this.st.addCampaign.run(c.name, c.url, c.digest, c.size, c.file, c.autoActivate ? 1 : 0, now, now);
      const id = Number(info.lastInsertRowid);
      for (const d of c.devices) {
        this.st.upsertTarget.run({ campaign: id, device: hex16(d), token: null, error: null, activate: c.autoActivate ? 1 : 0, updated_at: now });
      }
      return this.campaign(id) as CampaignRecord;
    });
  }

  campaign(id: number): CampaignRecord | null {
    const r = this.st.campaign.get(id) as Parameters<SqliteRegistry['toCampaign']>[0] | undefined;
    return r === undefined ? null : this.toCampaign(r);
  }

  campaigns(): CampaignRecord[] {
    return (this.st.campaigns.all() as Parameters<SqliteRegistry['toCampaign']>[0][]).map((r) => this.toCampaign(r));
  }

  /** The campaign serving the file `file` (images are served only while a campaign names them). */
  campaignByFile(file: string): CampaignRecord | null {
    const r = this.st.campaignByFile.get(file) as Parameters<SqliteRegistry['toCampaign']>[0] | undefined;
    return r === undefined ? null : this.toCampaign(r);
  }

  targets(campaign: number): CampaignTarget[] {
    return (this.st.targets.all(campaign) as Parameters<SqliteRegistry['toTarget']>[0][]).map((r) => this.toTarget(r));
  }

  target(campaign: number, device: bigint): CampaignTarget | null {
    const r = this.st.target.get(campaign, hex16(device)) as Parameters<SqliteRegistry['toTarget']>[0] | undefined;
    return r === undefined ? null : this.toTarget(r);
  }

  targetByToken(token: string): CampaignTarget | null {
    const r = this.st.targetByToken.get(token) as Parameters<SqliteRegistry['toTarget']>[0] | undefined;
    return r === undefined ? null : this.toTarget(r);
  }

  setTarget(campaign: number, device: bigint, patch: { token?: string | null; error?: string | null; activate?: boolean }, now: number): CampaignTarget {
    const t = this.target(campaign, device);
    if (t === null) throw new Error(`device ${hex16(device)} is not in campaign ${campaign}`);
    this.transaction(() => {
      this.st.upsertTarget.run({
        campaign,
        device: hex16(device),
        token: patch.token !== undefined ? patch.token : t.token,
        error: patch.error !== undefined ? patch.error : t.error,
        activate: (patch.activate !== undefined ? patch.activate : t.activate) ? 1 : 0,
        updated_at: now,
      });
      this.st.touchCampaign.run(now, campaign);
    });
    return this.target(campaign, device) as CampaignTarget;
  }

  // ------------------------------------------------------------------------------------------ sessions

  addSession(s: SessionRecord): void {
    this.st.addSession.run(s.id, s.csrf, s.createdAt, s.expiresAt);
  }

  session(id: string): SessionRecord | null {
    const r = this.st.session.get(id) as { id: string; csrf: string; created_at: number; expires_at: number } | undefined;
    return r === undefined ? null : { id: r.id, csrf: r.csrf, createdAt: r.created_at, expiresAt: r.expires_at };
  }

  deleteSession(id: string): void {
    this.st.deleteSession.run(id);
  }

  /** Deletes sessions that expired at or before `now`; returns how many. */
  purgeSessions(now: number): number {
    return this.st.purgeSessions.run(now).changes;
  }

  // ------------------------------------------------------------------------------------------ key/value

  meta(key: string): string | null {
    const r = this.st.getMeta.get(key) as { value: string } | undefined;
    return r === undefined ? null : r.value;
  }

  setMeta(key: string, value: string): void {
    this.st.setMeta.run(key, value);
  }
}
