/**
 * Staged campaigns and the image library (tools/c2/campaigns.ts, tools/c2/store.ts) on a SQLite registry, with a
 * scripted engine standing in for the devices: it records every initiate and activate the campaigns send and
 * answers with the status codes a test chooses, writing the update records as the real engine does
 * (modules/c2/update.ts). The clock is a counter; nothing waits for time.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parsePublicKeyPem } from '../crypto/keys.js';
import type { C2Engine } from '../modules/c2/engine.js';
import type { C2Event } from '../modules/c2/events.js';
import type { UpdateRecord } from '../modules/c2/registry.js';
import { C2Error } from '../modules/c2/errors.js';
import { idToHex } from '../hosts/node/durable.js';
import { PgDb } from '../hosts/node/pg-db.js';
import { PgRegistry } from '../hosts/node/pg-registry.js';
import type { SqlDb } from '../hosts/node/sql.js';
import type { SqlRegistry } from '../hosts/node/sql-registry.js';
import { migrate } from '../hosts/node/sql-schema.js';
import { SqliteDb } from '../hosts/node/sqlite-db.js';
import { SqliteRegistry } from '../hosts/node/sqlite-registry.js';
import {
  CampaignError,
  Campaigns,
  checkImageName,
  parseCampaignRequest,
  registryResolver,
  type CampaignView,
  type TargetResolver,
} from '../tools/c2/campaigns.js';
import { errorStatus } from '../tools/c2/http.js';
import { C2Store } from '../tools/c2/store.js';
import { deviceIdsMatching } from '../tools/c2/fleet.js';
import { dropPgSchemas, freshPgUrl, pgDescribe } from './support/postgres.js';

const KEY = parsePublicKeyPem(fs.readFileSync(path.join(__dirname, 'data/srup-vectors/keys/signer-1.public.pem'), 'utf8'));
const DIGEST = 'ab'.repeat(32);
const URL0 = 'http://files.example/fw.bin';

/** Devices 0x101, 0x102, ... */
const dev = (i: number) => 0x100n + BigInt(i + 1);
const hex = (i: number) => idToHex(dev(i));

/** The engine as the campaigns use it: startUpdate, activateUpdate, on. */
class ScriptedEngine {
  readonly initiates: { device: bigint; token: string }[] = [];
  readonly activates: string[] = [];
  /** Devices whose initiate cannot be sent (as the engine refuses a device that is not joined). */
  readonly unreachable = new Set<bigint>();
  private readonly listeners = new Set<(e: C2Event) => void>();
  private n = 0;

  constructor(private readonly registry: SqlRegistry, private readonly now: () => number) {}

