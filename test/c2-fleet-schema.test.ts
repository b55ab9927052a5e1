/**
 * Schema version 5 (the fleet console's tables and columns) on both dialects: a version-4 database is migrated
 * with its rows kept, and the device list's and the audit's queries answer the same on SQLite and PostgreSQL.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parsePublicKeyPem } from '../crypto/keys.js';
import { PgDb } from '../hosts/node/pg-db.js';
import { PgRegistry } from '../hosts/node/pg-registry.js';
import { SCHEMA_VERSION, migrate, schemaVersion } from '../hosts/node/sql-schema.js';
import type { SqlDb } from '../hosts/node/sql.js';
import { SqlRegistry } from '../hosts/node/sql-registry.js';
import { SqliteDb } from '../hosts/node/sqlite-db.js';
import { SqliteRegistry } from '../hosts/node/sqlite-registry.js';
import { copyDatabase } from '../hosts/node/sql-migrate.js';
import { C2Store } from '../tools/c2/store.js';
import { parseDeviceQuery, queryDevices } from '../tools/c2/fleet.js';
import { parseAuditQuery, queryAudit } from '../tools/c2/audit-log.js';
import { dropPgSchemas, freshPgUrl, pgDescribe } from './support/postgres.js';

const KEY = parsePublicKeyPem(fs.readFileSync(path.join(__dirname, 'data/srup-vectors/keys/signer-1.public.pem'), 'utf8'));
const DEV = '07a1c3e5f2d94b68';
const dirs: string[] = [];
function tmpFile(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'c2-schema5-'));
  dirs.push(d);
  return path.join(d, 'c2.db');
}
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

/** A version-4 database with a device, a session and an audit entry, as the previous version wrote them. */
function writeVersion4(db: SqlDb): void {
  migrate(db, 4);
  expect(schemaVersion(db)).toBe(4);
  db.write(`INSERT INTO devices (id, key_n, key_e, state, firmware_name, firmware_version, last_seen, created_at, updated_at)
    VALUES (?, ?, ?, 'joined', 'srup-agent', '2.1.0', 500, 1, 2)`, [DEV, KEY.n.toString(16), KEY.e.toString(16)]);
  db.write(`INSERT INTO device_settings (id, palette, label) VALUES (?, 'default', 'Boiler, east')`, [DEV]);
  db.write(`INSERT INTO sessions (id, csrf, created_at, expires_at) VALUES ('s1', 'c1', 1, 9999999999999)`);
  db.write(
    `INSERT INTO audit (at, direction, device, type, sequence_id, token, status, bytes) VALUES (7, 'in', ?, 'response', '000000000000000f', ?, 32, ?)`,
    [DEV, Uint8Array.of(1), Uint8Array.of(5, 2)],
  );
  db.write(`INSERT INTO sequences VALUES (?, '0000000000000010', '0000000000000020')`, [DEV]);
}

/** What version 5 must answer for a database written by writeVersion4 (then opened as a registry). */
function checkMigrated(reg: SqlRegistry): void {
  expect(reg.schemaVersion()).toBe(SCHEMA_VERSION);
  expect(SCHEMA_VERSION).toBe(6);
  const store = new C2Store(reg.db);
  // Sessions made before were the operator token's: 'admin'.
  expect(store.session('s1')).toEqual({ id: 's1', csrf: 'c1', operator: 'admin', createdAt: 1, expiresAt: 9999999999999 });
  expect(reg.sequence(BigInt('0x' + DEV))).toEqual({ lastSent: 16n, lastAccepted: 32n });
  const page = queryDevices(reg.db, parseDeviceQuery(new URLSearchParams('search=east')), 1000, 600);
  expect(page.total).toBe(1);
  expect([page.rows[0].label, page.rows[0].device.firmwareVersion, page.rows[0].device.lastSeen]).toEqual(['Boiler, east', '2.1.0', 500]);
  expect(queryDevices(reg.db, parseDeviceQuery(new URLSearchParams('online=true')), 1000, 600).total).toBe(1);
  expect(queryDevices(reg.db, parseDeviceQuery(new URLSearchParams('online=true')), 1101, 600).total).toBe(0);
  // The old audit entry: no operator; new ones have one.
  expect(queryAudit(reg.db, parseAuditQuery(new URLSearchParams(''))).entries).toEqual([
    { id: 1, at: 7, device: DEV, type: 'response', direction: 'in', operator: null, summary: 'from the device, status 0x20', sequenceId: '15', status: 32 },
  ]);
  store.setDeviceMeta(BigInt('0x' + DEV), { tags: ['Zone-B', 'a.b:c'] });
  store.recordAction({ at: 8, operator: 'alice', type: 'meta', device: BigInt('0x' + DEV), summary: 'tags' });
  expect(store.tags(BigInt('0x' + DEV))).toEqual(['Zone-B', 'a.b:c']);
  expect(store.tagCounts()).toEqual([{ tag: 'Zone-B', count: 1 }, { tag: 'a.b:c', count: 1 }]);
  expect(queryDevices(reg.db, parseDeviceQuery(new URLSearchParams('tag=Zone-B')), 1000, 600).total).toBe(1);
  expect(queryDevices(reg.db, parseDeviceQuery(new URLSearchParams('tag=zone-b')), 1000, 600).total).toBe(0);
  expect(queryAudit(reg.db, parseAuditQuery(new URLSearchParams('operator=alice'))).entries.map((e) => [e.type, e.device, e.sequenceId])).toEqual([['meta', DEV, null]]);
  // The registry's own audit reads only messages.
  expect(reg.audit().map((e) => e.type)).toEqual(['response']);
}

