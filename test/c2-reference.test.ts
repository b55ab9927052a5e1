/**
 * Our C2 engine controlling reference (pySRUP) devices, which answer neither an action nor an activate
 * (SRUP-WIRE.md §11; test/data/interop shows it on the wire): the device profile ('srup' / 'reference') in both
 * registries and across the SQLite migration, the engine's behaviour for each profile, the profile inferred from
 * pySRUP's ID response, and the firmware name / version read from ID texts.
 *
 * The pySRUP device here is the recorded one: `pydev` of c2-with-pysrup-devices.json, its key, and the messages
 * it sent in the recorded run, injected exactly as recorded. Our engine runs with the recorded seed, so what it
 * publishes must equal, byte for byte, what the reference accepted in that run.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { parsePrivateKeyPem, parsePublicKeyPem } from '../crypto/keys.js';
import { nodeCrypto } from '../hosts/node/crypto.js';
import { srupClientId } from '../hosts/node/mqtt.js';
import { SqliteRegistry, SCHEMA_VERSION } from '../hosts/node/sqlite-registry.js';
import { C2Engine, C2Error, MemoryRegistry, parseIdentification } from '../modules/c2/index.js';
import type { C2Event, DeviceProfile, Registry, UpdateRecord } from '../modules/c2/index.js';
import { fromHex, toHex, utf8 } from '../modules/srup/bytes.js';
import { decode } from '../modules/srup/codec.js';
import { Status } from '../modules/srup/schema.js';
import { deviceTopic } from '../modules/srup/topics.js';
import { DEV_A, as, deviceMessage, startRig, type Rig } from './support/c2-wire.js';
import { CollectingLog, ManualClock, seededRandom } from './support/fakes.js';
import { MemoryBroker } from './support/memory-broker.js';

// ------------------------------------------------------------------------------------------------ recorded data

const DIR = path.join(__dirname, 'data', 'interop');

interface Recorded {
  from: string;
  to: string;
  topic: string;
  type: string;
  seq: number;
  token: string;
  status?: number;
  action?: number;
  url?: string;
  digest?: string;
  hex: string;
}

interface Conversation {
  ids: Record<string, string>;
  engine: { random: { seededRandom: number } };
  reference: Record<string, { ev: string; [k: string]: unknown }[]>;
  messages: Recorded[];
}

const A = JSON.parse(fs.readFileSync(path.join(DIR, 'c2-with-pysrup-devices.json'), 'utf8')) as Conversation;
const pem = (name: string, kind: 'public' | 'private') => fs.readFileSync(path.join(DIR, 'keys', `${name}.${kind}.pem`), 'utf8');
const idOf = (name: string) => BigInt('0x' + A.ids[name]);
const C2 = idOf('c2');
const PYDEV = idOf('pydev');
const C2_KEY = parsePrivateKeyPem(pem('c2', 'private'));

/** pydev's conversation with our engine, in broker order. */
const PY = A.messages.filter((r) => r.from === 'pydev' || r.to === 'pydev');
const recorded = (i: number, type: string): Recorded => {
  expect(PY[i].type).toBe(type);
  return PY[i];
};
const JOIN_REQUEST = 0;
const JOIN_ACCEPT = 1;
const ACTION = 2;
const TEMPERATURE = 3;
const ID_REQUEST = 4;
const ID_RESPONSE = 5;
const SETPOINT = 6;
const INITIATE = 7;
const UPDATE_SUCCESS = 8;
const ACTIVATE = 9;

/** The text of a recorded ID response (pySRUP's default: two lambda objects where "2.0" was meant). */
function idText(name: string): string {
  const i = A.messages.findIndex((r, k) => r.from === name && r.type === 'data' && A.messages[k - 1].type === 'id_request');
  const m = decode(fromHex(A.messages[i].hex));
  if (m.type !== 'data') throw new Error('not data');
  return Buffer.from(m.fields.data).toString('utf8');
}
const PYDEV_ID_TEXT = idText('pydev');

// ------------------------------------------------------------------------------------------------ the engine with pydev

