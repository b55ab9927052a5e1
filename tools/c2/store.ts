/**
 * What the C2 application keeps beside the registry, in the same database (hosts/node/sql-schema.ts): update
 * campaigns and their targets, operator sessions, per-device console settings, and a small key/value table.
 * Writes are durable when they return, as the registry's.
 */
import type { SqlDb } from '../../hosts/node/sql.js';
import { idHex16 } from '../../modules/srup/bytes.js';

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

interface CampaignRow {
  id: number;
  name: string;
  url: string;
  digest: string;
  size: number | null;
  file: string | null;
  auto_activate: number;
  created_at: number;
  updated_at: number;
}

interface TargetRow {
  campaign: number;
  device: string;
  token: string | null;
  error: string | null;
  activate: number;
  updated_at: number;
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
    updatedAt: r.updated_at,
  };
}

const UPSERT_TARGET = `INSERT INTO campaign_targets (campaign, device, token, error, activate, updated_at) VALUES (?, ?, ?, ?, ?, ?)
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

  addCampaign(
    c: { name: string; url: string; digest: string; size: number | null; file: string | null; autoActivate: boolean; devices: readonly bigint[] },
    now: number,
  ): CampaignRecord {
    return this.db.transaction(() => {
      const r = this.db.all<{ id: number }>(
        `INSERT INTO campaigns (name, url, digest, size, file, auto_activate, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
        [c.name, c.url, c.digest, c.size, c.file, c.autoActivate ? 1 : 0, now, now],
      )[0];
      const id = Number(r.id);
      for (const d of c.devices) this.db.run(UPSERT_TARGET, [id, idHex16(d), null, null, c.autoActivate ? 1 : 0, now]);
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
        updatedAt: now,
      };
      this.db.run(UPSERT_TARGET, [campaign, idHex16(device), next.token, next.error, next.activate ? 1 : 0, now]);
      this.db.run('UPDATE campaigns SET updated_at = ? WHERE id = ?', [now, campaign]);
      return next;
    });
  }

  // ------------------------------------------------------------------------------------------ sessions

  addSession(s: SessionRecord): void {
    this.db.write('INSERT INTO sessions (id, csrf, created_at, expires_at) VALUES (?, ?, ?, ?)', [s.id, s.csrf, s.createdAt, s.expiresAt]);
  }

  session(id: string): SessionRecord | null {
    const r = this.db.get<{ id: string; csrf: string; created_at: number; expires_at: number }>('SELECT * FROM sessions WHERE id = ?', [id]);
    return r === undefined ? null : { id: r.id, csrf: r.csrf, createdAt: r.created_at, expiresAt: r.expires_at };
  }

  deleteSession(id: string): void {
    this.db.write('DELETE FROM sessions WHERE id = ?', [id]);
  }

  /** Deletes sessions that expired at or before `now`; returns how many. */
  purgeSessions(now: number): number {
    return this.db.write('DELETE FROM sessions WHERE expires_at <= ?', [now]);
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