describe('schema 5 on SQLite', () => {
  test('a version-4 database is migrated: rows kept, sessions are admin\'s, tags and operators work', () => {
    const file = tmpFile();
    const db = new SqliteDb(file);
    writeVersion4(db);
    db.close();
    const reg = new SqliteRegistry(file);
    try {
      checkMigrated(reg);
    } finally {
      reg.close();
    }
  });

  test('the device order is byte order for ids and case-insensitive for labels', () => {
    const reg = new SqliteRegistry(tmpFile());
    const store = new C2Store(reg.db);
    for (const [id, label] of [[0xan, 'beta'], [0xbn, 'Alpha'], [0xcn, null], [0x1n, '_under']] as const) {
      reg.addDevice(id, KEY, 1);
      if (label !== null) store.setDeviceMeta(id, { label });
    }
    const order = (q: string) => queryDevices(reg.db, parseDeviceQuery(new URLSearchParams(q)), 0, 1).rows.map((r) => r.device.id);
    expect(order('')).toEqual([0x1n, 0xan, 0xbn, 0xcn]);
    // No label first; then by lowercase byte order ('_' before letters), whatever the locale.
    expect(order('sort=label')).toEqual([0xcn, 0x1n, 0xbn, 0xan]);
    expect(order('sort=-label')).toEqual([0xan, 0xbn, 0x1n, 0xcn]);
    reg.close();
  });
});

pgDescribe('schema 5 on PostgreSQL', () => {
  afterAll(() => dropPgSchemas());

  test('a version-4 database is migrated: rows kept, sessions are admin\'s, tags and operators work', () => {
    const url = freshPgUrl();
    const db = new PgDb(url);
    writeVersion4(db);
    db.close();
    const reg = new PgRegistry(url);
    try {
      checkMigrated(reg);
    } finally {
      reg.close();
    }
  });

  test('the same device order as on SQLite, whatever the collation', () => {
    const reg = new PgRegistry(freshPgUrl());
    const store = new C2Store(reg.db);
    for (const [id, label] of [[0xan, 'beta'], [0xbn, 'Alpha'], [0xcn, null], [0x1n, '_under']] as const) {
      reg.addDevice(id, KEY, 1);
      if (label !== null) store.setDeviceMeta(id, { label });
    }
    const order = (q: string) => queryDevices(reg.db, parseDeviceQuery(new URLSearchParams(q)), 0, 1).rows.map((r) => r.device.id);
    expect(order('')).toEqual([0x1n, 0xan, 0xbn, 0xcn]);
    // No label first; then by lowercase byte order ('_' before letters), whatever the locale.
    expect(order('sort=label')).toEqual([0xcn, 0x1n, 0xbn, 0xan]);
    expect(order('sort=-label')).toEqual([0xan, 0xbn, 0x1n, 0xcn]);
    expect(order('search=_UNDER')).toEqual([0x1n]);
    reg.close();
  });

  test('srup c2 migrate copies tags, operators and the operator of audit entries', () => {
    const src = new SqliteRegistry(tmpFile());
    const store = new C2Store(src.db);
    src.addDevice(BigInt('0x' + DEV), KEY, 1);
    store.setDeviceMeta(BigInt('0x' + DEV), { label: 'x', tags: ['t1', 't2'] });
    store.addOperator({ name: 'alice', password: 'scrypt$1$1$1$AA==$AA==', token: null }, 5);
    store.recordAction({ at: 6, operator: 'alice', type: 'meta', device: BigInt('0x' + DEV), summary: 'label x' });
    const to = new PgRegistry(freshPgUrl());
    try {
      const copied = copyDatabase(src.db, to.db);
      expect([copied.device_tags, copied.operators, copied.audit]).toEqual([2, 1, 1]);
      const s2 = new C2Store(to.db);
      expect(s2.tags(BigInt('0x' + DEV))).toEqual(['t1', 't2']);
      expect(s2.operator('alice')).toEqual({ name: 'alice', password: 'scrypt$1$1$1$AA==$AA==', token: null, createdAt: 5, lastLogin: null });
      expect(queryAudit(to.db, parseAuditQuery(new URLSearchParams('operator=alice'))).entries[0]).toMatchObject({ summary: 'label x', direction: 'operator' });
      // Identity columns continue after the copied rows.
      expect(s2.recordAction({ at: 7, operator: 'bob', type: 'meta', device: null, summary: '' })).toBe(2);
    } finally {
      src.close();
      to.close();
    }
  });
});
