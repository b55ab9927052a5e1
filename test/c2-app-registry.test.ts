/**
 * The durable registry: the same behaviour as the in-memory reference registry (one contract, run against both),
 * survival across reopen and kill -9, schema versioning, and the application tables (campaigns, sessions,
 * settings).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { buildSync } from 'esbuild';
import { parsePublicKeyPem } from '../crypto/keys.js';
import { MemoryRegistry } from '../modules/c2/memory-registry.js';
import type { Registry } from '../modules/c2/registry.js';
import { SCHEMA_VERSION, SqliteRegistry } from '../hosts/node/sqlite-registry.js';

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

const makers: Array<[string, () => Registry]> = [
  ['memory', () => new MemoryRegistry()],
  ['sqlite', () => sqlite()],
];

describe.each(makers)('registry contract (%s)', (_name, make) => {
  test('a new device is provisioned with no join, and unknown ids read as null', () => {
    const r = make();
    expect(r.device(BIG)).toBeNull();
    const d = r.addDevice(BIG, KEY1, 1000);
    expect(d).toEqual({
      id: BIG,
      publicKey: KEY1,
      state: 'provisioned',
      joinKind: null,
      joinToken: null,
      joinSecret: null,
      observerId: null,
      observationToken: null,
      lastSeen: null,
      identification: null,
      firmwareName: null,
      firmwareVersion: null,
      lastResponse: null,
      createdAt: 1000,
      updatedAt: 1000,
    });
    expect(r.device(BIG)).toEqual(d);
    expect(r.device(BIG)!.publicKey.n).toBe(KEY1.n);
  });

  test('devices are listed in id order across the whole u64 range, filtered by state', () => {
    const r = make();
    r.addDevice(MAX, KEY1, 1);
    r.addDevice(SMALL, KEY1, 2);
    r.addDevice(BIG, KEY2, 3);
    r.updateDevice(BIG, { state: 'joined' }, 4);
    expect(r.devices().map((d) => d.id)).toEqual([SMALL, BIG, MAX]);
    expect(r.devices('joined').map((d) => d.id)).toEqual([BIG]);
    expect(r.devices('provisioned').map((d) => d.id)).toEqual([SMALL, MAX]);
    expect(r.devices('refused')).toEqual([]);
  });

  test('updateDevice changes only the given fields and keeps id and createdAt', () => {
    const r = make();
    r.addDevice(BIG, KEY1, 10);
    const token = new Uint8Array([1, 2, 3]);
    const d = r.updateDevice(
      BIG,
      {
        state: 'pending',
        joinKind: 'human',
        joinToken: token,
        joinSecret: '0123456789abcdef0123456789abcdef',
        observerId: SMALL,
        observationToken: new Uint8Array([9]),
        lastSeen: 20,
        lastResponse: { status: 0x50, token: new Uint8Array([7, 7]), at: 21 },
      },
      22,
    );
    expect(d.state).toBe('pending');
    expect(d.joinKind).toBe('human');
    expect(d.joinToken).toEqual(token);
    expect(d.observerId).toBe(SMALL);
    expect(d.lastResponse).toEqual({ status: 0x50, token: new Uint8Array([7, 7]), at: 21 });
    expect(d.createdAt).toBe(10);
    expect(d.updatedAt).toBe(22);
    const e = r.updateDevice(BIG, { identification: 'srup-agent 1.2.3', firmwareName: 'srup-agent', firmwareVersion: '1.2.3' }, 30);
    expect(e.joinSecret).toBe('0123456789abcdef0123456789abcdef');
    expect(e.firmwareVersion).toBe('1.2.3');
    const f = r.updateDevice(BIG, { joinToken: null, joinSecret: null, observerId: null, lastResponse: null }, 31);
    expect(f.joinToken).toBeNull();
    expect(f.joinSecret).toBeNull();
    expect(f.observerId).toBeNull();
    expect(f.lastResponse).toBeNull();
    expect(f.identification).toBe('srup-agent 1.2.3');
  });

  test('updating an unknown device throws unknown_device', () => {
    const r = make();
    expect(() => r.updateDevice(BIG, { state: 'joined' }, 1)).toThrow(expect.objectContaining({ reason: 'unknown_device' }));
  });

  test('returned records are copies: changing them changes nothing stored', () => {
    const r = make();
    r.addDevice(BIG, KEY1, 1);
    r.updateDevice(BIG, { joinToken: new Uint8Array([1, 2]) }, 2);
    const d = r.device(BIG)!;
    d.joinToken![0] = 99;
    expect(r.device(BIG)!.joinToken).toEqual(new Uint8Array([1, 2]));
    const a = r.appendAudit({ at: 1, direction: 'out', device: BIG, type: 'action', sequenceId: 1n, token: new Uint8Array([5]), status: null, bytes: new Uint8Array([6]) });
    a.token[0] = 0;
    expect(r.audit()[0].token).toEqual(new Uint8Array([5]));
  });

  test('re-registering a device replaces its key, resets its join and keeps its history fields', () => {
    const r = make();
    r.addDevice(BIG, KEY1, 1);
    r.updateDevice(BIG, { state: 'joined', joinKind: 'simple', lastSeen: 5, identification: 'x 1', lastResponse: { status: 0, token: new Uint8Array([1]), at: 5 } }, 6);
    const d = r.addDevice(BIG, KEY2, 7);
    expect(d.publicKey).toEqual(KEY2);
    expect(d.state).toBe('provisioned');
    expect(d.joinKind).toBeNull();
    expect(d.lastSeen).toBe(5);
    expect(d.identification).toBe('x 1');
    expect(d.createdAt).toBe(1);
    expect(d.updatedAt).toBe(7);
  });

  test('sequence counters start at zero, are kept per peer, hold u64 values and are forgotten', () => {
    const r = make();
    expect(r.sequence(BIG)).toEqual({ lastSent: 0n, lastAccepted: 0n });
    r.setLastSent(BIG, 5n);
    r.setLastAccepted(BIG, MAX);
    r.setLastAccepted(SMALL, 3n);
    expect(r.sequence(BIG)).toEqual({ lastSent: 5n, lastAccepted: MAX });
    expect(r.sequence(SMALL)).toEqual({ lastSent: 0n, lastAccepted: 3n });
    r.forgetSequence(BIG);
    expect(r.sequence(BIG)).toEqual({ lastSent: 0n, lastAccepted: 0n });
    expect(r.sequence(SMALL)).toEqual({ lastSent: 0n, lastAccepted: 3n });
  });

  test('updates: created initiated, patched, listed oldest first, duplicate and unknown tokens refused', () => {
    const r = make();
    const u = r.addUpdate({ token: 't-1', device: BIG, url: 'http://h/a.bin', digest: 'ab'.repeat(32) }, 100);
    expect(u).toEqual({ token: 't-1', device: BIG, url: 'http://h/a.bin', digest: 'ab'.repeat(32), state: 'initiated', status: null, failure: null, createdAt: 100, updatedAt: 100 });
    r.addUpdate({ token: 't-0', device: SMALL, url: 'http://h/b.bin', digest: 'cd'.repeat(32) }, 101);
    r.addUpdate({ token: 't-2', device: BIG, url: 'http://h/c.bin', digest: 'ef'.repeat(32) }, 102);
    expect(() => r.addUpdate({ token: 't-1', device: BIG, url: 'u', digest: 'd' }, 103)).toThrow(expect.objectContaining({ reason: 'duplicate_token' }));
    expect(r.updates().map((x) => x.token)).toEqual(['t-1', 't-0', 't-2']);
    expect(r.updates(BIG).map((x) => x.token)).toEqual(['t-1', 't-2']);
    const s = r.setUpdate('t-1', { state: 'staged', status: 0 }, 110);
    expect(s).toMatchObject({ state: 'staged', status: 0, failure: null, updatedAt: 110, createdAt: 100 });
    const f = r.setUpdate('t-1', { state: 'failed', failure: 'activate_timeout' }, 120);
    expect(f).toMatchObject({ state: 'failed', status: 0, failure: 'activate_timeout' });
    expect(r.update('nope')).toBeNull();
    expect(() => r.setUpdate('nope', { state: 'failed' }, 1)).toThrow(expect.objectContaining({ reason: 'unknown_update' }));
  });

  test('removeDevice forgets the record, its counters and its updates but keeps the audit log', () => {
    const r = make();
    r.addDevice(BIG, KEY1, 1);
    r.addDevice(SMALL, KEY1, 1);
    r.setLastSent(BIG, 4n);
    r.addUpdate({ token: 'a', device: BIG, url: 'u', digest: 'd' }, 2);
    r.addUpdate({ token: 'b', device: SMALL, url: 'u', digest: 'd' }, 2);
    r.appendAudit({ at: 3, direction: 'in', device: BIG, type: 'response', sequenceId: 2n, token: new Uint8Array(0), status: 0, bytes: new Uint8Array([1]) });
    expect(r.removeDevice(BIG)).toBe(true);
    expect(r.removeDevice(BIG)).toBe(false);
    expect(r.device(BIG)).toBeNull();
    expect(r.sequence(BIG)).toEqual({ lastSent: 0n, lastAccepted: 0n });
    expect(r.updates().map((u) => u.token)).toEqual(['b']);
    expect(r.audit()).toHaveLength(1);
  });

  test('the audit log numbers entries 1, 2, 3 and filters by device, after and limit', () => {
    const r = make();
    const mk = (device: bigint, i: number) => ({
      at: i,
      direction: (i % 2 ? 'in' : 'out') as 'in' | 'out',
      device,
      type: i % 2 ? 'response' : 'initiate',
      sequenceId: BigInt(i) + 0xfffffffffffff000n,
      token: new Uint8Array([i]),
      status: i % 2 ? 0xff : null,
      bytes: new Uint8Array([i, i]),
    });
    const seqs = [];
    for (let i = 1; i <= 6; i++) seqs.push(r.appendAudit(mk(i <= 3 ? BIG : SMALL, i)).seq);
    expect(seqs).toEqual([1, 2, 3, 4, 5, 6]);
    expect(r.audit()[0]).toEqual({ ...mk(BIG, 1), seq: 1 });
    expect(r.audit({ device: SMALL }).map((e) => e.seq)).toEqual([4, 5, 6]);
    expect(r.audit({ after: 2, limit: 2 }).map((e) => e.seq)).toEqual([3, 4]);
    expect(r.audit({ device: BIG, after: 1 }).map((e) => e.seq)).toEqual([2, 3]);
    expect(r.audit({ after: 6 })).toEqual([]);
  });
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

  test('the database runs in WAL mode with synchronous=FULL and records its schema version', () => {
    const file = path.join(tmpDir(), 'c2.db');
    sqlite(file);
    const db = new Database(file, { readonly: true });
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    db.close();
    const r = sqlite(file);
    // synchronous is per connection: check the registry's own.
    expect((r as unknown as { db: Database.Database }).db.pragma('synchronous', { simple: true })).toBe(2);
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

describe('SqliteRegistry application tables', () => {
  test('campaigns keep their targets, tokens, errors and activation marks; lookups by token and file', () => {
    const r = sqlite();
    const c = r.addCampaign({ name: 'fw 2', url: 'http://h/images/x.bin', digest: 'ab'.repeat(32), size: 10, file: 'x.bin', autoActivate: false, devices: [BIG, SMALL] }, 5);
    expect(c).toEqual({ id: 1, name: 'fw 2', url: 'http://h/images/x.bin', digest: 'ab'.repeat(32), size: 10, file: 'x.bin', autoActivate: false, createdAt: 5, updatedAt: 5 });
    expect(r.targets(1).map((t) => [t.device, t.token, t.error, t.activate])).toEqual([[SMALL, null, null, false], [BIG, null, null, false]]);
    r.setTarget(1, BIG, { token: 'tok-1' }, 6);
    r.setTarget(1, SMALL, { error: 'device 42 is terminated, not joined' }, 7);
    r.setTarget(1, BIG, { activate: true }, 8);
    expect(r.targetByToken('tok-1')).toEqual({ campaign: 1, device: BIG, token: 'tok-1', error: null, activate: true, updatedAt: 8 });
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
    const r = sqlite();
    r.addSession({ id: 'a', csrf: 'x', createdAt: 1, expiresAt: 100 });
    r.addSession({ id: 'b', csrf: 'y', createdAt: 1, expiresAt: 200 });
    expect(r.session('a')).toEqual({ id: 'a', csrf: 'x', createdAt: 1, expiresAt: 100 });
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
    r.addDevice(BIG, KEY1, 1);
    r.addDevice(SMALL, KEY1, 1);
    r.updateDevice(SMALL, { state: 'joined' }, 2);
    expect(r.deviceCounts()).toEqual({ provisioned: 1, pending: 0, joined: 1, refused: 0, failed: 0, terminated: 0, deregistered: 0, resigned: 0 });
  });
});