interface World {
  broker: MemoryBroker;
  registry: MemoryRegistry;
  clock: ManualClock;
  log: CollectingLog;
  events: C2Event[];
  engine: C2Engine;
  settle(): Promise<void>;
  /** Delivers a recorded pydev message, as the broker delivered it in the recorded run. */
  inject(i: number, type: string): Promise<void>;
  /** What our engine published on SRUP/<pydev>, as hex. */
  published(): string[];
}

async function world(o: { profile?: DeviceProfile; autoActivate?: boolean } = {}): Promise<World> {
  const broker = new MemoryBroker();
  const transport = broker.client(srupClientId(C2));
  const registry = new MemoryRegistry();
  const clock = new ManualClock(1_000_000);
  const log = new CollectingLog();
  const events: C2Event[] = [];
  const engine = new C2Engine(
    { transport, registry, crypto: nodeCrypto, random: seededRandom(A.engine.random.seededRandom), clock, log: log.log, serverId: C2, privateKey: C2_KEY },
    { autoActivate: o.autoActivate === true, onEvent: (e) => events.push(e) },
  );
  await engine.start();
  engine.provision(PYDEV, parsePublicKeyPem(pem('pydev', 'public')), o.profile === undefined ? {} : { profile: o.profile });
  const settle = async () => {
    for (let i = 0; i < 3; i++) {
      await broker.settle();
      await engine.idle();
    }
  };
  const w: World = {
    broker,
    registry,
    clock,
    log,
    events,
    engine,
    settle,
    async inject(i, type) {
      const r = recorded(i, type);
      expect(r.from).toBe('pydev');
      broker.inject(r.topic, fromHex(r.hex));
      await settle();
    },
    published: () =>
      broker
        .published(deviceTopic(PYDEV))
        .filter((p) => p.client === transport.clientId)
        .map((p) => toHex(p.payload)),
  };
  await settle();
  return w;
}

/** Our messages so far must be the recorded ones, in order: bytes the reference accepted. */
function expectRecorded(w: World, ...indices: number[]): void {
  expect(w.published()).toEqual(indices.map((i) => PY[i].hex));
}

// ================================================================================================ the recorded device

