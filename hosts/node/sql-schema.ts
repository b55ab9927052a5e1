/**
 * The C2 database's schema, one migration per version, for SQLite and PostgreSQL. The registry's tables
 * (devices, sequences, updates, audit) and the C2 application's (device_settings, device_tags, operators,
 * images, campaigns, campaign_targets, sessions, meta) live in one database, so that one transaction can span
 * both; each table has one owner: hosts/node/sql-registry.ts for the first four, tools/c2/store.ts for the others
 * (the C2 application also adds its operators' actions to the audit, as entries of direction 'operator').
 *
 * Version N of both dialects holds the same tables and columns, so `srup c2 migrate` copies rows as they are.
 * SQLite keeps the version in PRAGMA user_version, PostgreSQL in the one-row table srup_schema. Opening a
 * database written by an older version migrates it in place (one transaction per step); a newer one is refused.
 */
import { SqlError } from './sql.js';
import type { SqlDb } from './sql.js';
import { SqliteDb } from './sqlite-db.js';

const SQLITE: readonly string[] = [
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
  // 2 -> 3: the sequence IDs accepted from each device, for several server nodes (sql-registry.ts acceptWindow).
  `
  CREATE TABLE accepted (
    peer TEXT NOT NULL,
    seq TEXT NOT NULL,
    PRIMARY KEY (peer, seq)
  );
  `,
  // 3 -> 4: data history (modules/c2/registry.ts Reading): the last READINGS_PER_DATA_ID per device and data id.
  `
  CREATE TABLE readings (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    device TEXT NOT NULL,
    data_id TEXT NOT NULL,
    at INTEGER NOT NULL,
    token BLOB NOT NULL,
    data BLOB NOT NULL
  );
  CREATE INDEX readings_by_id ON readings(device, data_id, seq);
  `,
  // 4 -> 5: the fleet console (tools/c2/fleet.ts, auth.ts, audit-log.ts): device tags, indexes for the device
  // list's filters and orders, named operators, the operator of each session, and the operator and a summary of
  // each audit entry (operator actions are audit entries of direction 'operator').
  `
  CREATE TABLE device_tags (
    device TEXT NOT NULL,
    tag TEXT NOT NULL,
    PRIMARY KEY (device, tag)
  );
  CREATE INDEX device_tags_tag ON device_tags(tag, device);
  CREATE INDEX devices_last_seen ON devices(last_seen);
  CREATE INDEX devices_firmware ON devices(firmware_version);
  CREATE TABLE operators (
    name TEXT PRIMARY KEY,
    password TEXT,
    token TEXT UNIQUE,
    created_at INTEGER NOT NULL,
    last_login INTEGER
  );
  ALTER TABLE sessions ADD COLUMN operator TEXT NOT NULL DEFAULT 'admin';
  ALTER TABLE audit ADD COLUMN operator TEXT;
  ALTER TABLE audit ADD COLUMN summary TEXT;
  CREATE INDEX audit_operator ON audit(operator, seq);
  CREATE INDEX audit_type ON audit(type, seq);
  CREATE INDEX audit_at ON audit(at);
  `,
  // 5 -> 6: the image library and staged campaigns (tools/c2/store.ts): waves, a state the operator controls
  // (pause, resume, cancel, the go for the next wave), and how the targets were chosen. Campaigns made before
  // are one wave, running.
  `
  CREATE TABLE images (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    digest TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    file TEXT NOT NULL,
    uploaded_at INTEGER NOT NULL,
    uploaded_by TEXT NOT NULL
  );
  ALTER TABLE campaigns ADD COLUMN image INTEGER;
  ALTER TABLE campaigns ADD COLUMN state TEXT NOT NULL DEFAULT 'running';
  ALTER TABLE campaigns ADD COLUMN reason TEXT;
  ALTER TABLE campaigns ADD COLUMN current_wave INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE campaigns ADD COLUMN waves TEXT;
  ALTER TABLE campaigns ADD COLUMN target TEXT;
  ALTER TABLE campaigns ADD COLUMN created_by TEXT;
  ALTER TABLE campaign_targets ADD COLUMN wave INTEGER NOT NULL DEFAULT 0;
  CREATE INDEX campaigns_image ON campaigns(image);
  `,
];

