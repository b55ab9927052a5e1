/**
 * The device agent against the project's C2 engine (modules/c2), both over one MemoryBroker: every flow the
 * device takes part in, end to end, with nothing hand-built in between.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parsePrivateKeyPem, parsePublicKeyPem } from '../crypto/keys.js';
import { pureCrypto } from '../crypto/pure.js';
import type { RsaPrivateKey } from '../crypto/types.js';
import { Agent } from '../modules/agent/agent.js';
import type { AgentEvent, AgentOptions } from '../modules/agent/agent.js';
import { MemoryKeyStore, MemorySequenceStore } from '../modules/agent/memory.js';
import { C2Engine, MemoryRegistry } from '../modules/c2/index.js';
import type { C2Event } from '../modules/c2/index.js';
import { toHex } from '../modules/srup/bytes.js';
import { Status } from '../modules/srup/schema.js';
import { MemoryBroker } from './support/memory-broker.js';
import { CollectingLog, FakeDownloader, FakeUpdater, ManualClock, RecordingPresenter, seededRandom } from './support/fakes.js';

const KEYS = path.join(__dirname, 'data', 'srup-vectors', 'keys');
const pem = (f: string) => fs.readFileSync(path.join(KEYS, f), 'utf8');
const serverPriv = parsePrivateKeyPem(pem('signer-1.private.pem'));
const serverPub = parsePublicKeyPem(pem('signer-1.public.pem'));
const devicePriv = parsePrivateKeyPem(pem('recipient-1.private.pem'));
const observerPriv = parsePrivateKeyPem(pem('signer-2.private.pem'));

const SERVER = 0x5e12d3c4b5a69788n;
const DEVICE = 0x04a0f1b2c3d4e5f6n;
const OBSERVER = 0x7a6b5c4d3e2f1a0bn;

interface Device {
  id: bigint;
  agent: Agent;
  keys: MemoryKeyStore;
  seqs: MemorySequenceStore;
  presenter: RecordingPresenter;
  downloader: FakeDownloader;
  updater: FakeUpdater;
  events: AgentEvent[];
  logs: CollectingLog;
  options: Partial<AgentOptions>;
  priv: RsaPrivateKey;
}

function startDevice(broker: MemoryBroker, d: Omit<Device, 'agent'>, seed: number): Device {
  const agent = new Agent(
    {
      transport: broker.client(`SRUP Client: ${d.id.toString(16)}`),
      keys: d.keys,
      sequences: d.seqs,
      clock: new ManualClock(),
      crypto: pureCrypto,
      random: seededRandom(seed),
      presenter: d.presenter,
      downloader: d.downloader,
      updater: d.updater,
      log: d.logs.log,
    },
    { firmwareName: 'srup-esp32', firmwareVersion: '1.4.2', onEvent: (e) => d.events.push(e), ...d.options },
  );
  agent.start();
  return { ...d, agent };
}

function newDevice(broker: MemoryBroker, id: bigint, priv: RsaPrivateKey, options: Partial<AgentOptions> = {}): Device {
  return startDevice(
    broker,
    {
      id,
      priv,
      keys: new MemoryKeyStore({ deviceId: id, privateKey: priv, serverId: SERVER, peers: [[SERVER, serverPub]] }),
      seqs: new MemorySequenceStore(),
      presenter: new RecordingPresenter(),
      downloader: new FakeDownloader(),
      updater: new FakeUpdater(Uint8Array.of(1)),
      events: [],
      logs: new CollectingLog(),
      options,
    },
    Number(id & 0xffffn),
  );
}

async function world() {
  const broker = new MemoryBroker();
  const c2Events: C2Event[] = [];
  const c2Log = new CollectingLog();
  const engine = new C2Engine(
    {
      transport: broker.client('SRUP Client: c2'),
      registry: new MemoryRegistry(),
      crypto: pureCrypto,
      random: seededRandom(11),
      clock: new ManualClock(1_000_000),
      log: c2Log.log,
      serverId: SERVER,
      privateKey: serverPriv,
    },
    { onEvent: (e) => c2Events.push(e) },
  );
  await engine.start();
  engine.provision(DEVICE, devicePriv.publicKey);
  engine.provision(OBSERVER, observerPriv.publicKey);
  const settle = async () => {
    for (let i = 0; i < 3; i++) {
      await broker.settle();
      await engine.idle();
    }
  };
  return { broker, engine, c2Events, c2Log, settle };
}

/** Waits for a promise while letting the broker deliver. */
async function during<T>(w: { settle: () => Promise<void> }, p: Promise<T>): Promise<T> {
  let done = false;
  const q = p.finally(() => (done = true));
  for (let i = 0; i < 50 && !done; i++) await w.settle();
  return q;
}