describe('a reference device, replayed from the recorded pySRUP traffic', () => {
  test('registered as reference: the action resolves with null once the broker took it; nothing waits for an answer', async () => {
    const w = await world({ profile: 'reference' });
    expect(w.engine.device(PYDEV)?.profile).toBe('reference');
    await w.inject(JOIN_REQUEST, 'join_request');
    expectRecorded(w, JOIN_ACCEPT);
    expect(w.engine.device(PYDEV)?.state).toBe('joined');

    const action = w.engine.sendAction(PYDEV, recorded(ACTION, 'action').action as number);
    await w.settle();
    await expect(action).resolves.toBeNull();
    expectRecorded(w, JOIN_ACCEPT, ACTION);
    expect(w.clock.pending).toBe(0);
    // The reference ran the action (and never answered it).
    expect(A.reference.pydev.filter((e) => e.ev === 'on_action').map((e) => e.action_id)).toEqual([7]);
    // The audit log has the action going out and nothing coming back for it.
    expect(w.registry.audit({ device: PYDEV }).map((a) => `${a.direction} ${a.type}`)).toEqual(['in join_request', 'out response', 'out action']);
    expect(w.log.rejections()).toEqual([]);
    w.engine.stop();
  });

  test('an update: initiate, 0x00, activate (automatic), then "activated" when the broker took it; no timer left pending', async () => {
    const w = await world({ profile: 'reference', autoActivate: true });
    await w.inject(JOIN_REQUEST, 'join_request');
    // The same calls as in the recorded run, so that the tokens (and so every byte) are the same.
    const action = w.engine.sendAction(PYDEV, 7);
    await w.settle();
    await w.inject(TEMPERATURE, 'data');
    const id = w.engine.requestId(PYDEV);
    await w.settle();
    await w.inject(ID_RESPONSE, 'data');
    await w.engine.sendData(PYDEV, 'setpoint', 'int32', 42);
    const init = recorded(INITIATE, 'initiate');
    const { token, response } = w.engine.startUpdate(PYDEV, init.url as string, init.digest as string);
    expect(token).toBe(init.token);
    await w.settle();
    expect(w.registry.update(token)?.state).toBe('initiated');
    expect(w.clock.pending).toBe(1); // the initiate waits for the download result

    await w.inject(UPDATE_SUCCESS, 'response');
    await expect(action).resolves.toBeNull();
    await expect(id).resolves.toBe(PYDEV_ID_TEXT);
    await expect(response).resolves.toMatchObject({ token, state: 'staged', status: Status.UPDATE_SUCCESS });
    expectRecorded(w, JOIN_ACCEPT, ACTION, ID_REQUEST, SETPOINT, INITIATE, ACTIVATE);

    const u = w.registry.update(token) as UpdateRecord;
    expect({ state: u.state, status: u.status, failure: u.failure }).toEqual({ state: 'activated', status: null, failure: null });
    expect(w.clock.pending).toBe(0);
    await expect(w.engine.awaitUpdate(token)).resolves.toMatchObject({ token, state: 'activated' });
    expect(w.events.filter((e): e is Extract<C2Event, { type: 'update' }> => e.type === 'update').map((e) => e.update.state)).toEqual([
      'initiated',
      'staged',
      'activating',
      'activated',
    ]);
    expect(w.log.events('auto_activate_failed')).toEqual([]);
    expect(w.log.events('update_timeout')).toEqual([]);
    expect(w.log.events('update_activated').map((l) => l.detail)).toEqual([{ token, confirmation: 'none expected' }]);
    // Nothing ever times out: a day later the update is still 'activated'.
    w.clock.advance(24 * 3600 * 1000);
    expect(w.registry.update(token)?.state).toBe('activated');
    // The reference installed the image on that activate.
    expect(A.reference.pydev.filter((e) => e.ev === 'on_update').map((e) => e.size)).toEqual([5000]);
    expect(w.log.rejections()).toEqual([]);
    w.engine.stop();
  });

  test("registered without a profile: pySRUP's ID response makes it a reference device (logged), with name pySRUP and no version", async () => {
    const w = await world();
    expect(w.engine.device(PYDEV)?.profile).toBe('srup');
    await w.inject(JOIN_REQUEST, 'join_request');
    const id = w.engine.requestId(PYDEV);
    await w.settle();
    await w.inject(ID_RESPONSE, 'data');
    await expect(id).resolves.toBe(PYDEV_ID_TEXT);
    expect(PYDEV_ID_TEXT).toMatch(/^pySRUP version <function SRUP\.__init__\.<locals>\.<lambda> at 0x[0-9a-f]+>\.<function /);

    const d = w.engine.device(PYDEV);
    expect([d?.profile, d?.identification, d?.firmwareName, d?.firmwareVersion]).toEqual(['reference', PYDEV_ID_TEXT, 'pySRUP', null]);
    expect(w.log.events('profile_inferred')).toEqual([
      { level: 'info', event: 'profile_inferred', detail: { device: '07a1c3e5f2d94b68', profile: 'reference', was: 'srup' } },
    ]);
    expect(w.events.filter((e) => e.type === 'profile' || e.type === 'identification')).toEqual([
      { type: 'identification', device: PYDEV, text: PYDEV_ID_TEXT, firmwareName: 'pySRUP', firmwareVersion: null },
      { type: 'profile', device: PYDEV, profile: 'reference', inferred: true },
    ]);

    // From now on an action does not wait for an answer.
    const action = w.engine.sendAction(PYDEV, 7);
    await w.settle();
    await expect(action).resolves.toBeNull();
    expect(w.clock.pending).toBe(0);

    // A second ID response changes nothing more (and logs nothing more).
    const again = w.engine.requestId(PYDEV);
    await w.settle();
    const m = decode(fromHex(PY[ID_RESPONSE].hex));
    if (m.type !== 'data') throw new Error('not data');
    w.broker.inject(deviceTopic(PYDEV), deviceMessage(parsePrivateKeyPem(pem('pydev', 'private')), 'data', PYDEV, 100n, 'again', m.fields));
    await w.settle();
    await expect(again).resolves.toBe(PYDEV_ID_TEXT);
    expect(w.log.events('profile_inferred')).toHaveLength(1);
    expect(w.events.filter((e) => e.type === 'profile')).toHaveLength(1);
    w.engine.stop();
  });

  test('every recorded pySRUP ID text reads as name pySRUP, no version', () => {
    for (const name of ['pydev', 'pyhdev', 'pyodev']) {
      expect(idText(name).startsWith('pySRUP version <function ')).toBe(true);
      expect(parseIdentification(idText(name))).toEqual({ name: 'pySRUP', version: null });
    }
  });
});