const POSTGRES: readonly string[] = [
  // 0 -> 1: as SQLite's version 1 (BYTEA for BLOB, DOUBLE PRECISION for times in ms, which may have a fraction
  // as on SQLite, identity columns for AUTOINCREMENT).
  `
  CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    key_n TEXT NOT NULL,
    key_e TEXT NOT NULL,
    state TEXT NOT NULL,
    join_kind TEXT,
    join_token BYTEA,
    join_secret TEXT,
    observer_id TEXT,
    observation_token BYTEA,
    last_seen DOUBLE PRECISION,
    identification TEXT,
    firmware_name TEXT,
    firmware_version TEXT,
    last_status INTEGER,
    last_status_token BYTEA,
    last_status_at DOUBLE PRECISION,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
  );
  CREATE INDEX devices_state ON devices(state);
  CREATE TABLE sequences (
    peer TEXT PRIMARY KEY,
    last_sent TEXT NOT NULL,
    last_accepted TEXT NOT NULL
  );
  CREATE TABLE updates (
    ord BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    token TEXT NOT NULL UNIQUE,
    device TEXT NOT NULL,
    url TEXT NOT NULL,
    digest TEXT NOT NULL,
    state TEXT NOT NULL,
    status INTEGER,
    failure TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
  );
  CREATE INDEX updates_device ON updates(device);
  CREATE TABLE audit (
    seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    at DOUBLE PRECISION NOT NULL,
    direction TEXT NOT NULL,
    device TEXT NOT NULL,
    type TEXT NOT NULL,
    sequence_id TEXT NOT NULL,
    token BYTEA NOT NULL,
    status INTEGER,
    bytes BYTEA NOT NULL
  );
  CREATE INDEX audit_device ON audit(device, seq);
  CREATE TABLE device_settings (
    id TEXT PRIMARY KEY,
    palette TEXT NOT NULL DEFAULT 'default',
    label TEXT
  );
  CREATE TABLE campaigns (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL,
    url TEXT NOT NULL,
    digest TEXT NOT NULL,
    size BIGINT,
    file TEXT,
    auto_activate INTEGER NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
  );
  CREATE TABLE campaign_targets (
    campaign BIGINT NOT NULL REFERENCES campaigns(id),
    device TEXT NOT NULL,
    token TEXT,
    error TEXT,
    activate INTEGER NOT NULL DEFAULT 0,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (campaign, device)
  );
  CREATE INDEX campaign_targets_token ON campaign_targets(token);
  CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    csrf TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL
  );
  CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
  );
  `,
  // 1 -> 2: the device profile, as on SQLite.
  `
  ALTER TABLE devices ADD COLUMN profile TEXT NOT NULL DEFAULT 'srup' CHECK (profile IN ('srup', 'reference'));
  `,
  // 2 -> 3: as on SQLite (byte order for the hex text, whatever the database's collation).
  `
  CREATE TABLE accepted (
    peer TEXT NOT NULL,
    seq TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (peer, seq)
  );
  `,
  // 3 -> 4: data history, as on SQLite.
  `
  CREATE TABLE readings (
    seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    device TEXT NOT NULL,
    data_id TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    token BYTEA NOT NULL,
    data BYTEA NOT NULL
  );
  CREATE INDEX readings_by_id ON readings(device, data_id, seq);
  `,
  // 4 -> 5: as on SQLite (tags and names in byte order, whatever the database's collation).
  `
  CREATE TABLE device_tags (
    device TEXT NOT NULL,
    tag TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (device, tag)
  );
  CREATE INDEX device_tags_tag ON device_tags(tag, device);
  CREATE INDEX devices_last_seen ON devices(last_seen);
  CREATE INDEX devices_firmware ON devices(firmware_version);
  CREATE TABLE operators (
    name TEXT COLLATE "C" PRIMARY KEY,
    password TEXT,
    token TEXT UNIQUE,
    created_at DOUBLE PRECISION NOT NULL,
    last_login DOUBLE PRECISION
  );
  ALTER TABLE sessions ADD COLUMN operator TEXT NOT NULL DEFAULT 'admin';
  ALTER TABLE audit ADD COLUMN operator TEXT;
  ALTER TABLE audit ADD COLUMN summary TEXT;
  CREATE INDEX audit_operator ON audit(operator, seq);
  CREATE INDEX audit_type ON audit(type, seq);
  CREATE INDEX audit_at ON audit(at);
  `,
  // 5 -> 6: the image library and staged campaigns, as on SQLite.
  `
  CREATE TABLE images (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    digest TEXT NOT NULL UNIQUE,
    size BIGINT NOT NULL,
    file TEXT NOT NULL,
    uploaded_at DOUBLE PRECISION NOT NULL,
    uploaded_by TEXT NOT NULL
  );
  ALTER TABLE campaigns ADD COLUMN image BIGINT;
  ALTER TABLE campaigns ADD COLUMN state TEXT NOT NULL DEFAULT 'running';
  ALTER TABLE campaigns ADD COLUMN reason TEXT;
  ALTER TABLE campaigns ADD COLUMN current_wave INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE campaigns ADD COLUMN waves TEXT;
  ALTER TABLE campaigns ADD COLUMN target TEXT;
  ALTER TABLE campaigns ADD COLUMN created_by TEXT;
  ALTER TABLE campaign_targets ADD COLUMN wave INTEGER NOT NULL DEFAULT 0;
  CREATE INDEX campaigns_image ON campaigns(image);
  `,
];