test('human-moderated join, action, ID request, data both ways', async () => {
  const w = await world();
  const got: [string, number[]][] = [];
  const dev = newDevice(w.broker, DEVICE, devicePriv, {
    actions: { 3: () => true },
    onData: (id, b) => got.push([id, [...b]]),
  });
  await w.settle();

  const joined = dev.agent.join('human');
  await w.settle();
  const challenge = w.c2Events.find((e) => e.type === 'challenge');
  expect(challenge).toBeDefined();
  const secret = (challenge as Extract<C2Event, { type: 'challenge' }>).challenge.secret;
  // The person compares what the device shows with what the console shows.
  expect(Buffer.from(dev.presenter.current as Uint8Array).toString('ascii')).toBe(secret);
  await w.engine.approveJoin(DEVICE);
  await expect(during(w, joined)).resolves.toBe('joined');
  expect(dev.presenter.current).toBeNull();
  expect(dev.keys.serverId()).toBe(SERVER);
  expect(w.engine.device(DEVICE)?.state).toBe('joined');

  await expect(during(w, w.engine.sendAction(DEVICE, 3))).resolves.toBe(Status.ACTION_SUCCESS);
  await expect(during(w, w.engine.sendAction(DEVICE, 4))).resolves.toBe(Status.ACTION_UNKNOWN);
  await expect(during(w, w.engine.requestId(DEVICE))).resolves.toBe('srup-esp32 1.4.2');

  await w.engine.sendData(DEVICE, 'setpoint', 'int32', 21);
  await w.settle();
  expect(got).toEqual([['setpoint', [21, 0, 0, 0]]]);
  await dev.agent.sendData('temp', 'int16', -300);
  await w.settle();
  const data = w.c2Events.filter((e) => e.type === 'data') as Extract<C2Event, { type: 'data' }>[];
  expect(data.map((e) => [e.device, e.dataId, [...e.data]])).toEqual([[DEVICE, 'temp', [0xd4, 0xfe]]]);

  expect(dev.logs.rejections()).toEqual([]);
  expect(w.c2Events.filter((e) => e.type === 'rejected')).toEqual([]);
});

test('update: initiate, activate, restart, confirmation', async () => {
  const w = await world();
  let dev = newDevice(w.broker, DEVICE, devicePriv);
  await w.settle();
  await expect(during(w, dev.agent.join())).resolves.toBe('joined');

  const image = Uint8Array.from({ length: 3000 }, (_, i) => (i * 7) & 0xff);
  dev.downloader.serve('http://updates.test/fw.bin', image, { chunkSize: 512 });
  const staged = await during(w, w.engine.initiateUpdate(DEVICE, 'http://updates.test/fw.bin', toHex(pureCrypto.sha256(image))));
  expect(staged.state).toBe('staged');
  expect(dev.seqs.pendingUpdate()?.state).toBe('staged');

  const settled = w.engine.activateUpdate(DEVICE);
  await w.settle();
  expect(dev.updater.restartRequested).toBe(true);
  await dev.agent.close();
  dev.updater.reboot();
  dev = startDevice(w.broker, dev, 99);
  const confirmed = await during(w, settled);
  expect(confirmed.state).toBe('confirmed');
  expect(dev.updater.running).toEqual(image);
  expect(dev.seqs.pendingUpdate()).toBeNull();
});

test('update with a wrong digest is reported and never activated', async () => {
  const w = await world();
  const dev = newDevice(w.broker, DEVICE, devicePriv);
  await w.settle();
  await expect(during(w, dev.agent.join())).resolves.toBe('joined');
  dev.downloader.serve('http://updates.test/fw.bin', Uint8Array.of(1, 2, 3));
  const rec = await during(w, w.engine.initiateUpdate(DEVICE, 'http://updates.test/fw.bin', '00'.repeat(32)));
  expect(rec.state).toBe('failed');
  expect(dev.updater.calls).not.toContain('activate');
});

test('observed join: the observer checks what the joining device shows', async () => {
  const w = await world();
  let joiningDevice: Device | null = null;
  const observer = newDevice(w.broker, OBSERVER, observerPriv, {
    // The observer "sees" the joining device's display (a camera, a person typing it in...).
    observe: async (id) => (id === DEVICE && joiningDevice !== null ? joiningDevice.presenter.current : null),
  });
  await w.settle();
  await expect(during(w, observer.agent.join())).resolves.toBe('joined');

  joiningDevice = newDevice(w.broker, DEVICE, devicePriv);
  await w.settle();
  await expect(during(w, joiningDevice.agent.join('observed', OBSERVER))).resolves.toBe('joined');
  expect(observer.events).toContainEqual({ type: 'observation', server: SERVER, joiningDevice: DEVICE, status: 0x60 });
  expect(w.engine.device(DEVICE)?.state).toBe('joined');
  expect(joiningDevice.presenter.current).toBeNull();
});

test('terminate and deregister from the console; resign from the device', async () => {
  const w = await world();
  const dev = newDevice(w.broker, DEVICE, devicePriv);
  await w.settle();
  await expect(during(w, dev.agent.join())).resolves.toBe('joined');
  await w.engine.terminate(DEVICE);
  await w.settle();
  expect(dev.keys.serverId()).toBeNull();

  await expect(during(w, dev.agent.join(undefined, undefined, SERVER))).resolves.toBe('joined');
  await dev.agent.resign();
  await w.settle();
  expect(dev.keys.serverId()).toBeNull();
  expect(dev.keys.peerKey(SERVER)).not.toBeNull();
  expect(w.engine.device(DEVICE)?.state).not.toBe('joined');

  await expect(during(w, dev.agent.join(undefined, undefined, SERVER))).resolves.toBe('joined');
  await w.engine.deregister(DEVICE);
  await w.settle();
  expect(dev.keys.serverId()).toBeNull();
  expect(dev.keys.peerKey(SERVER)).toBeNull();
  expect(dev.logs.rejections()).toEqual([]);
});