// ================================================================================================ engine rules per profile

const DIGEST = '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08';
const URL = 'https://updates.example/fw/sensor-1.3.0.bin';

/** The C2Error reason `fn` throws with. */
function thrown(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return e instanceof C2Error ? e.reason : `not a C2Error: ${String(e)}`;
  }
  return 'nothing thrown';
}

const joined = (profile: DeviceProfile) => (r: Rig) => {
  r.provision(DEV_A, 'joined');
  r.registry.updateDevice(DEV_A, { profile }, r.clock.now());
};

/** Initiates an update on DEV_A and answers it 0x00, as the device would; returns the token. */
async function staged(r: Rig, seq: bigint): Promise<string> {
  const { token, response } = r.engine.startUpdate(DEV_A, URL, DIGEST);
  await r.settle();
  await r.inject(deviceTopic(DEV_A), deviceMessage(r.keys.a, 'response', DEV_A, seq, token, { status: Status.UPDATE_SUCCESS }));
  await expect(response).resolves.toMatchObject({ state: 'staged' });
  return token;
}

describe('engine: reference devices', () => {
  test('the activate stays "activating" until the broker takes it, with no timer; then "activated"', async () => {
    const r = await startRig({}, joined('reference'));
    const token = await staged(r, 1n);
    r.transport.disconnect();
    const result = r.engine.activateUpdate(token);
    await r.settle();
    expect(r.registry.update(token)?.state).toBe('activating');
    expect(r.clock.pending).toBe(0);
    r.transport.reconnect();
    await r.settle();
    await expect(result).resolves.toMatchObject({ token, state: 'activated', status: null, failure: null });
    expect(r.sentTo(DEV_A).map((m) => m.type)).toEqual(['initiate', 'activate']);
    expect(Buffer.from(as(r.sentTo(DEV_A)[1], 'activate').token).toString()).toBe(token);
    expect(r.clock.pending).toBe(0);
    r.engine.stop();
  });

  test('an activate the broker refuses puts the update back to "staged" and rejects publish_failed', async () => {
    const r = await startRig({}, joined('reference'));
    const token = await staged(r, 1n);
    await r.transport.close();
    await expect(r.engine.activateUpdate(token)).rejects.toMatchObject({ reason: 'publish_failed' });
    expect(r.registry.update(token)?.state).toBe('staged');
    expect(r.clock.pending).toBe(0);
    r.engine.stop();
  });

  test('a confirmation that comes after all (0x10) still moves "activated" to "confirmed"', async () => {
    const r = await startRig({}, joined('reference'));
    const token = await staged(r, 1n);
    await expect(r.engine.activateUpdate(token)).resolves.toMatchObject({ state: 'activated' });
    await r.inject(deviceTopic(DEV_A), deviceMessage(r.keys.a, 'response', DEV_A, 2n, token, { status: Status.ACTIVATE_SUCCESS }));
    expect(r.registry.update(token)).toMatchObject({ state: 'confirmed', status: Status.ACTIVATE_SUCCESS });
    expect(r.log.events('unmatched_response')).toEqual([]);
    r.engine.stop();
  });

  test('after a restart, an activate still waiting for its PUBACK goes back to "staged" (to be sent again)', async () => {
    const r = await startRig({}, joined('reference'));
    const token = await staged(r, 1n);
    r.transport.disconnect();
    void r.engine.activateUpdate(token).catch(() => undefined);
    await r.settle();
    r.engine.stop();
    expect(r.registry.update(token)?.state).toBe('activating');

    const log = new CollectingLog();
    const again = new C2Engine(
      { transport: r.broker.client('SRUP Client: c2 again'), registry: r.registry, crypto: nodeCrypto, random: seededRandom(9), clock: r.clock, log: log.log, serverId: r.engine.serverId, privateKey: r.keys.server },
      {},
    );
    await again.start();
    expect(r.registry.update(token)?.state).toBe('staged');
    expect(log.events('activate_unacknowledged').map((l) => l.detail)).toEqual([{ token }]);
    await r.broker.settle();
    await expect(again.activateUpdate(token)).resolves.toMatchObject({ state: 'activated' });
    expect(r.clock.pending).toBe(0);
    again.stop();
  });

  test('an action to a reference device that the broker refuses rejects publish_failed', async () => {
    const r = await startRig({}, joined('reference'));
    await r.transport.close();
    await expect(r.engine.sendAction(DEV_A, 1)).rejects.toMatchObject({ reason: 'publish_failed' });
    await expect(r.engine.sendAction(DEV_A, 256)).rejects.toMatchObject({ reason: 'bad_argument' });
    r.engine.stop();
  });
});