/** The schema version this program writes (the same for both dialects). */
export const SCHEMA_VERSION = SQLITE.length;

/** The tables, in an order in which rows can be copied (referenced tables first). */
export const TABLES: readonly string[] = [
  'devices',
  'sequences',
  'accepted',
  'updates',
  'audit',
  'readings',
  'device_settings',
  'device_tags',
  'operators',
  'images',
  'campaigns',
  'campaign_targets',
  'sessions',
  'meta',
];

/** Identity columns whose sequences must follow copied rows on PostgreSQL. */
export const IDENTITY_COLUMNS: readonly (readonly [string, string])[] = [
  ['updates', 'ord'],
  ['audit', 'seq'],
  ['readings', 'seq'],
  ['campaigns', 'id'],
  ['images', 'id'],
];

/** The schema version of the database (0 when empty). */
export function schemaVersion(db: SqlDb): number {
  if (db instanceof SqliteDb) return db.userVersion();
  db.exec('CREATE TABLE IF NOT EXISTS srup_schema (version INTEGER NOT NULL)');
  const r = db.get<{ version: number }>('SELECT version FROM srup_schema');
  return r === undefined ? 0 : r.version;
}

/**
 * Brings the database to `target` (default SCHEMA_VERSION), one transaction per step. On PostgreSQL the steps
 * hold an advisory lock, so that several nodes starting at once migrate once.
 */
export function migrate(db: SqlDb, target: number = SCHEMA_VERSION): void {
  const steps = db.dialect === 'sqlite' ? SQLITE : POSTGRES;
  const guard = () => {
    const from = schemaVersion(db);
    if (from > steps.length) {
      throw new SqlError(
        'schema_too_new',
        `${db.where} was written by a newer version (schema ${from}; this program knows ${steps.length})`,
      );
    }
    return from;
  };
  if (db instanceof SqliteDb) {
    for (let v = guard(); v < target; v++) {
      db.transaction(() => {
        db.exec(steps[v]);
        db.setUserVersion(v + 1);
      });
    }
    return;
  }
  db.transaction(() => {
    db.all('SELECT pg_advisory_xact_lock(?)', [0x5352_5550]);
    let from = guard();
    for (let v = from; v < target; v++) db.exec(steps[v]);
    if (from === 0 && target > 0) db.run('INSERT INTO srup_schema (version) VALUES (?)', [target]);
    else if (target > from) db.run('UPDATE srup_schema SET version = ?', [target]);
    from = target;
  });
}
