/**
 * What the C2 application keeps beside the registry, in the same database (hosts/node/sql-schema.ts): the image
 * library, update campaigns and their targets, operators and their sessions, per-device console settings and
 * tags, the operators' actions (audit entries of direction 'operator'), and a small key/value table.
 * Writes are durable when they return, as the registry's.
 */
import type { SqlDb } from '../../hosts/node/sql.js';
import { idHex16 } from '../../modules/srup/bytes.js';

/** What the operator made of a campaign: 'done' is not stored (tools/c2/campaigns.ts works it out). */
export type CampaignState = 'running' | 'paused' | 'waiting' | 'cancelled';

/**
 * How a campaign rolls out: a first wave (N devices, or P % of them, at least one), then the rest, on the
 * operator's go ('manual') or by itself when the first wave's failure rate is at most maxFailureRate ('auto').
 */
export interface WavePlan {
  readonly first: { readonly count: number } | { readonly percent: number };
  readonly then: 'manual' | 'auto';
  readonly maxFailureRate: number;
}

/** How the targets were chosen, as the operator gave it (the resolved devices are the targets). */
export type TargetSpec =
  | { readonly devices: string[] }
  | { readonly tag: string }
  | { readonly filter: Readonly<Record<string, string | boolean>> };

/** An image in the library: uploaded once, named and versioned, reused by campaigns. */
export interface ImageRecord {
  readonly id: number;
  readonly name: string;
  readonly version: string;
  /** Lowercase hex SHA-256. */
  readonly digest: string;
  readonly size: number;
  /** File name under the images folder: "<digest>.bin". */
  readonly file: string;
  readonly uploadedAt: number;
  /** The operator who uploaded it. */
  readonly uploadedBy: string;
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
  /** The library image it sends, or null (an image named by URL, or one since removed from the library). */
  readonly image: number | null;
  readonly state: CampaignState;
  /** Why it waits (state 'waiting'), else null. */
  readonly reason: string | null;
  /** The wave being sent (0 first); every target of a wave up to this one has been sent. */
  readonly currentWave: number;
  /** Null: one wave. */
  readonly plan: WavePlan | null;
  /** A tag or filter as given; null for a list of devices (its targets are the list). */
  readonly target: TargetSpec | null;
  readonly createdBy: string | null;
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
  /** The wave it belongs to (0 first). */
  readonly wave: number;
  readonly updatedAt: number;
}

/** A target with its update's state as the registry holds it (null before the initiate went out). */
export interface TargetWithUpdate extends CampaignTarget {
  readonly updateState: string | null;
  readonly status: number | null;
  readonly failure: string | null;
}

export interface SessionRecord {
  /** SHA-256 (hex) of the session cookie value; the cookie itself is never stored. */
  readonly id: string;
  readonly csrf: string;
  /** The operator who logged in ('admin' for the operator token of the data directory). */
  readonly operator: string;
  readonly createdAt: number;
  readonly expiresAt: number;
}

export interface DeviceSettings {
  readonly palette: string;
  readonly label: string | null;
}

/** A named operator account: a password (scrypt, auth.ts) or a token (its digest), or both. */
export interface OperatorRecord {
  readonly name: string;
  /** "scrypt$N$r$p$salt$hash", or null. */
  readonly password: string | null;
  /** "sha256$<hex>" of the operator's token, or null. */
  readonly token: string | null;
  readonly createdAt: number;
  readonly lastLogin: number | null;
}

interface OperatorRow {
  name: string;
  password: string | null;
  token: string | null;
  created_at: number;
  last_login: number | null;
}

function toOperator(r: OperatorRow): OperatorRecord {
  return { name: r.name, password: r.password, token: r.token, createdAt: r.created_at, lastLogin: r.last_login };
}

interface CampaignRow {
  id: number;
  name: string;
  url: string;
  digest: string;
  size: number | null;
  file: string | null;
  auto_activate: number;
  image: number | null;
  state: string;
  reason: string | null;
  current_wave: number;
  waves: string | null;
  target: string | null;
  created_by: string | null;
  created_at: number;
  updated_at: number;
}