describe('engine: srup devices are unchanged', () => {
  test('an action waits for the answer (0x20); an activate waits for the confirmation (0x10), with its timer', async () => {
    const r = await startRig({}, joined('srup'));
    const action = r.engine.sendAction(DEV_A, 3);
    await r.settle();
    expect(r.clock.pending).toBe(1);
    const sent = as(r.sentTo(DEV_A)[0], 'action');
    await r.inject(deviceTopic(DEV_A), deviceMessage(r.keys.a, 'response', DEV_A, 1n, sent.token, { status: Status.ACTION_SUCCESS }));
    await expect(action).resolves.toBe(Status.ACTION_SUCCESS);

    const token = await staged(r, 2n);
    const result = r.engine.activateUpdate(token);
    await r.settle();
    expect(r.registry.update(token)?.state).toBe('activating');
    expect(r.clock.pending).toBe(1);
    await r.inject(deviceTopic(DEV_A), deviceMessage(r.keys.a, 'response', DEV_A, 3n, token, { status: Status.ACTIVATE_SUCCESS }));
    await expect(result).resolves.toMatchObject({ state: 'confirmed', status: Status.ACTIVATE_SUCCESS });
    expect(r.clock.pending).toBe(0);
    r.engine.stop();
  });

  test('without a confirmation the activate times out as before', async () => {
    const r = await startRig({ activateTimeoutMs: 1000 }, joined('srup'));
    const token = await staged(r, 1n);
    const result = r.engine.activateUpdate(token).catch((e: unknown) => e);
    await r.settle();
    r.clock.advance(1000);
    expect(await result).toBeInstanceOf(C2Error);
    expect(r.registry.update(token)).toMatchObject({ state: 'failed', failure: 'activate_timeout' });
    r.engine.stop();
  });

  test("our agent's ID text does not change the profile", async () => {
    const r = await startRig({}, joined('srup'));
    const id = r.engine.requestId(DEV_A);
    await r.settle();
    const req = as(r.sentTo(DEV_A)[0], 'id_request');
    await r.inject(
      deviceTopic(DEV_A),
      deviceMessage(r.keys.a, 'data', DEV_A, 1n, req.token, { dataId: utf8('IDENTIFICATION_RESPONSE'), data: utf8('srup-esp32 1.4.2') }),
    );
    await expect(id).resolves.toBe('srup-esp32 1.4.2');
    expect(r.registry.device(DEV_A)).toMatchObject({ profile: 'srup', firmwareName: 'srup-esp32', firmwareVersion: '1.4.2' });
    expect(r.log.events('profile_inferred')).toEqual([]);
    r.engine.stop();
  });
});

