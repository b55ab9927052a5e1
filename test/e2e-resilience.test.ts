/**
 * What the real world does to a SRUP system, over a real Mosquitto: a device offline while commands are sent,
 * the broker restarted in the middle of an update, downloads cut off or with the wrong digest, forged and
 * replayed messages on the wire, and many requests in flight to one device at once.
 */
import { createHash, randomBytes as nodeRandomBytes } from 'node:crypto';
import { generateRsaKeyPair, nodeCrypto } from '../hosts/node/crypto.js';
import { encode } from '../modules/srup/codec.js';
import { toHex, utf8 } from '../modules/srup/bytes.js';
import { encodeData } from '../modules/srup/data.js';
import type { Message, MessageOf } from '../modules/srup/schema.js';
import { Status } from '../modules/srup/schema.js';
import { sign } from '../modules/srup/session.js';
import { deviceTopic } from '../modules/srup/topics.js';
import { E2EWorld, LocalDevice, RawClient, until, type DeviceDir } from './support/e2e-world.js';

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Responses (and ID answers) a device published, counted per token. */
function answersPerToken(raw: RawClient, device: bigint): Map<string, number> {
  const counts = new Map<string, number>();
  for (const m of raw.from(device, deviceTopic(device))) {
    if (m.type !== 'response' && m.type !== 'data') continue;
    const k = toHex(m.token);
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  return counts;
}

describe.each([
  ['plain MQTT', false],
  ['MQTT over TLS', true],
])('resilience end to end over %s', (_label, tls) => {
  let w: E2EWorld;
  let raw: RawClient;
  const other = generateRsaKeyPair(2048);
  const OTHER_SERVER = 0x0badc0de0badc0den;
  const dirs: Record<string, DeviceDir> = {};
  const dev: Record<string, LocalDevice> = {};
  const actionCalls = new Map<string, number[]>();
  const dataSeen = new Map<string, string[]>();

  const options = (name: string) => {
    actionCalls.set(name, []);
    dataSeen.set(name, []);
    const handler = (id: number) => {
      actionCalls.get(name)!.push(id);
      return true;
    };
    const actions = new Map<number, (id: number) => boolean>();
    for (let i = 0; i < 256; i++) actions.set(i, handler);
    return { actions, onData: (dataId: string) => dataSeen.get(name)!.push(dataId) };
  };

  beforeAll(async () => {
    w = await E2EWorld.start({ tls, engine: { requestTimeoutMs: 60_000 } });
    raw = await w.raw('wire');
    for (const name of ['a', 'b', 'f']) {
      dirs[name] = w.newDevice(name, name === 'f' ? { peers: new Map([[OTHER_SERVER, other.publicKey]]) } : {});
      dev[name] = await w.startAgent(dirs[name], options(name));
      await raw.watch(deviceTopic(dirs[name].id));
      await expect(dev[name].agent.join('simple')).resolves.toBe('joined');
    }
  });
  afterAll(async () => {
    await w?.dispose();
  });

  test('a device offline while commands are sent receives each exactly once when it comes back', async () => {
    const a = dev.a;
    const id = dirs.a.id;
    await a.shutdown();
    const seenBefore = raw.from(w.serverId, deviceTopic(id)).length;
    const actions = Array.from({ length: 10 }, (_, i) => w.engine.sendAction(id, 100 + i));
    const ids = Array.from({ length: 5 }, () => w.engine.requestId(id));
    for (let i = 0; i < 5; i++) await w.engine.sendData(id, `offline-${i}`, 'uint8', i);
    // All 20 commands are at the broker (the wire watcher saw them) while the device is away.
    await until('the commands at the broker', () => raw.from(w.serverId, deviceTopic(id)).length - seenBefore === 20);
    expect(actionCalls.get('a')).toEqual([]);

    await a.boot();
    await expect(Promise.all(actions)).resolves.toEqual(new Array(10).fill(Status.ACTION_SUCCESS));
    await expect(Promise.all(ids)).resolves.toEqual(new Array(5).fill('e2e-fw 1.2.3'));
    await until('the data', () => dataSeen.get('a')!.length === 5);
    // One more round trip: everything the device will ever send about the burst has been sent before its answer.
    await expect(w.engine.requestId(id)).resolves.toBe('e2e-fw 1.2.3');
    await until('the last answer on the wire', () => [...answersPerToken(raw, id).values()].length >= 16);

    expect([...actionCalls.get('a')!].sort()).toEqual(Array.from({ length: 10 }, (_, i) => 100 + i));
    expect(dataSeen.get('a')).toEqual(['offline-0', 'offline-1', 'offline-2', 'offline-3', 'offline-4']);
    for (const n of answersPerToken(raw, id).values()) expect(n).toBe(1);
  });

  test('the broker restarted during an update download: the update completes and is confirmed', async () => {
    const image = new Uint8Array(nodeRandomBytes(256 * 1024));
    w.http.serve('/fw-slow.bin', image, { chunk: 16 * 1024, delayMs: 60 });
    const id = dirs.a.id;
    const staged = w.engine.initiateUpdate(id, w.http.url('/fw-slow.bin'), sha256(image));
    await until('the download started', () => w.http.requests.some((r) => r.path === '/fw-slow.bin'));
    await w.broker.restart();
    const s = await staged;
    expect([s.state, s.status]).toEqual(['staged', Status.UPDATE_SUCCESS]);
    expect(dev.a.eventsOf('disconnected').length).toBeGreaterThan(0);

    const confirmed = w.engine.activateUpdate(s.token);
    await until('the device asks to restart', () => dev.a.restartRequested);
    await dev.a.reboot();
    const c = await confirmed;
    expect([c.state, c.status]).toEqual(['confirmed', Status.ACTIVATE_SUCCESS]);
  });

  test('a download cut off half way: 0xFE, nothing staged, the update can never be activated', async () => {
    const image = new Uint8Array(nodeRandomBytes(200_000));
    w.http.serve('/fw-cut.bin', image, { cutAfter: 100_000 });
    const b = dev.b;
    const before = b.updater().otadata();
    const r = await w.engine.initiateUpdate(dirs.b.id, w.http.url('/fw-cut.bin'), sha256(image));
    expect([r.state, r.status]).toEqual(['failed', Status.UPDATE_FAIL_FILE]);
    expect(b.updater().otadata()).toEqual({ ...before, ready: null });
    expect(b.host.sequences.pendingUpdate()).toBeNull();
    await expect(w.engine.activateUpdate(r.token)).rejects.toMatchObject({ reason: 'bad_update_state' });
    expect(b.restartRequested).toBe(false);
  });

  test('a digest mismatch: 0xFF, nothing staged, never activated', async () => {
    const image = new Uint8Array(nodeRandomBytes(100_000));
    w.http.serve('/fw-wrong.bin', image);
    const b = dev.b;
    const before = b.updater().otadata();
    const r = await w.engine.initiateUpdate(dirs.b.id, w.http.url('/fw-wrong.bin'), sha256(utf8('some other image')));
    expect([r.state, r.status]).toEqual(['failed', Status.UPDATE_FAIL_DIGEST]);
    expect(b.updater().otadata()).toEqual({ ...before, ready: null });
    expect(b.host.sequences.pendingUpdate()).toBeNull();
    expect(b.restartRequested).toBe(false);
    expect(b.updater().bootState()).toBe('normal');
  });

  test('forged and replayed messages change nothing, and the next genuine message is accepted', async () => {
    const f = dev.f;
    const id = dirs.f.id;
    const topic = deviceTopic(id);
    // A genuine action, captured on the wire.
    await expect(w.engine.sendAction(id, 7)).resolves.toBe(Status.ACTION_SUCCESS);
    const captured = raw.seen.filter((s) => s.topic === topic && s.message?.senderId === w.serverId && s.message.type === 'action');
    const genuine = captured[captured.length - 1];
    const g = genuine.message as MessageOf<'action'>;
    await until('its answer on the wire', () => raw.from(id, topic).some((m) => m.type === 'response' && toHex(m.token) === toHex(g.token)));

    const lastAccepted = f.host.sequences.lastAccepted(w.serverId);
    const published = raw.from(id, topic).length;
    const calls = actionCalls.get('f')!.length;
    const rejectedBefore = f.rejected().length;

    const badSignature = (m: Message): Message => {
      const signature = m.signature.slice();
      signature[10] ^= 0x40;
      return { ...m, signature } as Message;
    };
    const forged: [string, Uint8Array][] = [
      // 1. the server's action with a later sequence ID and a broken signature
      ['bad_signature', encode(badSignature({ ...g, sequenceId: lastAccepted + 5n }))],
      // 2. signed by somebody the device has never heard of
      [
        'unknown_sender',
        encode(sign(nodeCrypto, generateRsaKeyPair(2048).privateKey, { type: 'action', sequenceId: lastAccepted + 6n, senderId: 0x5a5a5a5a5a5a4a5an, token: utf8('stranger'), fields: { actionId: 7 } })),
      ],
      // 3. validly signed by a peer the device trusts, but that is not its server
      [
        'not_permitted',
        encode(sign(nodeCrypto, other.privateKey, { type: 'action', sequenceId: lastAccepted + 7n, senderId: OTHER_SERVER, token: utf8('other'), fields: { actionId: 7 } })),
      ],
      // 4. the captured genuine message again
      ['replay', genuine.bytes],
      // 5. a sequence ID at the top of the range with a bad signature (would lock out the server if counted)
      ['bad_signature', encode(badSignature({ ...g, sequenceId: 0xffffffffffffffffn }))],
    ];
    for (const [, bytes] of forged) await raw.inject(topic, bytes);
    await until('all five rejected', () => f.rejected().length - rejectedBefore === forged.length);
    expect(f.rejected().slice(rejectedBefore).map((l) => l.detail.reason)).toEqual(forged.map(([reason]) => reason));

    expect(f.host.sequences.lastAccepted(w.serverId)).toBe(lastAccepted);
    expect(f.host.sequences.lastAccepted(OTHER_SERVER)).toBe(0n);
    expect(f.agent.serverId).toBe(w.serverId);
    expect(actionCalls.get('f')!.length).toBe(calls);

    // The engine is not fooled either: a forged answer "from the device" with a bad signature is rejected.
    const rejectedAtC2 = w.eventsOf('rejected').length;
    const fakeAnswer = sign(nodeCrypto, other.privateKey, { type: 'response', sequenceId: 1n << 60n, senderId: id, token: g.token, fields: { status: Status.ACTION_FAIL } });
    await raw.inject(topic, encode(fakeAnswer));
    await until('rejected by the engine', () => w.eventsOf('rejected').length > rejectedAtC2);
    expect(w.eventsOf('rejected').slice(rejectedAtC2)).toEqual([{ type: 'rejected', reason: 'bad_signature', topic, sender: id }]);
    // The device published nothing in answer to the forgeries (the one extra message is the fake answer itself).
    const afterFake = raw.from(id, topic).length;
    expect(afterFake).toBe(published + 1);

    // The next genuine message is accepted and answered, and nothing was sent in answer to the forgeries.
    await expect(w.engine.sendAction(id, 8)).resolves.toBe(Status.ACTION_SUCCESS);
    expect(actionCalls.get('f')!.slice(calls)).toEqual([8]);
    await until('the answer on the wire', () => raw.from(id, topic).length === afterFake + 1);
  });

  test('50 pipelined requests to one device: every one answered exactly once', async () => {
    const id = dirs.f.id;
    const before = new Set(answersPerToken(raw, id).keys());
    const requests: Promise<number | string | null>[] = [];
    for (let i = 0; i < 50; i++) requests.push(i % 2 === 0 ? w.engine.sendAction(id, i) : w.engine.requestId(id));
    const results = await Promise.all(requests);
    expect(results).toEqual(Array.from({ length: 50 }, (_, i) => (i % 2 === 0 ? Status.ACTION_SUCCESS : 'e2e-fw 1.2.3')));
    await until('50 answers on the wire', () => [...answersPerToken(raw, id).keys()].filter((k) => !before.has(k)).length === 50);
    // One more round trip, so a duplicate answer would have shown up by now.
    await w.engine.requestId(id);
    await until('the last answer', () => [...answersPerToken(raw, id).keys()].filter((k) => !before.has(k)).length === 51);
    const fresh = [...answersPerToken(raw, id).entries()].filter(([k]) => !before.has(k));
    expect(fresh).toHaveLength(51);
    for (const [, n] of fresh) expect(n).toBe(1);
    // The tokens answered are exactly the tokens the engine sent.
    const sent = new Set(raw.from(w.serverId, deviceTopic(id)).map((m) => toHex(m.token)));
    for (const [k] of fresh) expect(sent.has(k)).toBe(true);
  });

  test('data sent by the engine to an offline device is not lost when the broker restarts meanwhile', async () => {
    const b = dev.b;
    const id = dirs.b.id;
    await b.shutdown();
    await w.engine.sendData(id, 'kept', 'uint16', 513);
    await w.broker.restart();
    await b.boot();
    await until('the data', () => dataSeen.get('b')!.includes('kept'));
    expect(dataSeen.get('b')!.filter((d) => d === 'kept')).toHaveLength(1);
    expect(Array.from(encodeData('uint16', 513))).toEqual([1, 2]);
  });
});