interface TargetRow {
  campaign: number;
  device: string;
  token: string | null;
  error: string | null;
  activate: number;
  wave: number;
  updated_at: number;
}

interface ImageRow {
  id: number;
  name: string;
  version: string;
  digest: string;
  size: number;
  file: string;
  uploaded_at: number;
  uploaded_by: string;
}

function toImage(r: ImageRow): ImageRecord {
  return {
    id: Number(r.id),
    name: r.name,
    version: r.version,
    digest: r.digest,
    size: Number(r.size),
    file: r.file,
    uploadedAt: r.uploaded_at,
    uploadedBy: r.uploaded_by,
  };
}

function parseJson<T>(text: string | null): T | null {
  if (text === null) return null;
  try {
    return JSON.parse(text) as T;
  } catch {
    return null;
  }
}

function toState(s: string): CampaignState {
  return s === 'paused' || s === 'waiting' || s === 'cancelled' ? s : 'running';
}

function toCampaign(r: CampaignRow): CampaignRecord {
  return {
    id: Number(r.id),
    name: r.name,
    url: r.url,
    digest: r.digest,
    size: r.size,
    file: r.file,
    autoActivate: r.auto_activate !== 0,
    image: r.image === null ? null : Number(r.image),
    state: toState(r.state),
    reason: r.reason,
    currentWave: Number(r.current_wave),
    plan: parseJson<WavePlan>(r.waves),
    target: parseJson<TargetSpec>(r.target),
    createdBy: r.created_by,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

function toTarget(r: TargetRow): CampaignTarget {
  return {
    campaign: Number(r.campaign),
    device: BigInt('0x' + r.device),
    token: r.token,
    error: r.error,
    activate: r.activate !== 0,
    wave: Number(r.wave),
    updatedAt: r.updated_at,
  };
}

const UPSERT_TARGET = `INSERT INTO campaign_targets (campaign, device, token, error, activate, wave, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)
  ON CONFLICT (campaign, device) DO UPDATE SET token = excluded.token, error = excluded.error,
  activate = excluded.activate, updated_at = excluded.updated_at`;

/** Why a store call was refused. */
export type StoreErrorReason = 'unknown_target'; // a device that is not in the campaign

export class StoreError extends Error {
  readonly reason: StoreErrorReason;
  constructor(reason: StoreErrorReason, message: string) {
    super(message);
    this.name = 'StoreError';
    this.reason = reason;
  }
}

/** An operator's action for the audit log (`device` null for one on no single device). */
export interface OperatorAction {
  at: number;
  operator: string;
  type: string;
  device: bigint | null;
  summary: string;
}

const RECORD_ACTION = `INSERT INTO audit (at, direction, device, type, sequence_id, token, status, bytes, operator, summary)
  VALUES (?, 'operator', ?, ?, '0000000000000000', ?, NULL, ?, ?, ?) RETURNING seq`;

const actionValues = (a: OperatorAction) => [a.at, a.device === null ? '' : idHex16(a.device), a.type, new Uint8Array(0), new Uint8Array(0), a.operator, a.summary];

export class C2Store {
  constructor(readonly db: SqlDb) {}

  // ------------------------------------------------------------------------------------------ console settings

  deviceSettings(id: bigint): DeviceSettings {
    const r = this.db.get<{ palette: string; label: string | null }>('SELECT palette, label FROM device_settings WHERE id = ?', [idHex16(id)]);
    return r === undefined ? { palette: 'default', label: null } : { palette: r.palette, label: r.label };
  }

  allDeviceSettings(): Map<bigint, DeviceSettings> {
    const out = new Map<bigint, DeviceSettings>();
    for (const r of this.db.all<{ id: string; palette: string; label: string | null }>('SELECT id, palette, label FROM device_settings')) {
      out.set(BigInt('0x' + r.id), { palette: r.palette, label: r.label });
    }
    return out;
  }

  setDeviceSettings(id: bigint, s: DeviceSettings): void {
    this.db.write(
      `INSERT INTO device_settings (id, palette, label) VALUES (?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET palette = excluded.palette, label = excluded.label`,
      [idHex16(id), s.palette, s.label],
    );
  }

  // ------------------------------------------------------------------------------------------ campaigns

  /**
   * Stores a campaign and its targets: `devices` in order, the first `firstWave` of them in wave 0 and the rest
   * in wave 1 (all in wave 0 when `firstWave` is omitted or covers them all).
   */
  addCampaign(
    c: {
      name: string;
      url: string;
      digest: string;
      size: number | null;
      file: string | null;
      autoActivate: boolean;
      devices: readonly bigint[];
      image?: number | null;
      plan?: WavePlan | null;
      firstWave?: number;
      target?: TargetSpec | null;
      createdBy?: string | null;
    },
    now: number,
  ): CampaignRecord {
    const first = c.firstWave === undefined ? c.devices.length : Math.min(c.firstWave, c.devices.length);
    const plan = first < c.devices.length ? (c.plan ?? null) : null;
    return this.db.transaction(() => {
      const r = this.db.all<{ id: number }>(
        `INSERT INTO campaigns (name, url, digest, size, file, auto_activate, image, state, current_wave, waves, target, created_by, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, 'running', 0, ?, ?, ?, ?, ?) RETURNING id`,
        [
          c.name,
          c.url,
          c.digest,
          c.size,
          c.file,
          c.autoActivate ? 1 : 0,
          c.image ?? null,
          plan === null ? null : JSON.stringify(plan),
          // A device list is the targets themselves (campaign_targets): not kept twice, nor in a row written often.
          c.target == null || 'devices' in c.target ? null : JSON.stringify(c.target),
          c.createdBy ?? null,
          now,
          now,
        ],
      )[0];
      const id = Number(r.id);
      c.devices.forEach((d, i) => this.db.run(UPSERT_TARGET, [id, idHex16(d), null, null, c.autoActivate ? 1 : 0, i < first ? 0 : 1, now]));
      return this.campaign(id) as CampaignRecord;
    });
  }

  campaign(id: number): CampaignRecord | null {
    const r = this.db.get<CampaignRow>('SELECT * FROM campaigns WHERE id = ?', [id]);
    return r === undefined ? null : toCampaign(r);
  }

  campaigns(): CampaignRecord[] {
    return this.db.all<CampaignRow>('SELECT * FROM campaigns ORDER BY id').map(toCampaign);
  }

  /** The campaign serving the file `file` (images are served only while a campaign names them). */
  campaignByFile(file: string): CampaignRecord | null {
    const r = this.db.get<CampaignRow>('SELECT * FROM campaigns WHERE file = ? ORDER BY id LIMIT 1', [file]);
    return r === undefined ? null : toCampaign(r);
  }

  targets(campaign: number): CampaignTarget[] {
    return this.db.all<TargetRow>('SELECT * FROM campaign_targets WHERE campaign = ? ORDER BY device', [campaign]).map(toTarget);
  }

  /** The targets of one wave with their updates' state (one query: the registry's updates table is beside). */
  waveTargets(campaign: number, wave: number): TargetWithUpdate[] {
    return this.db
      .all<TargetRow & { u_state: string | null; u_status: number | null; u_failure: string | null }>(
        `SELECT t.*, u.state AS u_state, u.status AS u_status, u.failure AS u_failure
         FROM campaign_targets t LEFT JOIN updates u ON u.token = t.token
         WHERE t.campaign = ? AND t.wave = ? ORDER BY t.device`,
        [campaign, wave],
      )
      .map((r) => ({ ...toTarget(r), updateState: r.u_state, status: r.u_status, failure: r.u_failure }));
  }

  /**
   * Every target of a wave has settled (tools/c2/campaigns.ts): none is unsent, waiting for an answer, or staged
   * with an activation owed. Stops at the first one that has not.
   */
  waveSettled(campaign: number, wave: number): boolean {
    const r = this.db.get<{ id: number }>(
      `SELECT 1 AS id FROM campaign_targets t LEFT JOIN updates u ON u.token = t.token
       WHERE t.campaign = ? AND t.wave = ? AND (
         (u.state IS NULL AND t.error IS NULL) OR u.state IN ('initiated', 'activating') OR (u.state = 'staged' AND t.activate <> 0))
       LIMIT 1`,
      [campaign, wave],
    );
    return r === undefined;
  }

  /** Every target of a campaign with its update's state (one query). */
  targetsWithUpdates(campaign: number): (TargetWithUpdate & { updateAt: number | null })[] {
    return this.db
      .all<TargetRow & { u_state: string | null; u_status: number | null; u_failure: string | null; u_updated_at: number | null }>(
        `SELECT t.*, u.state AS u_state, u.status AS u_status, u.failure AS u_failure, u.updated_at AS u_updated_at
         FROM campaign_targets t LEFT JOIN updates u ON u.token = t.token
         WHERE t.campaign = ? ORDER BY t.device`,
        [campaign],
      )
      .map((r) => ({ ...toTarget(r), updateState: r.u_state, status: r.u_status, failure: r.u_failure, updateAt: r.u_updated_at }));
  }

  /**
   * Moves a campaign from one state and wave to another, only if it is still in the state and wave the caller
   * read (one of `from`): true when this call made the change. Several server nodes may try the same move at
   * once; exactly one succeeds.
   */
  transition(
    campaign: number,
    from: { states: readonly CampaignState[]; wave?: number },
    to: { state: CampaignState; reason?: string | null; wave?: number },
    now: number,
  ): boolean {
    const states = from.states.map(() => '?').join(', ');
    const params: (string | number | null)[] = [to.state, to.reason ?? null];
    let set = 'state = ?, reason = ?';
    if (to.wave !== undefined) {
      set += ', current_wave = ?';
      params.push(to.wave);
    }
    set += ', updated_at = ?';
    params.push(now, campaign, ...from.states);
    let where = `id = ? AND state IN (${states})`;
    if (from.wave !== undefined) {
      where += ' AND current_wave = ?';
      params.push(from.wave);
    }
    return this.db.write(`UPDATE campaigns SET ${set} WHERE ${where}`, params) === 1;
  }

  target(campaign: number, device: bigint): CampaignTarget | null {
    const r = this.db.get<TargetRow>('SELECT * FROM campaign_targets WHERE campaign = ? AND device = ?', [campaign, idHex16(device)]);
    return r === undefined ? null : toTarget(r);
  }

  targetByToken(token: string): CampaignTarget | null {
    const r = this.db.get<TargetRow>('SELECT * FROM campaign_targets WHERE token = ?', [token]);
    return r === undefined ? null : toTarget(r);
  }

  setTarget(campaign: number, device: bigint, patch: { token?: string | null; error?: string | null; activate?: boolean }, now: number): CampaignTarget {
    return this.db.transaction(() => {
      const t = this.target(campaign, device);
      if (t === null) throw new StoreError('unknown_target', `device ${idHex16(device)} is not in campaign ${campaign}`);
      const next: CampaignTarget = {
        campaign,
        device,
        token: patch.token !== undefined ? patch.token : t.token,
        error: patch.error !== undefined ? patch.error : t.error,
        activate: patch.activate !== undefined ? patch.activate : t.activate,
        wave: t.wave,
        updatedAt: now,
      };
      this.db.run(UPSERT_TARGET, [campaign, idHex16(device), next.token, next.error, next.activate ? 1 : 0, t.wave, now]);
      this.db.run('UPDATE campaigns SET updated_at = ? WHERE id = ?', [now, campaign]);
      return next;
    });
  }

  // ------------------------------------------------------------------------------------------ images

  /**
   * Adds an image to the library, or returns the one with the same digest (its name and version unchanged):
   * `created` says which.
   */
  addImage(i: Omit<ImageRecord, 'id'>): { image: ImageRecord; created: boolean } {
    return this.db.transaction(() => {
      const had = this.imageByDigest(i.digest);
      if (had !== null) return { image: had, created: false };
      const r = this.db.all<ImageRow>(
        `INSERT INTO images (name, version, digest, size, file, uploaded_at, uploaded_by) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING *`,
        [i.name, i.version, i.digest, i.size, i.file, i.uploadedAt, i.uploadedBy],
      )[0];
      return { image: toImage(r), created: true };
    });
  }

  image(id: number): ImageRecord | null {
    const r = this.db.get<ImageRow>('SELECT * FROM images WHERE id = ?', [id]);
    return r === undefined ? null : toImage(r);
  }

  imageByDigest(digest: string): ImageRecord | null {
    const r = this.db.get<ImageRow>('SELECT * FROM images WHERE digest = ?', [digest]);
    return r === undefined ? null : toImage(r);
  }

  /** The library, newest first, with how many campaigns use each image. */
  images(): (ImageRecord & { usedBy: number })[] {
    return this.db
      .all<ImageRow & { used_by: number }>(
        `SELECT i.*, (SELECT COUNT(*) FROM campaigns c WHERE c.image = i.id) AS used_by FROM images i ORDER BY i.id DESC`,
      )
      .map((r) => ({ ...toImage(r), usedBy: Number(r.used_by) }));
  }

  /** The campaigns that send image `id`. */
  campaignsByImage(id: number): CampaignRecord[] {
    return this.db.all<CampaignRow>('SELECT * FROM campaigns WHERE image = ? ORDER BY id', [id]).map(toCampaign);
  }

  /** Removes an image from the library; the campaigns that sent it keep their URL and digest (history). */
  removeImage(id: number, now: number): boolean {
    return this.db.transaction(() => {
      this.db.run('UPDATE campaigns SET image = NULL, updated_at = ? WHERE image = ?', [now, id]);
      return this.db.run('DELETE FROM images WHERE id = ?', [id]) === 1;
    });
  }

  // ------------------------------------------------------------------------------------------ sessions

  addSession(s: SessionRecord): void {
    this.db.write('INSERT INTO sessions (id, csrf, operator, created_at, expires_at) VALUES (?, ?, ?, ?, ?)', [
      s.id,
      s.csrf,
      s.operator,
      s.createdAt,
      s.expiresAt,
    ]);
  }

  session(id: string): SessionRecord | null {
    const r = this.db.get<{ id: string; csrf: string; operator: string; created_at: number; expires_at: number }>('SELECT * FROM sessions WHERE id = ?', [id]);
    return r === undefined ? null : { id: r.id, csrf: r.csrf, operator: r.operator, createdAt: r.created_at, expiresAt: r.expires_at };
  }

  deleteSession(id: string): void {
    this.db.write('DELETE FROM sessions WHERE id = ?', [id]);
  }

  /** Deletes sessions that expired at or before `now`; returns how many. */
  purgeSessions(now: number): number {
    return this.db.write('DELETE FROM sessions WHERE expires_at <= ?', [now]);
  }

  // ------------------------------------------------------------------------------------------ device tags

  tags(id: bigint): string[] {
    return this.db.all<{ tag: string }>('SELECT tag FROM device_tags WHERE device = ? ORDER BY tag', [idHex16(id)]).map((r) => r.tag);
  }

  /** The tags of some devices (one query, for a page of the list); a device without tags is absent. */
  tagsOf(ids: readonly string[]): Map<string, string[]> {
    const out = new Map<string, string[]>();
    if (ids.length === 0) return out;
    const rows = this.db.all<{ device: string; tag: string }>(
      `SELECT device, tag FROM device_tags WHERE device IN (${ids.map(() => '?').join(', ')}) ORDER BY device, tag`,
      ids,
    );
    for (const r of rows) {
      const list = out.get(r.device) ?? [];
      list.push(r.tag);
      out.set(r.device, list);
    }
    return out;
  }

  /** The tags of every device (one query); a device without tags is absent. */
  allTags(): Map<string, string[]> {
    const out = new Map<string, string[]>();
    for (const r of this.db.all<{ device: string; tag: string }>('SELECT device, tag FROM device_tags ORDER BY device, tag')) {
      const list = out.get(r.device) ?? [];
      list.push(r.tag);
      out.set(r.device, list);
    }
    return out;
  }

  /** Every tag in use, with how many devices carry it, by name. */
  tagCounts(): { tag: string; count: number }[] {
    return this.db
      .all<{ tag: string; n: number }>('SELECT tag, COUNT(*) AS n FROM device_tags GROUP BY tag ORDER BY tag')
      .map((r) => ({ tag: r.tag, count: Number(r.n) }));
  }

  /** A device's label and tags, in one transaction (checked by the caller: tools/c2/fleet.ts). */
  setDeviceMeta(id: bigint, meta: { label?: string | null; tags?: readonly string[] }): void {
    const key = idHex16(id);
    this.db.transaction(() => {
      if (meta.label !== undefined) {
        this.db.run(
          `INSERT INTO device_settings (id, palette, label) VALUES (?, 'default', ?)
           ON CONFLICT (id) DO UPDATE SET label = excluded.label`,
          [key, meta.label],
        );
      }
      if (meta.tags !== undefined) {
        this.db.run('DELETE FROM device_tags WHERE device = ?', [key]);
        for (const t of meta.tags) this.db.run('INSERT INTO device_tags (device, tag) VALUES (?, ?)', [key, t]);
      }
    });
  }

  /** Forgets a device's console settings and tags (the device was removed from the registry). */
  forgetDevice(id: bigint): void {
    const key = idHex16(id);
    this.db.transaction(() => {
      this.db.run('DELETE FROM device_settings WHERE id = ?', [key]);
      this.db.run('DELETE FROM device_tags WHERE device = ?', [key]);
    });
  }

  // ------------------------------------------------------------------------------------------ operators

  addOperator(o: { name: string; password: string | null; token: string | null }, now: number): OperatorRecord {
    this.db.write('INSERT INTO operators (name, password, token, created_at, last_login) VALUES (?, ?, ?, ?, NULL)', [o.name, o.password, o.token, now]);
    return { name: o.name, password: o.password, token: o.token, createdAt: now, lastLogin: null };
  }

  operator(name: string): OperatorRecord | null {
    const r = this.db.get<OperatorRow>('SELECT * FROM operators WHERE name = ?', [name]);
    return r === undefined ? null : toOperator(r);
  }

  /** The operator whose token has this digest ("sha256$<hex>", auth.ts hashToken), or null. */
  operatorByToken(digest: string): OperatorRecord | null {
    const r = this.db.get<OperatorRow>('SELECT * FROM operators WHERE token = ?', [digest]);
    return r === undefined ? null : toOperator(r);
  }

  operators(): OperatorRecord[] {
    return this.db.all<OperatorRow>('SELECT * FROM operators ORDER BY name').map(toOperator);
  }

  /** Removes an operator and ends its sessions; false if there was none of that name. */
  removeOperator(name: string): boolean {
    return this.db.transaction(() => {
      this.db.run('DELETE FROM sessions WHERE operator = ?', [name]);
      return this.db.run('DELETE FROM operators WHERE name = ?', [name]) > 0;
    });
  }

  setLastLogin(name: string, at: number): void {
    this.db.write('UPDATE operators SET last_login = ? WHERE name = ?', [at, name]);
  }

  /** Sessions of an operator (their ids), e.g. to end their event streams. */
  sessionsOf(name: string): string[] {
    return this.db.all<{ id: string }>('SELECT id FROM sessions WHERE operator = ?', [name]).map((r) => r.id);
  }

  // ------------------------------------------------------------------------------------------ operator actions

  /**
   * Adds an operator's action to the audit log (direction 'operator'; `device` null for actions on no single
   * device). Returns its sequence number.
   */
  recordAction(a: OperatorAction): number {
    return Number(this.db.writeReturning<{ seq: number }>(RECORD_ACTION, actionValues(a))[0].seq);
  }

  /** The same, durable when the promise resolves, by the database's cheapest path (SqlDb.writeAwaited). */
  async recordActionAwaited(a: OperatorAction): Promise<number> {
    return Number((await this.db.writeAwaited<{ seq: number }>(RECORD_ACTION, actionValues(a)))[0].seq);
  }

  // ------------------------------------------------------------------------------------------ key/value

  meta(key: string): string | null {
    const r = this.db.get<{ value: string }>('SELECT value FROM meta WHERE key = ?', [key]);
    return r === undefined ? null : r.value;
  }

  setMeta(key: string, value: string): void {
    this.db.write('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value', [key, value]);
  }
}