describe('engine: setting the profile', () => {
  test('provision sets it, re-provisioning keeps it unless given, setProfile changes it (logged, one event)', async () => {
    const r = await startRig();
    const key = r.keys.a.publicKey;
    expect(r.engine.provision(DEV_A, key).profile).toBe('srup');
    expect(r.engine.provision(DEV_A, key, { profile: 'reference' }).profile).toBe('reference');
    expect(r.engine.provision(DEV_A, key).profile).toBe('reference');
    expect(r.engine.provision(DEV_A, key, { profile: 'srup' }).profile).toBe('srup');
    expect(thrown(() => r.engine.provision(DEV_A, key, { profile: 'pysrup' as DeviceProfile }))).toBe('bad_argument');
    expect(r.engine.device(DEV_A)?.profile).toBe('srup');

    r.registry.updateDevice(DEV_A, { state: 'joined' }, r.clock.now());
    expect(r.engine.setProfile(DEV_A, 'reference')).toMatchObject({ profile: 'reference', state: 'joined' });
    expect(r.engine.setProfile(DEV_A, 'reference').profile).toBe('reference');
    expect(r.log.events('profile_set').map((l) => l.detail)).toEqual([{ device: '0123456789abcdef', profile: 'reference', was: 'srup' }]);
    expect(r.eventsOf('profile')).toEqual([{ type: 'profile', device: DEV_A, profile: 'reference', inferred: false }]);
    expect(thrown(() => r.engine.setProfile(0x42n, 'srup'))).toBe('unknown_device');
    expect(thrown(() => r.engine.setProfile(DEV_A, 'x' as DeviceProfile))).toBe('bad_argument');
    r.engine.stop();
  });
});

// ================================================================================================ parseIdentification

describe('parseIdentification', () => {
  test.each([
    [PYDEV_ID_TEXT, 'pySRUP', null],
    ['pySRUP version <function <lambda> at 0x10a2b3c40>.<function <lambda> at 0x10a2b3ce0>', 'pySRUP', null],
    ['pySRUP version 2.0', 'pySRUP', '2.0'],
    ['sensor 1.2.0', 'sensor', '1.2.0'],
    ['srup agent v0.1.0-rc1', 'srup agent', 'v0.1.0-rc1'],
    ['srup-esp32 1.4.2+build.7', 'srup-esp32', '1.4.2+build.7'],
    ['  sensor   2_0  ', 'sensor', '2_0'],
    ['firmware 0x7ffb3809f920>', 'firmware 0x7ffb3809f920>', null],
    ['thing version <unknown>', 'thing version <unknown>', null],
    ['agent build-7', 'agent build-7', null],
    ['agent v', 'agent v', null],
    ['agent 1.0!', 'agent 1.0!', null],
    ['mystery', 'mystery', null],
    ['1.0', '1.0', null],
    ['', null, null],
    ['   ', null, null],
  ])('%j -> name %j, version %j', (text, name, version) => {
    expect(parseIdentification(text)).toEqual({ name, version });
  });
});

// ================================================================================================ registries

const tmpDirs: string[] = [];
afterAll(() => {
  for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
});
function tmpDb(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'c2-reference-'));
  tmpDirs.push(d);
  return path.join(d, 'c2.db');
}

describe.each([
  ['MemoryRegistry', (): Registry => new MemoryRegistry()],
  ['SqliteRegistry', (): Registry => new SqliteRegistry(tmpDb())],
])('%s: the device profile', (_name, make) => {
  const key = parsePublicKeyPem(pem('pydev', 'public'));
  const other = parsePublicKeyPem(pem('pyhdev', 'public'));
  const close = (r: Registry) => (r instanceof SqliteRegistry ? r.close() : undefined);

  test("a new device is 'srup' unless registered as 'reference'", () => {
    const r = make();
    expect(r.addDevice(1n, key, 10).profile).toBe('srup');
    expect(r.addDevice(2n, key, 10, 'reference').profile).toBe('reference');
    expect([r.device(1n)?.profile, r.device(2n)?.profile]).toEqual(['srup', 'reference']);
    close(r);
  });

  test('registering again keeps the profile unless one is given; updateDevice changes only it', () => {
    const r = make();
    r.addDevice(PYDEV, key, 10, 'reference');
    r.updateDevice(PYDEV, { state: 'joined', identification: 'x' }, 11);
    expect(r.addDevice(PYDEV, other, 12)).toMatchObject({ profile: 'reference', state: 'provisioned', identification: 'x', createdAt: 10 });
    expect(r.addDevice(PYDEV, other, 13, 'srup').profile).toBe('srup');
    const d = r.updateDevice(PYDEV, { profile: 'reference' }, 14);
    expect({ ...d, publicKey: null }).toEqual({ ...r.device(PYDEV), publicKey: null });
    expect(d).toMatchObject({ profile: 'reference', state: 'provisioned', identification: 'x', updatedAt: 14 });
    expect(r.devices().map((x) => x.profile)).toEqual(['reference']);
    close(r);
  });
});