  on(l: (e: C2Event) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  startUpdate(device: bigint, url: string, digest: string): { token: string; response: Promise<UpdateRecord> } {
    if (this.unreachable.has(device)) throw new C2Error('not_joined', `device ${idToHex(device)} is terminated, not joined`);
    const token = `tok-${device.toString(16)}-${++this.n}-${Math.random().toString(36).slice(2, 8)}`;
    const u = this.registry.addUpdate({ token, device, url, digest }, this.now());
    this.initiates.push({ device, token });
    this.emit(u);
    return { token, response: new Promise(() => undefined) };
  }

  activateUpdate(token: string): Promise<UpdateRecord> {
    this.activates.push(token);
    this.emit(this.registry.setUpdate(token, { state: 'activating' }, this.now()));
    return new Promise(() => undefined);
  }

  /** The latest update token sent to a device. */
  token(device: bigint): string {
    const t = this.registry.updates(device).at(-1);
    if (t === undefined) throw new Error(`nothing sent to ${idToHex(device)}`);
    return t.token;
  }

  /** The device answers its latest update with `status` (0x00 staged, 0x10 confirmed, anything else failed). */
  answer(device: bigint, status: number): void {
    const state = status === 0x00 ? 'staged' : status === 0x10 ? 'confirmed' : 'failed';
    this.emit(this.registry.setUpdate(this.token(device), { state, status, failure: null }, this.now()));
  }

  /** The server gave up waiting (the engine's timer). */
  timeout(device: bigint, failure: 'initiate_timeout' | 'activate_timeout'): void {
    this.emit(this.registry.setUpdate(this.token(device), { state: 'failed', status: null, failure }, this.now()));
  }

  /** Tells this engine's listeners about an update another node changed. */
  emit(update: UpdateRecord): void {
    for (const l of this.listeners) l({ type: 'update', update } as C2Event);
  }
}

interface Node {
  registry: SqlRegistry;
  store: C2Store;
  engine: ScriptedEngine;
  campaigns: Campaigns;
  changed: number[];
}

let dir: string;
let clock = 1000;
const opened: Node[] = [];
/** The database every node of a test opens: SQLite in the test's directory, or one PostgreSQL schema. */
let openRegistry: () => SqlRegistry = () => new SqliteRegistry(path.join(dir, 'c2.db'));

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2-camp-'));
  clock = 1000;
});
afterEach(() => {
  while (opened.length) {
    const n = opened.pop()!;
    n.campaigns.stop();
    n.registry.close();
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

/** A server node on the test's database (several may share it, as several C2 nodes share PostgreSQL). */
function node(o: { resolve?: TargetResolver; start?: boolean } = {}): Node {
  const registry = openRegistry();
  const store = new C2Store(registry.db);
  const now = () => ++clock;
  const engine = new ScriptedEngine(registry, now);
  const changed: number[] = [];
  const campaigns = new Campaigns({
    registry,
    store,
    engine: engine as unknown as C2Engine,
    log: () => undefined,
    imagesDir: path.join(dir, 'images'),
    imageUrl: (file) => `http://127.0.0.1:1/images/${file}`,
    now,
    changed: (id) => changed.push(id),
    resolve: o.resolve,
  });
  if (o.start !== false) campaigns.start();
  const n = { registry, store, engine, campaigns, changed };
  opened.push(n);
  return n;
}

/** `count` joined devices (0x101...). */
function joined(n: Node, count: number): void {
  for (let i = 0; i < count; i++) {
    n.registry.addDevice(dev(i), KEY, 1);
    n.registry.updateDevice(dev(i), { state: 'joined' }, 2);
  }
}

const devices = (count: number, from = 0) => Array.from({ length: count }, (_, i) => hex(from + i));
const sentTo = (n: Node) => n.engine.initiates.map((x) => idToHex(x.device));
const view = (n: Node, id: number) => n.campaigns.view(id) as CampaignView;
const shape = (v: CampaignView) => ({ state: v.state, currentWave: v.currentWave, waves: v.waves, reason: v.reason });

async function refusal(p: (() => unknown) | Promise<unknown>): Promise<{ status: number; message: string }> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    if (e instanceof CampaignError) return { status: errorStatus(e.code), message: e.message };
    throw e;
  }
  throw new Error('not refused');
}

/** Two server nodes on one database both handle the last update of a wave: one of them sends the next wave. */
async function twoNodes(): Promise<void> {
  const a = node();
  const b = node();
  joined(a, 5);
  const c = await a.campaigns.create(
    parseCampaignRequest({ url: URL0, digest: DIGEST, target: { devices: devices(5) }, waves: { first: { count: 2 }, then: 'auto' } }),
  );
  a.engine.answer(dev(0), 0x00);
  a.engine.answer(dev(1), 0x00);
  // Both nodes handle the wave's last update (each saw one of the answers, or the sweep ran on both).
  const last = a.registry.update(a.engine.token(dev(1))) as UpdateRecord;
  b.engine.emit(last);
  b.campaigns.sweep();
  a.campaigns.sweep();
  expect([...sentTo(a), ...sentTo(b)]).toEqual(devices(5));
  expect(a.store.transition(c.id, { states: ['running'], wave: 0 }, { state: 'running', wave: 1 }, 1)).toBe(false);
}

describe('waves', () => {
  test('a first wave of N devices; the rest on the operator\'s go', async () => {
    const n = node();
    joined(n, 5);
    const c = await n.campaigns.create(parseCampaignRequest({ url: URL0, digest: DIGEST, target: { devices: devices(5) }, waves: { first: { count: 2 }, then: 'manual' } }));
    expect(sentTo(n)).toEqual(devices(2));
    expect(shape(c)).toEqual({
      state: 'running',
      currentWave: 0,
      reason: null,
      waves: [
        { index: 0, size: 2, sent: 2, done: 0, failed: 0 },
        { index: 1, size: 3, sent: 0, done: 0, failed: 0 },
      ],
    });
    expect(c.targets.map((t) => [t.device, t.wave, t.state])).toEqual([
      [hex(0), 0, 'initiated'],
      [hex(1), 0, 'initiated'],
      [hex(2), 1, 'not_sent'],
      [hex(3), 1, 'not_sent'],
      [hex(4), 1, 'not_sent'],
    ]);
    // No activation asked: a good download settles a target. The wave is finished: the campaign waits.
    n.engine.answer(dev(0), 0x00);
    expect(view(n, c.id).state).toBe('running');
    n.engine.answer(dev(1), 0x00);
    const waiting = view(n, c.id);
    expect(waiting.state).toBe('waiting');
    expect(waiting.reason).toMatch(/first wave is finished \(0 of 2 failed\): waiting for the operator's go/);
    expect(n.engine.initiates).toHaveLength(2);

    expect(n.campaigns.proceed(c.id)).toBe(3);
    expect(sentTo(n)).toEqual(devices(5));
    expect(shape(view(n, c.id))).toMatchObject({ state: 'running', currentWave: 1, reason: null });
    expect(await refusal(() => n.campaigns.proceed(c.id))).toEqual({ status: 409, message: `campaign ${c.id} has no further wave` });
    for (const i of [2, 3, 4]) n.engine.answer(dev(i), 0x00);
    expect(view(n, c.id).state).toBe('done');
    // Activate all: the staged devices are activated, and the campaign runs until they confirm.
    expect(n.campaigns.activate(c.id)).toBe(5);
    expect(view(n, c.id).state).toBe('running');
    for (let i = 0; i < 5; i++) n.engine.answer(dev(i), 0x10);
    const done = view(n, c.id);
    expect([done.state, done.done, done.waves.map((w) => w.done)]).toEqual(['done', 5, [2, 3]]);
  });

  test('a first wave of P %: rounded up, at least one device; a first wave covering everything is one wave', async () => {
    const n = node();
    joined(n, 10);
    const c = await n.campaigns.create(parseCampaignRequest({ url: URL0, digest: DIGEST, target: { devices: devices(10) }, waves: { first: { percent: 25 } } }));
    expect(c.waves.map((w) => w.size)).toEqual([3, 7]);
    expect(sentTo(n)).toEqual(devices(3));
    expect(c.plan).toEqual({ first: { percent: 25 }, then: 'manual', maxFailureRate: 0 });

    const tiny = await n.campaigns.create(parseCampaignRequest({ url: URL0, digest: DIGEST, target: { devices: devices(10) }, waves: { first: { percent: 0.5 } } }));
    expect(tiny.waves.map((w) => w.size)).toEqual([1, 9]);

    const all = await n.campaigns.create(parseCampaignRequest({ url: URL0, digest: DIGEST, target: { devices: devices(4) }, waves: { first: { count: 9 } } }));
    expect([all.plan, all.waves]).toEqual([null, [{ index: 0, size: 4, sent: 4, done: 0, failed: 0 }]]);
  });

  test('automatic next wave when the failure rate is within the limit', async () => {
    const n = node();
    joined(n, 10);
    const c = await n.campaigns.create(
      parseCampaignRequest({ url: URL0, digest: DIGEST, target: { devices: devices(10) }, autoActivate: true, waves: { first: { count: 4 }, then: 'auto', maxFailureRate: 0.25 } }),
    );
    for (const i of [0, 1, 2]) n.engine.answer(dev(i), 0x00);
    // autoActivate: each good download is activated at once, and the wave waits for the confirmations.
    expect(n.engine.activates).toHaveLength(3);
    n.engine.answer(dev(3), 0xff);
    n.engine.answer(dev(0), 0x10);
    n.engine.answer(dev(1), 0x10);
    expect(n.engine.initiates).toHaveLength(4);
    n.engine.answer(dev(2), 0x10);
    // 1 of 4 failed: 25 %, within the limit. The rest went out by itself.
    expect(sentTo(n)).toEqual(devices(10));
    expect(shape(view(n, c.id))).toMatchObject({ state: 'running', currentWave: 1, reason: null });
    expect(view(n, c.id).waves[0]).toEqual({ index: 0, size: 4, sent: 4, done: 3, failed: 1 });
  });

  test('above the limit the campaign stops and waits, with the reason; nothing more is sent until the go', async () => {
    const n = node();
    joined(n, 8);
    const c = await n.campaigns.create(
      parseCampaignRequest({ url: URL0, digest: DIGEST, target: { devices: devices(8) }, waves: { first: { count: 4 }, then: 'auto', maxFailureRate: 0.25 } }),
    );
    n.engine.answer(dev(0), 0x00);
    n.engine.answer(dev(1), 0xfe);
    n.engine.answer(dev(2), 0x00);
    n.engine.timeout(dev(3), 'initiate_timeout');
    const v = view(n, c.id);
    expect(v.state).toBe('waiting');
    expect(v.reason).toBe("the first wave failed on 2 of 4 devices (50%), above the limit of 25%: waiting for the operator's go");
    n.campaigns.sweep();
    expect(n.engine.initiates).toHaveLength(4);
    // A retry of the failed devices runs the wave again; once they are good the rest goes out by itself.
    expect(n.campaigns.retry(c.id)).toBe(2);
    expect(view(n, c.id).state).toBe('running');
    n.engine.answer(dev(1), 0x00);
    expect(n.engine.initiates).toHaveLength(6);
    n.engine.answer(dev(3), 0x00);
    expect(sentTo(n).slice(6)).toEqual(devices(4, 4));
    expect(view(n, c.id).currentWave).toBe(1);
  });

  test('a wave\'s initiates are recorded in one commit', async () => {
    const n = node();
    joined(n, 40);
    const c = await n.campaigns.create(parseCampaignRequest({ url: URL0, digest: DIGEST, target: { devices: devices(40) }, waves: { first: { count: 1 } } }));
    const before = n.registry.db.stats.commits;
    expect(n.campaigns.proceed(c.id)).toBe(39);
    // The move to the next wave is one statement; the 39 update records and target rows are one commit.
    expect(n.registry.db.stats.commits - before).toBe(1);
    expect(view(n, c.id).waves[1]).toEqual({ index: 1, size: 39, sent: 39, done: 0, failed: 0 });
  });

  test('the operator\'s go while the first wave still runs sends the rest at once', async () => {
    const n = node();
    joined(n, 3);
    const c = await n.campaigns.create(parseCampaignRequest({ url: URL0, digest: DIGEST, target: { devices: devices(3) }, waves: { first: { count: 1 }, then: 'auto' } }));
    expect(n.campaigns.proceed(c.id)).toBe(2);
    expect(sentTo(n)).toEqual(devices(3));
  });
});

describe('pause, resume, cancel', () => {
  test('nothing is sent while paused; resume sends what is owed and moves on', async () => {
    const n = node();
    joined(n, 4);
    const c = await n.campaigns.create(
      parseCampaignRequest({ url: URL0, digest: DIGEST, target: { devices: devices(4) }, autoActivate: true, waves: { first: { count: 2 }, then: 'auto' } }),
    );
    expect(n.campaigns.pause(c.id).state).toBe('paused');
    // Updates under way finish: the answers are recorded, but no activate and no next wave go out.
    n.engine.answer(dev(0), 0x00);
    n.engine.answer(dev(1), 0x00);
    expect([n.engine.initiates.length, n.engine.activates.length]).toEqual([2, 0]);
    expect(view(n, c.id).counts).toEqual({ staged: 2, not_sent: 2 });
    for (const f of [() => n.campaigns.proceed(c.id), () => n.campaigns.activate(c.id), () => n.campaigns.retry(c.id), () => n.campaigns.pause(c.id)]) {
      expect(await refusal(f)).toEqual({ status: 409, message: `campaign ${c.id} is paused (resume it first)` });
    }
    n.campaigns.sweep();
    expect([n.engine.initiates.length, n.engine.activates.length]).toEqual([2, 0]);

    expect(n.campaigns.resume(c.id).state).toBe('running');
    expect(n.engine.activates).toEqual([n.engine.token(dev(0)), n.engine.token(dev(1))]);
    n.engine.answer(dev(0), 0x10);
    n.engine.answer(dev(1), 0x10);
    expect(sentTo(n)).toEqual(devices(4));
    expect(await refusal(() => n.campaigns.resume(c.id))).toEqual({ status: 409, message: `campaign ${c.id} is running, not paused` });
  });

  test('a campaign paused while waiting waits again after resume; its go then sends the rest', async () => {
    const n = node();
    joined(n, 3);
    const c = await n.campaigns.create(parseCampaignRequest({ url: URL0, digest: DIGEST, target: { devices: devices(3) }, waves: { first: { count: 1 } } }));
    n.engine.answer(dev(0), 0x00);
    expect(view(n, c.id).state).toBe('waiting');
    n.campaigns.pause(c.id);
    expect(n.campaigns.resume(c.id).state).toBe('waiting');
    expect(n.campaigns.proceed(c.id)).toBe(2);
  });

  test('cancel is final: nothing more is sent, the history stays', async () => {
    const n = node();
    joined(n, 4);
    const c = await n.campaigns.create(
      parseCampaignRequest({ url: URL0, digest: DIGEST, target: { devices: devices(4) }, autoActivate: true, waves: { first: { count: 2 }, then: 'auto', maxFailureRate: 1 } }),
    );
    n.engine.answer(dev(0), 0x00);
    expect(n.engine.activates).toHaveLength(1);
    const cancelled = n.campaigns.cancel(c.id);
    expect([cancelled.state, cancelled.reason]).toEqual(['cancelled', 'cancelled by the operator']);
    // The device already activating finishes; the other's good download gets no activate; no next wave.
    n.engine.answer(dev(0), 0x10);
    n.engine.answer(dev(1), 0x00);
    expect([n.engine.initiates.length, n.engine.activates.length]).toEqual([2, 1]);
    for (const f of [() => n.campaigns.resume(c.id), () => n.campaigns.proceed(c.id), () => n.campaigns.retry(c.id), () => n.campaigns.activate(c.id), () => n.campaigns.pause(c.id), () => n.campaigns.cancel(c.id)]) {
      expect(await refusal(f)).toEqual({ status: 409, message: expect.stringMatching(/^campaign \d+ is cancelled(, not paused)?$/) });
    }
    const v = view(n, c.id);
    expect([v.state, v.counts, v.done]).toEqual(['cancelled', { confirmed: 1, staged: 1, not_sent: 2 }, 1]);
    // After a restart too.
    const again = node();
    expect(view(again, c.id).state).toBe('cancelled');
    expect(again.engine.initiates).toHaveLength(0);
    expect(again.engine.activates).toHaveLength(0);
  });

  test('a finished campaign cannot be paused or cancelled', async () => {
    const n = node();
    joined(n, 1);
    const c = await n.campaigns.create(parseCampaignRequest({ url: URL0, digest: DIGEST, devices: devices(1) }));
    n.engine.answer(dev(0), 0xff);
    expect(view(n, c.id).state).toBe('done');
    expect(await refusal(() => n.campaigns.pause(c.id))).toEqual({ status: 409, message: `campaign ${c.id} is done` });
    expect(await refusal(() => n.campaigns.cancel(c.id))).toEqual({ status: 409, message: `campaign ${c.id} is done` });
  });
});

describe('failures and rollbacks', () => {
  test('failed targets are counted by status code or by why; a device that answered the activate with 0x1F rolled back', async () => {
    const n = node();
    joined(n, 8);
    n.engine.unreachable.add(dev(7));
    const c = await n.campaigns.create(parseCampaignRequest({ url: URL0, digest: DIGEST, target: { devices: devices(8) }, autoActivate: true }));
    n.engine.answer(dev(0), 0xfc);
    n.engine.answer(dev(1), 0xfe);
    n.engine.answer(dev(2), 0xfe);
    n.engine.answer(dev(3), 0xff);
    n.engine.timeout(dev(4), 'initiate_timeout');
    n.engine.answer(dev(5), 0x00);
    n.engine.answer(dev(5), 0x1f);
    n.engine.answer(dev(6), 0x00);
    n.engine.timeout(dev(6), 'activate_timeout');
    const v = view(n, c.id);
    expect(v.failures).toEqual({ '0xfc': 1, '0xfe': 2, '0xff': 1, initiate_timeout: 1, '0x1f': 1, activate_timeout: 1, send_error: 1 });
    expect(v.targets.filter((t) => t.rolledBack).map((t) => t.device)).toEqual([hex(5)]);
    expect(v.targets.find((t) => t.device === hex(7))?.error).toMatch(/not joined/);
    expect([v.state, v.waves]).toEqual(['done', [{ index: 0, size: 8, sent: 7, done: 0, failed: 8 }]]);
  });
});

describe('restart and several nodes', () => {
  test('a restart mid-campaign carries on: a wave settled while stopped moves on; a wave moved on but not sent is sent', async () => {
    const a = node();
    joined(a, 6);
    const c = await a.campaigns.create(
      parseCampaignRequest({ url: URL0, digest: DIGEST, target: { devices: devices(6) }, waves: { first: { count: 2 }, then: 'auto' } }),
    );
    a.engine.answer(dev(0), 0x00);
    a.campaigns.stop();
    // The last answer of the wave is recorded (by the engine) while the campaigns are not listening.
    a.registry.setUpdate(a.engine.token(dev(1)), { state: 'staged', status: 0 }, 5000);
    a.registry.close();
    opened.splice(opened.indexOf(a), 1);

    const b = node();
    expect(sentTo(b)).toEqual(devices(4, 2));
    expect(view(b, c.id).currentWave).toBe(1);

    // A node that died between the move and the sends: the next start sends the wave.
    const d = await b.campaigns.create(
      parseCampaignRequest({ url: URL0, digest: DIGEST, target: { devices: devices(6) }, waves: { first: { count: 1 }, then: 'manual' } }),
    );
    expect(b.store.transition(d.id, { states: ['running'], wave: 0 }, { state: 'running', wave: 1 }, 6000)).toBe(true);
    b.campaigns.stop();
    const e = node();
    expect(sentTo(e)).toEqual(devices(5, 1));
    expect(view(e, d.id).waves[1]).toEqual({ index: 1, size: 5, sent: 5, done: 0, failed: 0 });
  });

  test('two nodes seeing the wave settle at once: the next wave is sent once', twoNodes);
});

describe('targets', () => {
  test('the old body (devices, url + digest or file) still makes a one-wave campaign', async () => {
    const n = node();
    joined(n, 2);
    const c = await n.campaigns.create(parseCampaignRequest({ name: 'old', devices: devices(2), url: URL0, digest: DIGEST.toUpperCase(), autoActivate: true }));
    expect({ name: c.name, digest: c.digest, state: c.state, plan: c.plan, target: c.target, waves: c.waves.length, image: c.image }).toEqual({
      name: 'old',
      digest: DIGEST,
      state: 'running',
      plan: null,
      target: { devices: devices(2) },
      waves: 1,
      image: null,
    });
    expect(c.targets.every((t) => t.activate)).toBe(true);
    // The older call shape (a list of ids) too.
    const d = await n.campaigns.create({ url: URL0, digest: DIGEST, devices: [dev(0)] });
    expect(d.targets.map((t) => t.device)).toEqual([hex(0)]);
  });

  test('a filter, a tag or the online state chooses the joined devices that match (the fleet list\'s filter)', async () => {
    let db: SqlDb | null = null;
    const n = node({ resolve: (f) => deviceIdsMatching(db!, f, clock, 60_000) });
    db = n.registry.db;
    joined(n, 4);
    n.registry.updateDevice(dev(3), { state: 'terminated' }, 3);
    n.registry.updateDevice(dev(1), { firmwareName: 'srup-virtual', firmwareVersion: '1.2.0' }, 3);
    n.store.setDeviceSettings(dev(2), { palette: 'default', label: 'Greenhouse pump' });
    const c = await n.campaigns.create(parseCampaignRequest({ url: URL0, digest: DIGEST, target: { filter: { search: 'greenhouse' } } }));
    expect(c.targets.map((t) => t.device)).toEqual([hex(2)]);
    expect(c.target).toEqual({ filter: { search: 'greenhouse' } });
    const f = await n.campaigns.create(parseCampaignRequest({ url: URL0, digest: DIGEST, target: { filter: { firmware: '1.2' } } }));
    expect(f.targets.map((t) => t.device)).toEqual([hex(1)]);
    const all = await n.campaigns.create(parseCampaignRequest({ url: URL0, digest: DIGEST, target: { filter: {} } }));
    expect(all.targets.map((t) => t.device)).toEqual(devices(3));

    // Tags: the terminated device carries the tag too but is not joined.
    for (const i of [0, 2, 3]) n.store.setDeviceMeta(dev(i), { tags: ['garden'] });
    const t = await n.campaigns.create(parseCampaignRequest({ url: URL0, digest: DIGEST, target: { tag: 'garden' } }));
    expect([t.targets.map((x) => x.device), t.target]).toEqual([[hex(0), hex(2)], { tag: 'garden' }]);
    const tf = await n.campaigns.create(parseCampaignRequest({ url: URL0, digest: DIGEST, target: { filter: { tag: 'garden', search: 'pump' } } }));
    expect(tf.targets.map((x) => x.device)).toEqual([hex(2)]);
    // Online: heard from within the silence threshold (60 s here).
    n.registry.markSeen(dev(1), clock, null);
    n.registry.markSeen(dev(2), clock - 120_000, null);
    const on = await n.campaigns.create(parseCampaignRequest({ url: URL0, digest: DIGEST, target: { filter: { online: true } } }));
    expect(on.targets.map((x) => x.device)).toEqual([hex(1)]);
    const off = await n.campaigns.create(parseCampaignRequest({ url: URL0, digest: DIGEST, target: { filter: { online: false, tag: 'garden' } } }));
    expect(off.targets.map((x) => x.device)).toEqual([hex(0), hex(2)]);

    const before = n.store.campaigns().length;
    expect(await refusal(n.campaigns.create(parseCampaignRequest({ url: URL0, digest: DIGEST, target: { tag: 'orchard' } })))).toEqual({
      status: 400,
      message: 'no joined device matches the target',
    });
    expect(await refusal(n.campaigns.create(parseCampaignRequest({ url: URL0, digest: DIGEST, target: { filter: { state: 'terminated' } } })))).toEqual({
      status: 400,
      message: 'no joined device matches the target',
    });
    expect(n.store.campaigns()).toHaveLength(before);
  });

  test('a tag goes to the resolver given', async () => {
    const asked: unknown[] = [];
    const n = node({ resolve: (f) => (asked.push(f), [dev(1), dev(0), dev(1)]) });
    joined(n, 2);
    const c = await n.campaigns.create(parseCampaignRequest({ url: URL0, digest: DIGEST, target: { tag: 'garden' } }));
    expect(asked).toEqual([{ tag: 'garden' }]);
    expect(c.targets.map((t) => t.device)).toEqual(devices(2));
    expect(registryResolver(n.registry, n.store)({ state: 'joined' })).toEqual([dev(0), dev(1)]);
  });
});

describe('the image library', () => {
  function upload(n: Node, bytes: string, name: string | null, version: string | null) {
    const { createHash } = require('node:crypto') as typeof import('node:crypto');
    const digest = createHash('sha256').update(bytes).digest('hex');
    fs.mkdirSync(path.join(dir, 'images'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'images', `${digest}.bin`), bytes);
    return n.campaigns.addImage({ file: `${digest}.bin`, digest, size: bytes.length }, { ...checkImageName(name, version), by: 'admin' });
  }

  test('add (the same digest twice: the row already there), list with use, campaigns reuse, remove', async () => {
    const n = node();
    joined(n, 2);
    const first = upload(n, 'firmware one', 'sensor', '1.0.0');
    expect(first.created).toBe(true);
    expect(first.image).toEqual({ id: 1, name: 'sensor', version: '1.0.0', digest: expect.stringMatching(/^[0-9a-f]{64}$/), size: 12, file: `${first.image.digest}.bin`, uploadedAt: expect.any(Number), uploadedBy: 'admin' });
    const again = upload(n, 'firmware one', 'other name', '9');
    expect(again).toEqual({ image: first.image, created: false });
    const second = upload(n, 'firmware two', null, null);
    expect([second.image.name, second.image.version]).toEqual([`image ${second.image.digest.slice(0, 12)}`, '']);
    expect(n.campaigns.images().map((i) => [i.id, i.usedBy])).toEqual([[2, 0], [1, 0]]);

    const c1 = await n.campaigns.create(parseCampaignRequest({ image: 1, devices: devices(1) }));
    expect([c1.name, c1.image, c1.digest, c1.size, c1.file, c1.url]).toEqual(['sensor 1.0.0', 1, first.image.digest, 12, first.image.file, `http://127.0.0.1:1/images/${first.image.file}`]);
    // The older body naming the uploaded file is linked to the library image of that digest.
    const c2 = await n.campaigns.create(parseCampaignRequest({ file: first.image.file, devices: devices(1, 1) }));
    expect(c2.image).toBe(1);
    expect(n.campaigns.images().map((i) => [i.id, i.usedBy])).toEqual([[2, 0], [1, 2]]);

    expect(await refusal(() => n.campaigns.removeImage(1))).toEqual({ status: 409, message: `image 1 is used by campaign ${c1.id}, which is running` });
    expect(n.campaigns.images()).toHaveLength(2);
    n.campaigns.cancel(c1.id);
    n.engine.answer(dev(1), 0x00);
    expect(view(n, c2.id).state).toBe('done');
    n.campaigns.removeImage(1);
    expect(n.campaigns.images().map((i) => i.id)).toEqual([2]);
    expect(fs.existsSync(path.join(dir, 'images', first.image.file))).toBe(false);
    // The campaigns keep their history; the image cannot be sent again.
    expect([view(n, c1.id).image, view(n, c1.id).digest]).toEqual([null, first.image.digest]);
    n.engine.answer(dev(1), 0xff);
    expect(await refusal(() => n.campaigns.retry(c2.id))).toEqual({ status: 409, message: `the image of campaign ${c2.id} was removed` });
    expect(await refusal(() => n.campaigns.removeImage(1))).toEqual({ status: 404, message: 'no image 1' });
    expect(await refusal(n.campaigns.create(parseCampaignRequest({ image: 1, devices: devices(1) })))).toEqual({ status: 404, message: 'no image 1 in the library' });
  });

  test('names and versions are checked', async () => {
    expect(checkImageName(' sensor ', ' 1.0 ')).toEqual({ name: 'sensor', version: '1.0' });
    expect(checkImageName(null, null)).toEqual({ name: null, version: '' });
    for (const [name, version, message] of [
      ['', null, 'name must be 1 to 100 printable characters'],
      ['x'.repeat(101), null, 'name must be 1 to 100 printable characters'],
      ['a\nb', null, 'name must be 1 to 100 printable characters'],
      ['ok', 'v'.repeat(65), 'version must be at most 64 printable characters'],
      ['ok', '1\u0000', 'version must be at most 64 printable characters'],
    ] as const) {
      expect(await refusal(() => checkImageName(name, version))).toEqual({ status: 400, message });
    }
  });
});

describe('bad requests', () => {
  test('each is refused with 400 and a clear error, and nothing is stored or sent', async () => {
    const n = node();
    joined(n, 3);
    const ok = { url: URL0, digest: DIGEST };
    const cases: [Record<string, unknown>, string][] = [
      [{ devices: devices(1) }, 'give exactly one of image (a library image id), url (with digest) or file'],
      [{ ...ok, image: 1, devices: devices(1) }, 'give exactly one of image (a library image id), url (with digest) or file'],
      [{ image: 'x', devices: devices(1) }, 'image must be a library image id'],
      [{ image: 1.5, devices: devices(1) }, 'image must be a library image id'],
      [{ image: 1, digest: DIGEST, devices: devices(1) }, 'digest goes with url'],
      [{ url: URL0, digest: 'abc', devices: devices(1) }, 'digest must be 64 hex digits'],
      [{ ...ok }, 'target is required: { devices: [...] }, { tag: T } or { filter: {...} }'],
      [{ ...ok, devices: devices(1), target: { devices: devices(1) } }, 'give target or devices, not both'],
      [{ ...ok, devices: 'all' }, 'devices must be a list of device ids'],
      [{ ...ok, devices: [] }, 'choose at least one device'],
      [{ ...ok, devices: ['xyz'] }, 'not a device id (1 to 16 hex digits): xyz'],
      [{ ...ok, target: { devices: devices(1), tag: 'a' } }, 'target must be one of { devices: [...] }, { tag: T }, { filter: {...} }'],
      [{ ...ok, target: { group: 'a' } }, 'target must be one of { devices: [...] }, { tag: T }, { filter: {...} }'],
      [{ ...ok, target: { tag: 'has space' } }, 'target.tag must be 1 to 32 of A-Z a-z 0-9 _ . : -'],
      [{ ...ok, target: { filter: { colour: 'red' } } }, 'target.filter: unknown field "colour" (allowed: search, state, online, firmware, tag)'],
      [{ ...ok, target: { filter: { state: 'asleep' } } }, expect.stringMatching(/^target.filter.state must be one of provisioned, pending, joined/) as never],
      [{ ...ok, target: { filter: { online: 'yes' } } }, 'target.filter.online must be true or false'],
      [{ ...ok, target: { filter: [] } }, 'target.filter must be an object'],
      [{ ...ok, devices: devices(1), waves: 2 }, 'waves must be { first: { count: N } | { percent: P }, then: "manual" | "auto", maxFailureRate?: 0..1 }'],
      [{ ...ok, devices: devices(1), waves: { first: { count: 0 } } }, 'waves.first.count must be a whole number of at least 1'],
      [{ ...ok, devices: devices(1), waves: { first: { count: 2.5 } } }, 'waves.first.count must be a whole number of at least 1'],
      [{ ...ok, devices: devices(1), waves: { first: { percent: 0 } } }, 'waves.first.percent must be more than 0 and at most 100'],
      [{ ...ok, devices: devices(1), waves: { first: { percent: 101 } } }, 'waves.first.percent must be more than 0 and at most 100'],
      [{ ...ok, devices: devices(1), waves: { first: { count: 1, percent: 5 } } }, 'waves.first must be { count: N } or { percent: P }'],
      [{ ...ok, devices: devices(1), waves: { first: { count: 1 }, then: 'later' } }, 'waves.then must be "manual" or "auto"'],
      [{ ...ok, devices: devices(1), waves: { first: { count: 1 }, then: 'auto', maxFailureRate: 1.5 } }, 'waves.maxFailureRate must be a number from 0 to 1'],
      [{ ...ok, devices: devices(1), waves: { first: { count: 1 }, every: 2 } }, 'waves: unknown field "every" (allowed: first, then, maxFailureRate)'],
      [{ ...ok, devices: devices(1), autoActivate: 'yes' }, 'autoActivate must be true or false'],
      [{ ...ok, devices: devices(1), name: 5 }, 'name must be text'],
    ];
    for (const [body, message] of cases) {
      expect({ body, refusal: await refusal(() => parseCampaignRequest(body)) }).toEqual({ body, refusal: { status: 400, message } });
    }
    // Checked when made: a device listed twice, an image that is not a URL.
    expect(await refusal(n.campaigns.create(parseCampaignRequest({ ...ok, devices: [hex(0), hex(0)] })))).toEqual({ status: 400, message: 'a device is listed twice' });
    expect(await refusal(n.campaigns.create(parseCampaignRequest({ url: 'ftp://x/y', digest: DIGEST, devices: devices(1) })))).toEqual({
      status: 400,
      message: 'the image URL must be http:// or https://',
    });
    expect(await refusal(n.campaigns.create(parseCampaignRequest({ ...ok, devices: [idToHex(0x999n)] })))).toEqual({ status: 404, message: 'device 0000000000000999 is not registered' });
    expect(n.store.campaigns()).toEqual([]);
    expect(n.engine.initiates).toEqual([]);
    expect(await refusal(() => n.campaigns.pause(7))).toEqual({ status: 404, message: 'no campaign 7' });
  });
});

/** Writes what version 5 held: a campaign of two devices, one sent and staged. */
function version5(db: SqlDb): void {
  migrate(db, 5);
  db.write(`INSERT INTO devices (id, key_n, key_e, state, created_at, updated_at) VALUES (?, ?, ?, 'joined', 1, 2)`, [hex(0), KEY.n.toString(16), KEY.e.toString(16)]);
  db.write(`INSERT INTO devices (id, key_n, key_e, state, created_at, updated_at) VALUES (?, ?, ?, 'joined', 1, 2)`, [hex(1), KEY.n.toString(16), KEY.e.toString(16)]);
  db.write(`INSERT INTO updates (token, device, url, digest, state, status, created_at, updated_at) VALUES ('t1', ?, ?, ?, 'staged', 0, 3, 4)`, [hex(0), URL0, DIGEST]);
  db.write(`INSERT INTO campaigns (name, url, digest, size, file, auto_activate, created_at, updated_at) VALUES ('fw', ?, ?, NULL, NULL, 0, 3, 4)`, [URL0, DIGEST]);
  db.write(`INSERT INTO campaign_targets (campaign, device, token, error, activate, updated_at) VALUES (1, ?, 't1', NULL, 0, 4)`, [hex(0)]);
  db.write(`INSERT INTO campaign_targets (campaign, device, token, error, activate, updated_at) VALUES (1, ?, NULL, 'device was offline', 0, 4)`, [hex(1)]);
  db.close();
}

/** After the migration: the old campaign is one running wave, the library is empty, and both carry on. */
async function fromVersion5(): Promise<void> {
  const n = node();
  expect(n.registry.schemaVersion()).toBe(6);
  const v = view(n, 1);
  expect({ state: v.state, plan: v.plan, image: v.image, target: v.target, currentWave: v.currentWave, waves: v.waves, failures: v.failures }).toEqual({
    state: 'done',
    plan: null,
    image: null,
    target: { devices: devices(2) },
    currentWave: 0,
    waves: [{ index: 0, size: 2, sent: 1, done: 0, failed: 1 }],
    failures: { send_error: 1 },
  });
  expect(n.campaigns.images()).toEqual([]);
  expect(n.campaigns.retry(1)).toBe(1);
  expect(view(n, 1).state).toBe('running');
  const made = await n.campaigns.create(parseCampaignRequest({ url: URL0, digest: DIGEST, target: { devices: devices(2) }, waves: { first: { count: 1 } } }));
  expect([made.id, made.waves.length]).toEqual([2, 2]);
}

describe('schema 6 on SQLite', () => {
  test('a version-5 database gains the library and the campaign columns; its campaigns carry on', async () => {
    version5(new SqliteDb(path.join(dir, 'c2.db')));
    await fromVersion5();
  });
});

pgDescribe('campaigns on PostgreSQL', () => {
  let url: string;
  beforeEach(() => {
    url = freshPgUrl();
    openRegistry = () => new PgRegistry(url);
  });
  afterAll(() => {
    openRegistry = () => new SqliteRegistry(path.join(dir, 'c2.db'));
    dropPgSchemas();
  });

  test('a version-5 database gains the library and the campaign columns; its campaigns carry on', async () => {
    version5(new PgDb(url));
    await fromVersion5();
  });

  test('two nodes seeing the wave settle at once: the next wave is sent once', twoNodes);
});
