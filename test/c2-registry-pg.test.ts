/**
 * The registry on PostgreSQL beyond the shared contract (test/c2-registry.test.ts): schema versions and the
 * migration from the previous one, several writers on one database (sequence IDs never reused), acknowledged
 * group commits surviving kill -9, and `srup c2 migrate` from a SQLite data directory.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildSync } from 'esbuild';
import { parsePublicKeyPem } from '../crypto/keys.js';
import { PgDb } from '../hosts/node/pg-db.js';
import { PgRegistry } from '../hosts/node/pg-registry.js';
import { SCHEMA_VERSION, migrate, schemaVersion } from '../hosts/node/sql-schema.js';
import { SqliteRegistry } from '../hosts/node/sqlite-registry.js';
import { C2Store } from '../tools/c2/store.js';
import { c2Cli } from './support/cli.js';
import { dropPgSchemas, freshPgUrl, pgDescribe } from './support/postgres.js';

const KEY1 = parsePublicKeyPem(fs.readFileSync(path.join(__dirname, 'data/srup-vectors/keys/signer-1.public.pem'), 'utf8'));
const DEV = 0x07a1c3e5f2d94b68n;
const MAX = 0xffffffffffffffffn;

const dirs: string[] = [];
function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'c2-pg-'));
  dirs.push(d);
  return d;
}

/** A bundle of the registry modules a child process can require. */
function registryBundle(dir: string): string {
  const out = path.join(dir, 'pg-registry.cjs');
  buildSync({
    entryPoints: [path.join(__dirname, '../hosts/node/pg-registry.ts')],
    bundle: true,
    platform: 'node',
    format: 'cjs',
    outfile: out,
    external: ['pg', 'better-sqlite3'],
    logLevel: 'silent',
  });
  return out;
}

/** Runs `script` in a child node process; resolves with its stdout once `ready(out)` holds, then kills it -9. */
async function runUntil(script: string, ready: (out: string) => boolean, kill: boolean): Promise<string> {
  const child = spawn(process.execPath, ['-e', script], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NODE_PATH: path.join(__dirname, '../node_modules') },
  });
  let out = '';
  let err = '';
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
      if (ready(out)) resolve();
    });
    void exited.then((code) => (ready(out) ? resolve() : reject(new Error(`child exited ${code}: ${err}`))));
  });
  if (kill) child.kill('SIGKILL');
  await exited;
  return out;
}