// ================================================================================================ SQLite migration

/** The schema of version 1 (the first release of the C2 registry), exactly as that version created it. */
const SCHEMA_V1 = `
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
  CREATE TABLE sequences (peer TEXT PRIMARY KEY, last_sent TEXT NOT NULL, last_accepted TEXT NOT NULL);
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
  CREATE TABLE device_settings (id TEXT PRIMARY KEY, palette TEXT NOT NULL DEFAULT 'default', label TEXT);
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
  CREATE TABLE sessions (id TEXT PRIMARY KEY, csrf TEXT NOT NULL, created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL);
  CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
`;

describe('SqliteRegistry: migration from schema version 1', () => {
  test('a version-1 database gains the profile column (its devices are srup) and the data history, everything else is kept', () => {
    const file = tmpDb();
    const key = parsePublicKeyPem(pem('pydev', 'public'));
    const old = new Database(file);
    old.exec(SCHEMA_V1);
    old.pragma('user_version = 1');
    old.prepare(
      `INSERT INTO devices (id, key_n, key_e, state, join_kind, identification, firmware_name, firmware_version,
       last_seen, last_status, last_status_token, last_status_at, created_at, updated_at)
       VALUES (?, ?, ?, 'joined', 'simple', ?, 'pySRUP', NULL, 500, 0, ?, 501, 100, 502)`,
    ).run('07a1c3e5f2d94b68', key.n.toString(16), key.e.toString(16), PYDEV_ID_TEXT, Buffer.from('tok'));
    old.prepare(`INSERT INTO updates (token, device, url, digest, state, status, failure, created_at, updated_at)
       VALUES ('t1', '07a1c3e5f2d94b68', 'http://x/fw.bin', ?, 'activating', 0, NULL, 200, 201)`).run(DIGEST);
    old.prepare(`INSERT INTO sequences VALUES ('07a1c3e5f2d94b68', '0000000000000010', '000000000000000f')`).run();
    old.close();

    expect(SCHEMA_VERSION).toBe(6);
    const reg = new SqliteRegistry(file);
    expect(reg.schemaVersion()).toBe(6);
    expect(reg.readings(PYDEV)).toEqual([]);
    const d = reg.device(PYDEV);
    expect({ ...d, publicKey: null }).toEqual({
      id: PYDEV,
      publicKey: null,
      state: 'joined',
      profile: 'srup',
      joinKind: 'simple',
      joinToken: null,
      joinSecret: null,
      observerId: null,
      observationToken: null,
      lastSeen: 500,
      identification: PYDEV_ID_TEXT,
      firmwareName: 'pySRUP',
      firmwareVersion: null,
      lastResponse: { status: 0, token: Uint8Array.from(Buffer.from('tok')), at: 501 },
      createdAt: 100,
      updatedAt: 502,
    });
    expect(d?.publicKey.n).toBe(key.n);
    expect(reg.update('t1')).toMatchObject({ state: 'activating', status: 0, createdAt: 200 });
    expect(reg.sequence(PYDEV)).toEqual({ lastSent: 16n, lastAccepted: 15n });
    reg.updateDevice(PYDEV, { profile: 'reference' }, 600);
    reg.close();

    // Opened again: no second migration, the profile is kept.
    const again = new SqliteRegistry(file);
    expect(again.schemaVersion()).toBe(6);
    expect(again.device(PYDEV)?.profile).toBe('reference');
    again.close();
    const raw = new Database(file, { readonly: true });
    expect((raw.prepare('PRAGMA table_info(devices)').all() as { name: string }[]).map((c) => c.name)).toContain('profile');
    // The column refuses anything but the two profiles.
    raw.close();
    const rw = new Database(file);
    expect(() => rw.prepare(`UPDATE devices SET profile = 'other'`).run()).toThrow(/CHECK constraint/);
    rw.close();
  });

  test('a database from a newer version is still refused', () => {
    const file = tmpDb();
    const db = new Database(file);
    db.pragma('user_version = 7');
    db.close();
    expect(() => new SqliteRegistry(file)).toThrow(/newer version \(schema 7; this program knows 6\)/);
  });
});
