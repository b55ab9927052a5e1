/**
 * The durable registry: survival across reopen and kill -9, schema versioning, and the application tables
 * (campaigns, sessions, settings). Its behaviour as a Registry (the same as the in-memory reference registry) is
 * the contract of test/support/c2-registry-contract.ts, run against both by test/c2-registry.test.ts.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { buildSync } from 'esbuild';
import { parsePublicKeyPem } from '../crypto/keys.js';
import { SCHEMA_VERSION, SqliteRegistry } from '../hosts/node/sqlite-registry.js';
import type { SqliteDb } from '../hosts/node/sqlite-db.js';
import { C2Store } from '../tools/c2/store.js';

const KEY1 = parsePublicKeyPem(fs.readFileSync(path.join(__dirname, 'data/srup-vectors/keys/signer-1.public.pem'), 'utf8'));
const KEY2 = parsePublicKeyPem(fs.readFileSync(path.join(__dirname, 'data/srup-vectors/keys/signer-2.public.pem'), 'utf8'));
const BIG = 0xfedcba9876543210n;
const SMALL = 0x0000000000000042n;
const MAX = 0xffffffffffffffffn;

const dirs: string[] = [];
function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'c2-reg-'));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

const opened: SqliteRegistry[] = [];
function sqlite(file = path.join(tmpDir(), 'c2.db')): SqliteRegistry {
  const r = new SqliteRegistry(file);
  opened.push(r);
  return r;
}
afterEach(() => {
  while (opened.length) opened.pop()!.close();
});

describe('SqliteRegistry durability and schema', () => {
  test('everything written is there after closing and reopening', () => {
    const file = path.join(tmpDir(), 'c2.db');
    const a = new SqliteRegistry(file);
    a.addDevice(BIG, KEY1, 1);
    a.updateDevice(BIG, { state: 'pending', joinKind: 'human', joinSecret: 'ab'.repeat(16), joinToken: new Uint8Array([4, 5]) }, 2);
    a.setLastSent(BIG, 9n);
    a.addUpdate({ token: 'tok', device: BIG, url: 'http://x/y', digest: '00'.repeat(32) }, 3);
    a.appendAudit({ at: 4, direction: 'out', device: BIG, type: 'initiate', sequenceId: 9n, token: new Uint8Array([1]), status: null, bytes: new Uint8Array([1, 2, 3]) });
    const before = { d: a.device(BIG), s: a.sequence(BIG), u: a.updates(), l: a.audit() };
    a.close();
    const b = sqlite(file);
    expect({ d: b.device(BIG), s: b.sequence(BIG), u: b.updates(), l: b.audit() }).toEqual(before);
    expect(b.appendAudit({ ...before.l[0], seq: undefined } as never).seq).toBe(2);
  });

  test('the database runs in WAL mode (synchronous=NORMAL: commits are synced by SqliteDb) and records its schema version', () => {
    const file = path.join(tmpDir(), 'c2.db');
    sqlite(file);
    const db = new Database(file, { readonly: true });
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    db.close();
    const r = sqlite(file);
    // synchronous is per connection: check the registry's own. NORMAL (1): SQLite does not sync at each
    // commit; SqliteDb syncs the WAL itself before a commit is acknowledged (the group commit tests below).
    expect((r.db as SqliteDb).pragma('synchronous')).toBe(1);
  });

  test('a version-2 database gains the table of accepted IDs (version 3); its rows are kept', () => {
    const file = path.join(tmpDir(), 'c2.db');
    const db = new Database(file);
    db.exec(`CREATE TABLE devices (id TEXT PRIMARY KEY, key_n TEXT NOT NULL, key_e TEXT NOT NULL, state TEXT NOT NULL,
      join_kind TEXT, join_token BLOB, join_secret TEXT, observer_id TEXT, observation_token BLOB, last_seen INTEGER,
      identification TEXT, firmware_name TEXT, firmware_version TEXT, last_status INTEGER, last_status_token BLOB,
      last_status_at INTEGER, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
      profile TEXT NOT NULL DEFAULT 'srup' CHECK (profile IN ('srup', 'reference')));
      CREATE TABLE sequences (peer TEXT PRIMARY KEY, last_sent TEXT NOT NULL, last_accepted TEXT NOT NULL);`);
    db.prepare(`INSERT INTO devices (id, key_n, key_e, state, profile, created_at, updated_at) VALUES (?, ?, ?, 'joined', 'reference', 1, 2)`)
      .run('fedcba9876543210', KEY1.n.toString(16), KEY1.e.toString(16));
    db.prepare(`INSERT INTO sequences VALUES ('fedcba9876543210', '0000000000000010', '0000000000000020')`).run();
    db.pragma('user_version = 2');
    db.close();
    // Versions 1 and 2 made more tables; migrating from 2 adds `accepted` and `readings`, alters `audit`, `sessions`
    // and `campaigns`, and adds the image library.
    const raw = new Database(file);
    raw.exec(`CREATE TABLE updates (ord INTEGER PRIMARY KEY AUTOINCREMENT, token TEXT NOT NULL UNIQUE, device TEXT NOT NULL, url TEXT NOT NULL,
      digest TEXT NOT NULL, state TEXT NOT NULL, status INTEGER, failure TEXT, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
      CREATE TABLE audit (seq INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, direction TEXT NOT NULL, device TEXT NOT NULL,
      type TEXT NOT NULL, sequence_id TEXT NOT NULL, token BLOB NOT NULL, status INTEGER, bytes BLOB NOT NULL);
      CREATE TABLE sessions (id TEXT PRIMARY KEY, csrf TEXT NOT NULL, created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL);
      CREATE TABLE campaigns (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, url TEXT NOT NULL, digest TEXT NOT NULL,
      size INTEGER, file TEXT, auto_activate INTEGER NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
      CREATE TABLE campaign_targets (campaign INTEGER NOT NULL REFERENCES campaigns(id), device TEXT NOT NULL, token TEXT,
      error TEXT, activate INTEGER NOT NULL DEFAULT 0, updated_at INTEGER NOT NULL, PRIMARY KEY (campaign, device));`);
    raw.close();
    const r = sqlite(file);
    expect(r.schemaVersion()).toBe(SCHEMA_VERSION);
    expect(SCHEMA_VERSION).toBe(6);
    expect([r.device(BIG)?.state, r.device(BIG)?.profile]).toEqual(['joined', 'reference']);
    expect(r.sequence(BIG)).toEqual({ lastSent: 16n, lastAccepted: 32n });
    const check = new Database(file, { readonly: true });
    expect(check.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'accepted'`).all()).toEqual([{ name: 'accepted' }]);
    check.close();
  });

  test('a database written by a newer schema version is refused, not altered', () => {
    const file = path.join(tmpDir(), 'c2.db');
    sqlite(file).close();
    const db = new Database(file);
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    expect(() => new SqliteRegistry(file)).toThrow(/newer version/);
  });

  test('acknowledged writes survive kill -9 of the writing process', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'c2.db');
    sqlite(file).close();
    const bundle = path.join(dir, 'registry.cjs');
    buildSync({
      entryPoints: [path.join(__dirname, '../hosts/node/sqlite-registry.ts')],
      bundle: true,
      platform: 'node',
      format: 'cjs',
      outfile: bundle,
      external: ['better-sqlite3'],
      logLevel: 'silent',
    });
    // The child appends audit entries and moves a counter as fast as it can and prints each write once it
    // returned; it is killed mid-stream, and every printed write must be in the database.
    const script = `
      const { SqliteRegistry } = require(${JSON.stringify(bundle)});
      const r = new SqliteRegistry(${JSON.stringify(file)});
      let i = 0;
      const tick = () => {
        for (let k = 0; k < 5; k++) {
          i++;
          r.appendAudit({ at: i, direction: 'out', device: 1n, type: 'action', sequenceId: BigInt(i), token: new Uint8Array([i & 255]), status: null, bytes: new Uint8Array(64) });
          r.setLastSent(1n, BigInt(i));
          process.stdout.write(i + '\\n');
        }
        setImmediate(tick);
      };
      tick();
    `;
    const child = spawn(process.execPath, ['-e', script], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NODE_PATH: path.join(__dirname, '../node_modules') },
    });
    let out = '';
    let err = '';
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (b: Buffer) => {
        out += b.toString();
        if (out.split('\n').length > 300) resolve();
      });
      child.on('exit', () => reject(new Error(`writer exited early: ${err}`)));
    });
    const exited = new Promise((r) => child.on('exit', r));
    child.kill('SIGKILL');
    await exited;
    const lines = out.split('\n').filter((l) => /^\d+$/.test(l));
    const acknowledged = Number(lines[lines.length - 1]);
    expect(acknowledged).toBeGreaterThan(250);
    const r = sqlite(file);
    const log = r.audit();
    expect(log.length).toBeGreaterThanOrEqual(acknowledged);
    expect(log.slice(0, acknowledged).map((e) => e.at)).toEqual(Array.from({ length: acknowledged }, (_, k) => k + 1));
    expect(r.sequence(1n).lastSent).toBeGreaterThanOrEqual(BigInt(acknowledged));
  }, 30000);
});

describe('SqliteRegistry group commit', () => {
  test('writes of groups begun together share one commit; a throwing group is undone; resolved groups survive kill -9', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'c2.db');
    const r = sqlite(file);
    r.addDevice(BIG, KEY1, 1);
    const groups = [1, 2, 3].map(() => r.group(() => r.allocateSequence(BIG)));
    const undone = r.group(() => {
      r.allocateSequence(BIG);
      r.updateDevice(BIG, { state: 'joined' }, 2);
      throw new RangeError('does not fit');
    });
    // Nothing is committed until the next turn of the event loop: another connection sees the old state.
    const other = new Database(file, { readonly: true });
    expect(other.prepare('SELECT last_sent FROM sequences').all()).toEqual([]);
    const results = await Promise.all([...groups, undone.catch((e: Error) => e.message)]);
    expect(results).toEqual([1n, 2n, 3n, 'does not fit']);
    expect(other.prepare('SELECT last_sent FROM sequences').all()).toEqual([{ last_sent: '0000000000000003' }]);
    expect(r.device(BIG)?.state).toBe('provisioned');
    other.close();
    r.close();

    const bundle = path.join(dir, 'registry.cjs');
    buildSync({
      entryPoints: [path.join(__dirname, '../hosts/node/sqlite-registry.ts')],
      bundle: true,
      platform: 'node',
      format: 'cjs',
      outfile: bundle,
      external: ['better-sqlite3', 'pg'],
      logLevel: 'silent',
    });
    // As the engine sends: sequence ID and audit line in one group; printed once the group resolved.
    const script = `
      const { SqliteRegistry } = require(${JSON.stringify(bundle)});
      const r = new SqliteRegistry(${JSON.stringify(file)});
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
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_PATH: path.join(__dirname, '../node_modules') } });
    let out = '';
    let err = '';
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (b: Buffer) => {
        out += b.toString();
        if (out.split('\n').length > 300) resolve();
      });
      child.on('exit', () => reject(new Error(`writer exited early: ${err}`)));
    });
    const exited = new Promise((res) => child.on('exit', res));
    child.kill('SIGKILL');
    await exited;
    const acknowledged = Math.max(...out.split('\n').filter((l) => /^\d+$/.test(l)).map(Number));
    expect(acknowledged).toBeGreaterThan(250);
    const again = sqlite(file);
    const log = again.audit({ device: 1n });
    expect(log.length).toBeGreaterThanOrEqual(acknowledged);
    expect(log.slice(0, acknowledged).map((e) => e.at)).toEqual(Array.from({ length: acknowledged }, (_, k) => k + 1));
    expect(again.sequence(1n).lastSent).toBeGreaterThanOrEqual(BigInt(acknowledged));
  }, 30000);
});

describe('SqliteRegistry: a received message is checked with one statement', () => {
  test('device() reads the counters too: sequence() right after costs no statement, and sees the writes made since', async () => {
    const r = sqlite();
    r.addDevice(BIG, KEY1, 1);
    r.setLastAccepted(BIG, 4n);
    const stats = r.db.stats;
    let before = stats.statements;
    expect(r.device(BIG)?.id).toBe(BIG);
    expect(r.sequence(BIG)).toEqual({ lastSent: 0n, lastAccepted: 4n });
    expect(stats.statements - before).toBe(1);
    // Another device's counters, a write in between, and a later job read the table again.
    expect(r.sequence(SMALL)).toEqual({ lastSent: 0n, lastAccepted: 0n });
    r.device(BIG);
    r.setLastAccepted(BIG, 5n);
    expect(r.sequence(BIG).lastAccepted).toBe(5n);
    r.device(BIG);
    expect(r.allocateSequence(BIG)).toBe(6n);
    expect(r.sequence(BIG)).toEqual({ lastSent: 6n, lastAccepted: 5n });
    r.device(BIG);
    await Promise.resolve();
    before = stats.statements;
    r.sequence(BIG);
    expect(stats.statements - before).toBe(1);
    // Counters read inside a group that is undone are not kept.
    await expect(
      r.group(() => {
        r.setLastAccepted(BIG, 9n);
        r.device(BIG);
        throw new RangeError('undone');
      }),
    ).rejects.toThrow('undone');
    expect(r.sequence(BIG).lastAccepted).toBe(5n);
  });
});

describe('SqliteDb: a commit is acknowledged once its WAL is synced', () => {
  afterEach(() => jest.restoreAllMocks());

  test('the group commit syncs the WAL in the thread pool and resolves the groups only then; one sync at a time', async () => {
    const file = path.join(tmpDir(), 'c2.db');
    const r = sqlite(file);
    r.addDevice(BIG, KEY1, 1);
    const held: { fd: number; done: (e: NodeJS.ErrnoException | null) => void }[] = [];
    const pool = jest.spyOn(fs, 'fdatasync').mockImplementation(((fd: number, done: (e: NodeJS.ErrnoException | null) => void) => {
      held.push({ fd, done });
    }) as never);
    const onThread = jest.spyOn(fs, 'fdatasyncSync');
    let settled = 0;
    const first = [r.group(() => r.allocateSequence(BIG)), r.group(() => r.allocateSequence(BIG))].map((p) => p.then((v) => (settled++, v)));
    await new Promise((res) => setImmediate(res));
    await new Promise((res) => setImmediate(res));
    // Committed (another connection sees it) but not yet synced: not acknowledged.
    const other = new Database(file, { readonly: true });
    expect(other.prepare('SELECT last_sent FROM sequences').all()).toEqual([{ last_sent: '0000000000000002' }]);
    expect(held).toHaveLength(1);
    expect(fs.readlinkSync(`/proc/self/fd/${held[0].fd}`)).toBe(`${fs.realpathSync(file)}-wal`);
    expect(settled).toBe(0);
    // Groups begun while that sync is under way share a transaction committed when it ends, then synced.
    const second = r.group(() => r.allocateSequence(BIG)).then((v) => (settled++, v));
    await new Promise((res) => setImmediate(res));
    await new Promise((res) => setImmediate(res));
    expect(held).toHaveLength(1);
    expect(other.prepare('SELECT last_sent FROM sequences').all()).toEqual([{ last_sent: '0000000000000002' }]);
    held[0].done(null);
    expect(other.prepare('SELECT last_sent FROM sequences').all()).toEqual([{ last_sent: '0000000000000003' }]);
    expect(await Promise.all(first)).toEqual([1n, 2n]);
    expect(settled).toBe(2);
    expect(held).toHaveLength(2);
    // A failed sync rejects the groups it covered.
    held[1].done(Object.assign(new Error('EIO: i/o error'), { code: 'EIO' }));
    await expect(second).rejects.toThrow(/cannot sync .*-wal: EIO/);
    expect(onThread).not.toHaveBeenCalled();
    expect(pool).toHaveBeenCalledTimes(2);
    other.close();
  });

  test('a commit outside the group commit is synced on this thread before the call returns', async () => {
    const r = sqlite();
    const onThread = jest.spyOn(fs, 'fdatasyncSync');
    r.addDevice(BIG, KEY1, 1); // transaction()
    expect(onThread).toHaveBeenCalledTimes(1);
    r.setLastSent(BIG, 5n); // write()
    expect(onThread).toHaveBeenCalledTimes(2);
    r.appendAudit({ at: 4, direction: 'out', device: BIG, type: 'action', sequenceId: 9n, token: new Uint8Array([1]), status: null, bytes: new Uint8Array(3) }); // INSERT ... RETURNING
    expect(onThread).toHaveBeenCalledTimes(3);
    r.device(BIG);
    r.sequence(BIG);
    expect(onThread).toHaveBeenCalledTimes(3); // reads are not synced
    // A write outside a group while a group is open commits the group too, synced before it returns: the
    // group's promise resolves without a sync of its own.
    const pool = jest.spyOn(fs, 'fdatasync');
    const g = r.group(() => r.allocateSequence(BIG));
    r.setLastAccepted(BIG, 3n);
    expect(onThread).toHaveBeenCalledTimes(4);
    expect(await g).toBe(6n);
    expect(pool).not.toHaveBeenCalled();
  });
});

describe('C2Store: the application tables beside the registry', () => {
  test('campaigns keep their targets, tokens, errors and activation marks; lookups by token and file', () => {
    const r = new C2Store(sqlite().db);
    const c = r.addCampaign({ name: 'fw 2', url: 'http://h/images/x.bin', digest: 'ab'.repeat(32), size: 10, file: 'x.bin', autoActivate: false, devices: [BIG, SMALL] }, 5);
    expect(c).toEqual({
      id: 1,
      name: 'fw 2',
      url: 'http://h/images/x.bin',
      digest: 'ab'.repeat(32),
      size: 10,
      file: 'x.bin',
      autoActivate: false,
      image: null,
      state: 'running',
      reason: null,
      currentWave: 0,
      plan: null,
      target: null,
      createdBy: null,
      createdAt: 5,
      updatedAt: 5,
    });
    expect(r.targets(1).map((t) => [t.device, t.token, t.error, t.activate])).toEqual([[SMALL, null, null, false], [BIG, null, null, false]]);
    r.setTarget(1, BIG, { token: 'tok-1' }, 6);
    r.setTarget(1, SMALL, { error: 'device 42 is terminated, not joined' }, 7);
    r.setTarget(1, BIG, { activate: true }, 8);
    expect(r.targetByToken('tok-1')).toEqual({ campaign: 1, device: BIG, token: 'tok-1', error: null, activate: true, wave: 0, updatedAt: 8 });
    expect(r.target(1, SMALL)?.error).toBe('device 42 is terminated, not joined');
    expect(r.campaign(1)?.updatedAt).toBe(8);
    expect(r.campaignByFile('x.bin')?.id).toBe(1);
    expect(r.campaignByFile('y.bin')).toBeNull();
    expect(() => r.setTarget(1, MAX, { activate: true }, 9)).toThrow(/not in campaign/);
    const auto = r.addCampaign({ name: 'b', url: 'u', digest: 'cd'.repeat(32), size: null, file: null, autoActivate: true, devices: [MAX] }, 10);
    expect(r.targets(auto.id)[0].activate).toBe(true);
    expect(r.campaigns().map((x) => x.id)).toEqual([1, 2]);
  });

  test('sessions expire and are purged; settings and meta values are kept', () => {
    const reg = sqlite();
    const r = new C2Store(reg.db);
    r.addSession({ id: 'a', csrf: 'x', operator: 'admin', createdAt: 1, expiresAt: 100 });
    r.addSession({ id: 'b', csrf: 'y', operator: 'alice', createdAt: 1, expiresAt: 200 });
    expect(r.session('a')).toEqual({ id: 'a', csrf: 'x', operator: 'admin', createdAt: 1, expiresAt: 100 });
    expect(r.session('b')?.operator).toBe('alice');
    expect(r.purgeSessions(150)).toBe(1);
    expect(r.session('a')).toBeNull();
    r.deleteSession('b');
    expect(r.session('b')).toBeNull();
    expect(r.deviceSettings(BIG)).toEqual({ palette: 'default', label: null });
    r.setDeviceSettings(BIG, { palette: 'reference', label: 'hall' });
    expect(r.deviceSettings(BIG)).toEqual({ palette: 'reference', label: 'hall' });
    expect([...r.allDeviceSettings()]).toEqual([[BIG, { palette: 'reference', label: 'hall' }]]);
    expect(r.meta('k')).toBeNull();
    r.setMeta('k', 'v1');
    r.setMeta('k', 'v2');
    expect(r.meta('k')).toBe('v2');
    reg.addDevice(BIG, KEY1, 1);
    reg.addDevice(SMALL, KEY1, 1);
    reg.updateDevice(SMALL, { state: 'joined' }, 2);
    expect(reg.deviceCounts()).toEqual({ provisioned: 1, pending: 0, joined: 1, refused: 0, failed: 0, terminated: 0, deregistered: 0, resigned: 0 });
  });
});