pgDescribe('PgRegistry on PostgreSQL', () => {
  afterAll(() => {
    dropPgSchemas();
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  test('a new database gets the current schema version; a newer one is refused, not altered', () => {
    const url = freshPgUrl();
    const r = new PgRegistry(url);
    expect(SCHEMA_VERSION).toBe(6);
    expect(r.schemaVersion()).toBe(6);
    r.close();
    const db = new PgDb(url);
    db.write('UPDATE srup_schema SET version = 7');
    expect(() => new PgRegistry(url)).toThrow(/newer version \(schema 7; this program knows 6\)/);
    expect(schemaVersion(db)).toBe(7);
    db.close();
  });

  test('parameterized statements are prepared once per connection, under a name, and reused', () => {
    const db = new PgDb(freshPgUrl());
    try {
      expect(db.get<{ x: number }>('SELECT CAST(? AS integer) + 1 AS x', [1])).toEqual({ x: 2 });
      expect(db.get<{ x: number }>('SELECT CAST(? AS integer) + 1 AS x', [41])).toEqual({ x: 42 });
      const prepared = db.all<{ name: string; statement: string }>(
        "SELECT name, statement FROM pg_prepared_statements WHERE statement LIKE 'SELECT CAST(%' ORDER BY name",
      );
      expect(prepared).toEqual([{ name: expect.stringMatching(/^srup_\d+$/), statement: 'SELECT CAST($1 AS integer) + 1 AS x' }]);
    } finally {
      db.close();
    }
  });

  test('a version-1 database gains the profile column: its devices are srup, everything else is kept', () => {
    const url = freshPgUrl();
    const old = new PgDb(url);
    migrate(old, 1);
    expect(schemaVersion(old)).toBe(1);
    old.write(
      `INSERT INTO devices (id, key_n, key_e, state, join_kind, identification, firmware_name, last_seen, last_status,
       last_status_token, last_status_at, created_at, updated_at)
       VALUES (?, ?, ?, 'joined', 'simple', 'pySRUP version x', 'pySRUP', 500, 0, ?, 501, 100, 502)`,
      ['07a1c3e5f2d94b68', KEY1.n.toString(16), KEY1.e.toString(16), Uint8Array.of(0x74, 0x6f, 0x6b)],
    );
    old.write(`INSERT INTO sequences VALUES ('07a1c3e5f2d94b68', '0000000000000010', '000000000000000f')`);
    old.write(
      `INSERT INTO audit (at, direction, device, type, sequence_id, token, status, bytes)
       VALUES (7, 'in', '07a1c3e5f2d94b68', 'response', '000000000000000f', ?, 0, ?)`,
      [Uint8Array.of(1), Uint8Array.of(5, 2)],
    );
    old.close();

    const reg = new PgRegistry(url);
    expect(reg.schemaVersion()).toBe(SCHEMA_VERSION);
    expect({ ...reg.device(DEV), publicKey: null }).toEqual({
      id: DEV,
      publicKey: null,
      state: 'joined',
      profile: 'srup',
      joinKind: 'simple',
      joinToken: null,
      joinSecret: null,
      observerId: null,
      observationToken: null,
      lastSeen: 500,
      identification: 'pySRUP version x',
      firmwareName: 'pySRUP',
      firmwareVersion: null,
      lastResponse: { status: 0, token: Uint8Array.of(0x74, 0x6f, 0x6b), at: 501 },
      createdAt: 100,
      updatedAt: 502,
    });
    expect(reg.sequence(DEV)).toEqual({ lastSent: 16n, lastAccepted: 15n });
    expect(reg.allocateSequence(DEV)).toBe(17n);
    expect(reg.appendAudit({ at: 8, direction: 'out', device: DEV, type: 'action', sequenceId: 17n, token: Uint8Array.of(2), status: null, bytes: Uint8Array.of(5) }).seq).toBe(2);
    reg.close();
    const again = new PgRegistry(url);
    expect(again.schemaVersion()).toBe(SCHEMA_VERSION);
    expect(again.device(DEV)?.profile).toBe('srup');
    again.close();
  });

  test('the previous version (2) gains the table of accepted IDs; counters and devices are kept', () => {
    const url = freshPgUrl();
    const old = new PgDb(url);
    migrate(old, 2);
    expect(schemaVersion(old)).toBe(2);
    old.write(
      `INSERT INTO devices (id, key_n, key_e, state, profile, created_at, updated_at) VALUES (?, ?, ?, 'joined', 'reference', 1, 2)`,
      ['07a1c3e5f2d94b68', KEY1.n.toString(16), KEY1.e.toString(16)],
    );
    old.write(`INSERT INTO sequences VALUES ('07a1c3e5f2d94b68', '0000000000000010', '0000000000000020')`);
    old.close();
    const reg = new PgRegistry(url);
    try {
      expect(reg.schemaVersion()).toBe(SCHEMA_VERSION);
      expect([reg.device(DEV)?.state, reg.device(DEV)?.profile]).toEqual(['joined', 'reference']);
      expect(reg.sequence(DEV)).toEqual({ lastSent: 16n, lastAccepted: 32n });
      expect(reg.replayFloor!(DEV)).toBe(0n);
      reg.setLastAccepted(DEV, 31n); // older than the stored counter, within the window, never seen
      expect(() => reg.setLastAccepted(DEV, 31n)).toThrow(/accepted already/);
      expect(reg.sequence(DEV).lastAccepted).toBe(32n);
      expect(reg.allocateSequence(DEV)).toBe(33n);
    } finally {
      reg.close();
    }
  });

  test('a group whose function throws leaves nothing; one before it in the same commit stays', async () => {
    const r = new PgRegistry(freshPgUrl());
    try {
      r.addDevice(DEV, KEY1, 1);
      const kept = r.group(() => r.allocateSequence(DEV));
      const undone = r.group(() => {
        r.allocateSequence(DEV);
        r.updateDevice(DEV, { state: 'joined' }, 2);
        throw new RangeError('does not fit');
      });
      await Promise.all([expect(kept).resolves.toBe(1n), expect(undone).rejects.toThrow('does not fit')]);
      expect(r.sequence(DEV)).toEqual({ lastSent: 1n, lastAccepted: 0n });
      expect(r.device(DEV)?.state).toBe('provisioned');
    } finally {
      r.close();
    }
  });

  test('two writers on one database allocating for one device never get the same sequence ID', async () => {
    const url = freshPgUrl();
    new PgRegistry(url).close();
    const bundle = registryBundle(tmpDir());
    const writer = (name: string) => `
      const { PgRegistry } = require(${JSON.stringify(bundle)});
      const r = new PgRegistry(${JSON.stringify(url)});
      const got = [];
      let n = 0;
      const tick = () => {
        const batch = [];
        for (let k = 0; k < 10 && n < 300; k++, n++) batch.push(r.group(() => r.allocateSequence(${DEV}n)));
        Promise.all(batch).then((ids) => {
          got.push(...ids);
          if (n < 300) setImmediate(tick);
          else { process.stdout.write(${JSON.stringify(name)} + ' ' + got.join(',') + '\\n'); r.close(); }
        });
      };
      tick();
    `;
    const done = (out: string) => out.endsWith('\n');
    const [a, b] = await Promise.all([runUntil(writer('a'), done, false), runUntil(writer('b'), done, false)]);
    const ids = [...a.trim().split(' ')[1].split(','), ...b.trim().split(' ')[1].split(',')].map((s) => BigInt(s));
    expect(ids).toHaveLength(600);
    expect(new Set(ids.map(String)).size).toBe(600);
    expect(ids.reduce((m, x) => (x > m ? x : m), 0n)).toBe(600n);
    const r = new PgRegistry(url);
    expect(r.sequence(DEV).lastSent).toBe(600n);
    r.close();
  }, 60_000);

  test('acknowledged group commits survive kill -9 of the writing process', async () => {
    const url = freshPgUrl();
    new PgRegistry(url).close();
    const bundle = registryBundle(tmpDir());
    // The child allocates and audits in groups as the engine does and prints each once its group resolved.
    const script = `
      const { PgRegistry } = require(${JSON.stringify(bundle)});
      const r = new PgRegistry(${JSON.stringify(url)});
      const tick = () => {
        for (let k = 0; k < 5; k++) {
          r.group(() => {
            const seq = r.allocateSequence(1n);
            r.appendAudit({ at: Number(seq), direction: 'out', device: 1n, type: 'action', sequenceId: seq, token: new Uint8Array([1]), status: null, bytes: new Uint8Array(64) });
            return seq;
          }).then((seq) => process.stdout.write(seq + '\\n'));
        }
        setImmediate(tick);
      };
      tick();
    `;
    const out = await runUntil(script, (o) => o.split('\n').length > 300, true);
    const acknowledged = out.split('\n').filter((l) => /^\d+$/.test(l)).map(Number);
    const last = Math.max(...acknowledged);
    expect(last).toBeGreaterThan(250);
    const r = new PgRegistry(url);
    try {
      const log = r.audit({ device: 1n });
      expect(log.length).toBeGreaterThanOrEqual(last);
      expect(log.slice(0, last).map((e) => e.at)).toEqual(Array.from({ length: last }, (_, k) => k + 1));
      expect(r.sequence(1n).lastSent).toBeGreaterThanOrEqual(BigInt(last));
    } finally {
      r.close();
    }
  }, 60_000);

  test('srup c2 migrate copies a SQLite data directory into an empty PostgreSQL database, once', async () => {
    const dir = tmpDir();
    const src = new SqliteRegistry(path.join(dir, 'c2.db'));
    src.addDevice(DEV, KEY1, 1);
    src.addDevice(MAX, KEY1, 2, 'reference');
    src.updateDevice(DEV, { state: 'joined', joinKind: 'human', joinToken: Uint8Array.of(0, 255), lastSeen: 9 }, 3);
    src.setLastAccepted(DEV, 41n);
    src.allocateSequence(DEV);
    src.addUpdate({ token: 'tok-1', device: DEV, url: 'http://h/fw.bin', digest: 'ab'.repeat(32) }, 4);
    for (let i = 0; i < 3; i++) {
      src.appendAudit({ at: 10 + i, direction: 'in', device: DEV, type: 'response', sequenceId: BigInt(i), token: Uint8Array.of(i), status: 0x20, bytes: Uint8Array.of(5, i) });
    }
    src.appendReading({ device: DEV, dataId: 'temperature', at: 11, token: Uint8Array.of(7), data: Uint8Array.of(0, 0, 0, 21) });
    const store = new C2Store(src.db);
    store.addImage({ name: 'fw', version: '2', digest: 'ab'.repeat(32), size: 3, file: `${'ab'.repeat(32)}.bin`, uploadedAt: 4, uploadedBy: 'admin' });
    store.addCampaign(
      { name: 'fw', url: 'http://h/fw.bin', digest: 'ab'.repeat(32), size: 3, file: null, autoActivate: true, devices: [DEV, MAX], image: 1, firstWave: 1, plan: { first: { count: 1 }, then: 'auto', maxFailureRate: 0.5 }, target: { tag: 'hall' } },
      5,
    );
    store.setTarget(1, DEV, { token: 'tok-1' }, 6);
    store.addSession({ id: 's1', csrf: 'c1', operator: 'admin', createdAt: 1, expiresAt: 2 });
    store.setDeviceSettings(DEV, { palette: 'reference', label: 'hall' });
    store.setMeta('operator_token', 'scrypt$x');
    const before = { devices: src.devices(), seq: src.sequence(DEV), updates: src.updates(), audit: src.audit(), readings: src.readings(DEV) };
    src.close();

    const url = freshPgUrl();
    const r1 = await c2Cli(['migrate', '--from', dir, '--to', url, '--json']);
    expect(r1.err).toBe('');
    expect(r1.code).toBe(0);
    expect(JSON.parse(r1.out).copied).toEqual({
      devices: 2,
      sequences: 1,
      accepted: 0,
      updates: 1,
      audit: 3,
      device_settings: 1,
      device_tags: 0,
      operators: 0,
      images: 1,
      campaigns: 1,
      campaign_targets: 2,
      sessions: 1,
      meta: 1,
      readings: 1,
    });
    const pg = new PgRegistry(url);
    try {
      expect({ devices: pg.devices(), seq: pg.sequence(DEV), updates: pg.updates(), audit: pg.audit(), readings: pg.readings(DEV) }).toEqual(before);
      const s = new C2Store(pg.db);
      expect(s.targetByToken('tok-1')).toEqual({ campaign: 1, device: DEV, token: 'tok-1', error: null, activate: true, wave: 0, updatedAt: 6 });
      expect(s.target(1, MAX)?.wave).toBe(1);
      expect(s.campaign(1)).toMatchObject({ image: 1, state: 'running', currentWave: 0, plan: { first: { count: 1 }, then: 'auto', maxFailureRate: 0.5 }, target: { tag: 'hall' } });
      expect(s.images()).toEqual([{ id: 1, name: 'fw', version: '2', digest: 'ab'.repeat(32), size: 3, file: `${'ab'.repeat(32)}.bin`, uploadedAt: 4, uploadedBy: 'admin', usedBy: 1 }]);
      expect(s.deviceSettings(DEV)).toEqual({ palette: 'reference', label: 'hall' });
      expect(s.meta('operator_token')).toBe('scrypt$x');
      // Numbering carries on after the copied rows.
      expect(pg.appendAudit({ ...before.audit[0], seq: undefined } as never).seq).toBe(4);
      expect(s.addCampaign({ name: 'b', url: 'u', digest: 'cd'.repeat(32), size: null, file: null, autoActivate: false, devices: [] }, 7).id).toBe(2);
      expect(s.addImage({ name: 'c', version: '', digest: 'cd'.repeat(32), size: 1, file: 'x.bin', uploadedAt: 8, uploadedBy: 'admin' }).image.id).toBe(2);
    } finally {
      pg.close();
    }
    const r2 = await c2Cli(['migrate', '--from', dir, '--to', url]);
    expect([r2.code, r2.err]).toEqual([1, expect.stringMatching(/cannot migrate: .* is not empty: its table devices has 2 rows/)]);
  }, 60_000);
});
