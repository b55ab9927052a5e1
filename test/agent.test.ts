/**
 * The device agent (modules/agent) driven through the in-memory broker with hand-built, signed messages.
 *
 * Cast: the device (key recipient-1), its server (signer-1) and a second trusted peer (signer-2) from the vector
 * set's keys; a stranger signs with signer-2 under an id the device has no key for.
 */
import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { parsePrivateKeyPem, parsePublicKeyPem } from '../crypto/keys.js';
import { pureCrypto } from '../crypto/pure.js';
import { sealEnvelope } from '../crypto/envelope.js';
import type { RsaPrivateKey, RsaPublicKey } from '../crypto/types.js';
import { Agent, AgentError, PERMISSIONS } from '../modules/agent/agent.js';
import type { AgentEvent, AgentOptions } from '../modules/agent/agent.js';
import { constantTimeEqual, uuid4 } from '../modules/agent/context.js';
import type { AgentHost } from '../modules/agent/host.js';
import { MemoryKeyStore, MemorySequenceStore } from '../modules/agent/memory.js';
import { decode, encode } from '../modules/srup/codec.js';
import { decodeData } from '../modules/srup/data.js';
import { toHex, utf8 } from '../modules/srup/bytes.js';
import type { FieldsOf, Message, MessageOf, TypeName, UnsignedOf } from '../modules/srup/schema.js';
import { Status, TYPE_NAMES } from '../modules/srup/schema.js';
import { sign } from '../modules/srup/session.js';
import { MemoryBroker, MemoryTransport } from './support/memory-broker.js';
import {
  CollectingLog,
  FakeDownloader,
  FakeUpdater,
  ManualClock,
  RecordingPresenter,
  seededRandom,
} from './support/fakes.js';

// ------------------------------------------------------------------------------------------------ cast

const KEYS = path.join(__dirname, 'data', 'srup-vectors', 'keys');
const pem = (f: string) => fs.readFileSync(path.join(KEYS, f), 'utf8');
const devicePriv = parsePrivateKeyPem(pem('recipient-1.private.pem'));
const serverPriv = parsePrivateKeyPem(pem('signer-1.private.pem'));
const peerPriv = parsePrivateKeyPem(pem('signer-2.private.pem'));
const devicePub = parsePublicKeyPem(pem('recipient-1.public.pem'));
const serverPub = parsePublicKeyPem(pem('signer-1.public.pem'));
const peerPub = parsePublicKeyPem(pem('signer-2.public.pem'));

/** A leading zero nibble, so the topic shows the reference's "no leading zeros" form. */
const DEVICE = 0x04a0f1b2c3d4e5f6n;
const DEVICE_TOPIC = 'SRUP/4a0f1b2c3d4e5f6';
const SERVER = 0x5e12d3c4b5a69788n;
const PEER = 0x7a6b5c4d3e2f1a0bn;
const STRANGER = 0x1234567890abcdefn;
const U64_MAX = (1n << 64n) - 1n;

const crypto = pureCrypto;
const FIRMWARE: Pick<AgentOptions, 'firmwareName' | 'firmwareVersion'> = {
  firmwareName: 'srup-esp32',
  firmwareVersion: '1.4.2',
};

const te = (s: string) => utf8(s);
const text = (b: Uint8Array) => Buffer.from(b).toString('utf8');
const sha256hex = (b: Uint8Array) => toHex(crypto.sha256(b));

// ------------------------------------------------------------------------------------------------ harness

interface Rig {
  broker: MemoryBroker;
  keys: MemoryKeyStore;
  seqs: MemorySequenceStore;
  clock: ManualClock;
  presenter: RecordingPresenter;
  downloader: FakeDownloader;
  updater: FakeUpdater;
  logs: CollectingLog;
  events: AgentEvent[];
  host: AgentHost;
  agent: Agent;
  transport: MemoryTransport;
  c2: MemoryTransport;
  /** Next sequence ID each test sender uses. */
  nextSeq: Map<bigint, bigint>;
}

const DEVICE_CLIENT = 'SRUP Client: 4a0f1b2c3d4e5f6';

interface RigOptions {
  serverId?: bigint | null;
  options?: Partial<AgentOptions>;
  random?: (n: number) => Uint8Array;
}

async function rig(o: RigOptions = {}): Promise<Rig> {
  const broker = new MemoryBroker();
  const keys = new MemoryKeyStore({
    deviceId: DEVICE,
    privateKey: devicePriv,
    serverId: o.serverId === undefined ? SERVER : o.serverId,
    peers: [
      [SERVER, serverPub],
      [PEER, peerPub],
    ],
  });
  const seqs = new MemorySequenceStore();
  const c2 = broker.client('c2');
  c2.listen({ message: () => {}, connected: () => {}, disconnected: () => {} });
  c2.start();
  await broker.settle();
  await c2.subscribe('SRUP/#');
  const r = {
    broker,
    keys,
    seqs,
    clock: new ManualClock(),
    presenter: new RecordingPresenter(),
    downloader: new FakeDownloader(),
    updater: new FakeUpdater(new Uint8Array([0xaa, 0xbb])),
    logs: new CollectingLog(),
    events: [] as AgentEvent[],
    c2,
    nextSeq: new Map<bigint, bigint>(),
  } as Rig;
  await boot(r, o);
  return r;
}

/** (Re)builds the device over the rig's stores, updater and broker session, and starts it. */
async function boot(r: Rig, o: RigOptions = {}): Promise<void> {
  r.transport = r.broker.client(DEVICE_CLIENT);
  r.host = {
    transport: r.transport,
    keys: r.keys,
    sequences: r.seqs,
    clock: r.clock,
    crypto,
    random: o.random ?? seededRandom(7),
    presenter: r.presenter,
    downloader: r.downloader,
    updater: r.updater,
    log: r.logs.log,
  };
  r.agent = new Agent(r.host, { ...FIRMWARE, onEvent: (e) => r.events.push(e), ...o.options });
  r.agent.start();
  await r.broker.settle();
}

interface SendOpts {
  sender?: bigint;
  key?: RsaPrivateKey;
  seq?: bigint;
  token?: Uint8Array | string;
}

/** Builds the signed bytes of a message from a test peer (default: the server, its next sequence ID). */
function build<T extends TypeName>(r: Rig, type: T, fields: FieldsOf<T>, o: SendOpts = {}): Uint8Array {
  const sender = o.sender ?? SERVER;
  const key = o.key ?? (sender === SERVER ? serverPriv : peerPriv);
  // Default: one more than the last this sender used; an explicit seq moves the default on past it.
  const next = r.nextSeq.get(sender) ?? 1n;
  const seq = o.seq ?? next;
  if (seq >= next) r.nextSeq.set(sender, seq + 1n);
  const token = typeof o.token === 'string' ? te(o.token) : (o.token ?? te(`t-${seq}`));
  const unsigned = { type, sequenceId: seq, senderId: sender, token, fields } as UnsignedOf<T>;
  return encode(sign(crypto, key, unsigned) as Message);
}

/** Publishes bytes on the device topic as the C2 client and lets the device act. */
async function deliver(r: Rig, bytes: Uint8Array, topic = DEVICE_TOPIC): Promise<void> {
  await r.c2.publish(topic, bytes);
  await r.broker.settle();
  await r.agent.idle();
  await r.broker.settle();
}

async function send<T extends TypeName>(r: Rig, type: T, fields: FieldsOf<T>, o: SendOpts = {}): Promise<Uint8Array> {
  const bytes = build(r, type, fields, o);
  await deliver(r, bytes);
  return bytes;
}

/** Everything the device published, decoded, with its topic and raw bytes. */
function fromDevice(r: Rig): { topic: string; m: Message; bytes: Uint8Array }[] {
  return r.broker.log
    .filter((p) => p.client === DEVICE_CLIENT)
    .map((p) => ({ topic: p.topic, m: decode(p.payload), bytes: p.payload }));
}

function lastFromDevice(r: Rig) {
  const all = fromDevice(r);
  if (all.length === 0) throw new Error('the device published nothing');
  return all[all.length - 1];
}

/** The exact bytes the device must produce for this message (signatures are deterministic). */
function expected<T extends TypeName>(type: T, seq: bigint, token: Uint8Array, fields: FieldsOf<T>): Uint8Array {
  return encode(sign(crypto, devicePriv, { type, sequenceId: seq, senderId: DEVICE, token, fields } as UnsignedOf<T>) as Message);
}

/** All the state a rejected message must leave alone. */
function snapshot(r: Rig) {
  const peers = [SERVER, PEER, STRANGER, DEVICE];
  return {
    accepted: peers.map((p) => r.seqs.lastAccepted(p)),
    sent: peers.map((p) => r.seqs.lastSent(p)),
    server: r.keys.serverId(),
    keyIds: r.keys.peerIds(),
    pending: r.seqs.pendingUpdate(),
    published: r.broker.log.filter((p) => p.client === DEVICE_CLIENT).length,
    updater: [...r.updater.calls],
    presenter: r.presenter.history.length,
    events: r.events.filter((e) => e.type !== 'rejected').length,
  };
}

const UUID4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

function status(m: Message): number {
  if (m.type !== 'response') throw new Error(`expected a response, got ${m.type}`);
  return m.fields.status;
}

// ------------------------------------------------------------------------------------------------ basics

describe('start-up and topics', () => {
  test('subscribes to SRUP/<own id> written without leading zeros, with a persistent session', async () => {
    const r = await rig();
    expect(r.broker.subscriptionsOf(DEVICE_CLIENT)).toEqual([DEVICE_TOPIC]);
    expect(r.events[0]).toEqual({ type: 'connected', sessionPresent: false });
    expect(r.transport.isConnected).toBe(true);
  });

  test('the constructor needs the firmware name and version; start() only once', async () => {
    const r = await rig();
    expect(() => new Agent(r.host, {} as AgentOptions)).toThrow(AgentError);
    expect(() => r.agent.start()).toThrow(expect.objectContaining({ reason: 'already_started' }));
  });

  test('uuid4 sets the version and variant bits as Python uuid.uuid4() does', () => {
    expect(uuid4(new Uint8Array(16).fill(0xff))).toBe('ffffffff-ffff-4fff-bfff-ffffffffffff');
    expect(uuid4(new Uint8Array(16))).toBe('00000000-0000-4000-8000-000000000000');
    expect(uuid4(Uint8Array.from({ length: 16 }, (_, i) => i))).toBe('00010203-0405-4607-8809-0a0b0c0d0e0f');
  });

  test('constantTimeEqual', () => {
    expect(constantTimeEqual(te('abc'), te('abc'))).toBe(true);
    expect(constantTimeEqual(te('abc'), te('abd'))).toBe(false);
    expect(constantTimeEqual(te('abc'), te('abcd'))).toBe(false);
    expect(constantTimeEqual(te(''), te(''))).toBe(true);
  });

  test('the permission table covers every message type', () => {
    expect(Object.keys(PERMISSIONS).sort()).toEqual([...TYPE_NAMES].sort());
    expect(PERMISSIONS.initiate).toBe('server');
    expect(PERMISSIONS.join_command).toBe('trusted_peer');
    expect(PERMISSIONS.response).toBe('join_server');
    expect(PERMISSIONS.join_request).toBe('never');
  });
});

// ------------------------------------------------------------------------------------------------ actions

describe('action', () => {
  const actions = {
    1: () => true,
    2: () => false,
    3: (): boolean => {
      throw new Error('relay stuck');
    },
    4: async () => true,
  };

  test('a handler returning true answers 0x20: exact bytes, token echoed, next sequence ID', async () => {
    const r = await rig({ options: { actions } });
    await send(r, 'action', { actionId: 1 }, { token: 'act-1', seq: 5n });
    const out = lastFromDevice(r);
    expect(out.topic).toBe(DEVICE_TOPIC);
    expect(out.bytes).toEqual(expected('response', 6n, te('act-1'), { status: Status.ACTION_SUCCESS }));
    expect(r.seqs.lastAccepted(SERVER)).toBe(5n);
    expect(r.seqs.lastSent(SERVER)).toBe(6n);
    expect(r.events).toContainEqual({ type: 'action', actionId: 1, status: 0x20 });
  });

  test.each([
    [2, Status.ACTION_FAIL],
    [3, Status.ACTION_FAIL],
    [4, Status.ACTION_SUCCESS],
    [9, Status.ACTION_UNKNOWN],
  ])('action %i answers 0x%s', async (id, st) => {
    const r = await rig({ options: { actions } });
    await send(r, 'action', { actionId: id }, { token: `a${id}` });
    const out = lastFromDevice(r).m;
    expect(status(out)).toBe(st);
    expect(text(out.token)).toBe(`a${id}`);
  });

  test('handlers may come as a Map; with no handlers at all every id is unknown', async () => {
    const r = await rig({ options: { actions: new Map([[7, () => true]]) } });
    await send(r, 'action', { actionId: 7 });
    expect(status(lastFromDevice(r).m)).toBe(0x20);
    await send(r, 'action', { actionId: 8 });
    expect(status(lastFromDevice(r).m)).toBe(0x2e);
    const bare = await rig();
    await send(bare, 'action', { actionId: 0 });
    expect(status(lastFromDevice(bare).m)).toBe(0x2e);
  });

  test('50 pipelined action requests are all answered exactly once', async () => {
    const calls: number[] = [];
    const r = await rig({
      options: {
        actions: new Map(
          Array.from({ length: 50 }, (_, i) => [i, async (id: number) => (calls.push(id), id % 7 !== 3)] as const),
        ),
      },
    });
    const msgs = Array.from({ length: 50 }, (_, i) => build(r, 'action', { actionId: i }, { token: `p-${i}` }));
    await Promise.all(msgs.map((b) => r.c2.publish(DEVICE_TOPIC, b)));
    await r.broker.settle();
    await r.agent.idle();
    await r.broker.settle();
    const out = fromDevice(r).map((x) => x.m);
    expect(out).toHaveLength(50);
    const byToken = new Map(out.map((m) => [text(m.token), m]));
    expect(byToken.size).toBe(50);
    for (let i = 0; i < 50; i++) {
      expect(status(byToken.get(`p-${i}`) as Message)).toBe(i % 7 === 3 ? 0x2f : 0x20);
    }
    expect(calls.sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    // Each answer is above everything seen or sent before it, so a reference server accepts them all.
    const seqsOut = out.map((m) => m.sequenceId);
    for (let i = 1; i < seqsOut.length; i++) expect(seqsOut[i] > seqsOut[i - 1]).toBe(true);
    expect(seqsOut[0] > 1n).toBe(true);
    expect(r.seqs.lastAccepted(SERVER)).toBe(50n);
    expect(r.seqs.lastSent(SERVER)).toBe(seqsOut[49]);
    expect(r.logs.rejections()).toEqual([]);
  });
});

// ------------------------------------------------------------------------------------------------ the pipeline

describe('receive pipeline: a rejected message changes nothing, the next genuine one is accepted', () => {
  async function rejects(r: Rig, bytes: Uint8Array, reason: string) {
    const before = snapshot(r);
    const logsBefore = r.logs.rejections().length;
    await deliver(r, bytes);
    expect(snapshot(r)).toEqual(before);
    expect(r.logs.rejections().slice(logsBefore)).toEqual([reason]);
    // And a genuine message from the server still goes through.
    await send(r, 'action', { actionId: 1 }, { token: 'after' });
    const out = lastFromDevice(r).m;
    expect(text(out.token)).toBe('after');
    expect(status(out)).toBe(0x20);
  }
  const opts = { options: { actions: { 1: () => true } } };

  test('bad signature', async () => {
    const r = await rig(opts);
    const b = build(r, 'action', { actionId: 1 }, { seq: 10n });
    b[30] ^= 0x01; // inside the signature (token "t-10" is 4 bytes: signature starts at 26)
    r.nextSeq.set(SERVER, 1n);
    await rejects(r, b, 'bad_signature');
  });

  test('a huge sequence ID with a bad signature does not move the counter', async () => {
    const r = await rig(opts);
    const b = build(r, 'action', { actionId: 1 }, { seq: U64_MAX, key: peerPriv });
    r.nextSeq.set(SERVER, 1n);
    await rejects(r, b, 'bad_signature');
    expect(r.seqs.lastAccepted(SERVER)).toBe(1n);
  });

  test('unknown sender', async () => {
    const r = await rig(opts);
    await rejects(r, build(r, 'action', { actionId: 1 }, { sender: STRANGER, key: peerPriv }), 'unknown_sender');
  });

  test('a valid message from a trusted peer that is not this device\'s server', async () => {
    const r = await rig(opts);
    await rejects(r, build(r, 'action', { actionId: 1 }, { sender: PEER }), 'not_permitted');
    expect(r.logs.events('rejected')[0].detail).toMatchObject({ reason: 'not_permitted', why: 'not_from_server' });
  });

  test('replay: the same bytes twice, then a lower sequence ID', async () => {
    const r = await rig(opts);
    const b = build(r, 'action', { actionId: 1 }, { seq: 7n, token: 'first' });
    await deliver(r, b);
    expect(fromDevice(r)).toHaveLength(1);
    r.nextSeq.set(SERVER, 8n);
    await rejects(r, b, 'replay');
    await rejects(r, build(r, 'action', { actionId: 1 }, { seq: 3n }), 'replay');
  });

  test('sequence ID 0 is never accepted', async () => {
    const r = await rig(opts);
    await rejects(r, build(r, 'action', { actionId: 1 }, { seq: 0n }), 'replay');
  });

  test('a truncated message', async () => {
    const r = await rig(opts);
    const b = build(r, 'action', { actionId: 1 }, { seq: 20n });
    r.nextSeq.set(SERVER, 1n);
    await rejects(r, b.slice(0, b.length - 1), 'truncated');
  });

  test('a lying length, trailing bytes, a wrong version', async () => {
    const r = await rig(opts);
    const b = build(r, 'action', { actionId: 1 }, { seq: 20n });
    r.nextSeq.set(SERVER, 1n);
    await rejects(r, b.slice(0, 40), 'length_exceeds_input');
    const trailing = new Uint8Array([...b, 0]);
    await rejects(r, trailing, 'trailing_bytes');
    const v4 = b.slice();
    v4[0] = 4;
    await rejects(r, v4, 'bad_version');
  });

  test('a message type a device never accepts (a join request from the server)', async () => {
    const r = await rig(opts);
    await rejects(r, build(r, 'join_request', {}), 'not_permitted');
  });

  test('the device drops its own messages silently', async () => {
    const r = await rig(opts);
    await r.agent.sendData('x', 'uint8', 1); // the broker echoes it back to the device
    await r.broker.settle();
    expect(r.logs.rejections()).toEqual([]);
    expect(r.seqs.lastAccepted(DEVICE)).toBe(0n);
  });

  test('random bytes never throw and never change state (property)', async () => {
    const r = await rig(opts);
    const genuine = build(r, 'action', { actionId: 1 }, { seq: 99n });
    r.nextSeq.set(SERVER, 1n);
    const before = snapshot(r);
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.uint8Array({ maxLength: 400 }),
          // Mutations of a genuine message: one byte changed, or cut anywhere.
          fc.tuple(fc.nat(genuine.length - 1), fc.integer({ min: 1, max: 255 })).map(([i, x]) => {
            const b = genuine.slice();
            b[i] ^= x;
            return b;
          }),
          fc.nat(genuine.length - 1).map((n) => genuine.slice(0, n)),
        ),
        async (bytes) => {
          await r.c2.publish(DEVICE_TOPIC, bytes);
          await r.broker.settle(50);
          await r.agent.idle();
        },
      ),
      { numRuns: 120 },
    );
    await r.broker.settle();
    expect({ ...snapshot(r), published: 0 }).toEqual({ ...before, published: 0 });
    expect(fromDevice(r)).toHaveLength(0);
  });
});

// ------------------------------------------------------------------------------------------------ sequence IDs

describe('outgoing sequence IDs', () => {
  test('next = max(lastSent, lastAccepted) + 1 per peer, persisted before the message is published', async () => {
    const r = await rig({ options: { actions: { 1: () => true } } });
    const seen: bigint[] = [];
    const publish = r.transport.publish.bind(r.transport);
    r.transport.publish = (topic, payload) => {
      seen.push(r.seqs.lastSent(SERVER)); // what the store holds when the message leaves
      return publish(topic, payload);
    };
    await send(r, 'action', { actionId: 1 }, { seq: 10n });
    expect(lastFromDevice(r).m.sequenceId).toBe(11n);
    expect(seen).toEqual([11n]);
    r.seqs.setLastSent(SERVER, 40n);
    await send(r, 'action', { actionId: 1 }, { seq: 12n });
    expect(lastFromDevice(r).m.sequenceId).toBe(41n);
    await send(r, 'action', { actionId: 1 }, { seq: 100n });
    expect(lastFromDevice(r).m.sequenceId).toBe(101n);
    expect(seen).toEqual([11n, 41n, 101n]);
    // Counters are per peer: the peer's slots are untouched.
    expect(r.seqs.lastSent(PEER)).toBe(0n);
  });
});

// ------------------------------------------------------------------------------------------------ data, ID

describe('data and ID request', () => {
  test('data from the server goes to onData with its UTF-8 id; nothing is answered', async () => {
    const got: [string, Uint8Array][] = [];
    const r = await rig({ options: { onData: (id, b) => got.push([id, b]) } });
    await send(r, 'data', { dataId: te('temp'), data: Uint8Array.of(0xd4, 0xfe) });
    expect(got).toEqual([['temp', Uint8Array.of(0xd4, 0xfe)]]);
    expect(decodeData('int16', got[0][1])).toBe(-300);
    expect(fromDevice(r)).toHaveLength(0);
    expect(r.events).toContainEqual({ type: 'data', dataId: 'temp', length: 2 });
  });

  test('data from a trusted peer that is not the server is rejected', async () => {
    const got: string[] = [];
    const r = await rig({ options: { onData: (id) => got.push(id) } });
    await send(r, 'data', { dataId: te('temp'), data: Uint8Array.of(1) }, { sender: PEER });
    expect(got).toEqual([]);
    expect(r.logs.rejections()).toEqual(['not_permitted']);
  });

  test('sendData publishes a typed data message on the device topic with a fresh uuid4 token', async () => {
    const r = await rig();
    await r.agent.sendData('temp', 'int16', -300);
    const out = lastFromDevice(r);
    expect(out.topic).toBe(DEVICE_TOPIC);
    const m = out.m as MessageOf<'data'>;
    expect(m.type).toBe('data');
    expect(text(m.token)).toMatch(UUID4);
    expect(text(m.token)).toBe(uuid4(seededRandom(7)(16)));
    expect(m.fields).toEqual({ dataId: te('temp'), data: Uint8Array.of(0xd4, 0xfe) });
    expect(out.bytes).toEqual(expected('data', 1n, m.token, m.fields));
    await r.agent.sendData('name', 'string', 'kitchen');
    const m2 = lastFromDevice(r).m as MessageOf<'data'>;
    expect(m2.sequenceId).toBe(2n);
    expect(text(m2.fields.data)).toBe('kitchen');
    expect(text(m2.token)).not.toBe(text(m.token));
  });

  test('sendData without a server is refused', async () => {
    const r = await rig({ serverId: null });
    await expect(r.agent.sendData('x', 'uint8', 1)).rejects.toMatchObject({ reason: 'no_server' });
  });

  test('ID request is answered with data IDENTIFICATION_RESPONSE = "<name> <version>", token echoed', async () => {
    const r = await rig();
    await send(r, 'id_request', {}, { token: 'who', seq: 3n });
    const out = lastFromDevice(r);
    expect(out.bytes).toEqual(
      expected('data', 4n, te('who'), { dataId: te('IDENTIFICATION_RESPONSE'), data: te('srup-esp32 1.4.2') }),
    );
  });
});

// ------------------------------------------------------------------------------------------------ terminate etc.

describe('terminate, deregister, resign', () => {
  test('terminate clears the server; the former server is then not obeyed', async () => {
    const r = await rig({ options: { actions: { 1: () => true } } });
    await send(r, 'terminate_command', {});
    expect(r.keys.serverId()).toBeNull();
    expect(r.keys.peerKey(SERVER)).toBe(serverPub);
    expect(fromDevice(r)).toHaveLength(0);
    expect(r.events).toContainEqual({ type: 'terminated', server: SERVER });
    await send(r, 'action', { actionId: 1 });
    expect(r.logs.rejections()).toEqual(['not_permitted']);
  });

  test('terminate from a peer that is not the server changes nothing', async () => {
    const r = await rig();
    await send(r, 'terminate_command', {}, { sender: PEER });
    expect(r.keys.serverId()).toBe(SERVER);
    expect(r.logs.rejections()).toEqual(['not_permitted']);
  });

  test('deregister_command drops the server key and clears the server; not answered', async () => {
    const r = await rig();
    await send(r, 'deregister_command', {}, { seq: 4n });
    expect(r.keys.serverId()).toBeNull();
    expect(r.keys.peerKey(SERVER)).toBeNull();
    expect(r.keys.peerIds()).toEqual([PEER]);
    expect(r.seqs.lastAccepted(SERVER)).toBe(4n); // kept: replays stay replays
    expect(fromDevice(r)).toHaveLength(0);
    await send(r, 'action', { actionId: 1 });
    expect(r.logs.rejections()).toEqual(['unknown_sender']);
  });

  test('agent.deregister(): deregister_request on the device topic, then key dropped and server cleared', async () => {
    const r = await rig();
    await r.agent.deregister();
    await r.broker.settle();
    const out = lastFromDevice(r);
    expect(out.topic).toBe(DEVICE_TOPIC);
    expect(out.m.type).toBe('deregister_request');
    expect(text(out.m.token)).toMatch(UUID4);
    expect(out.bytes).toEqual(expected('deregister_request', 1n, out.m.token, {}));
    expect(r.keys.serverId()).toBeNull();
    expect(r.keys.peerKey(SERVER)).toBeNull();
    expect(r.events.at(-1)).toEqual({ type: 'deregistered', server: SERVER, by: 'device' });
    await expect(r.agent.deregister()).rejects.toMatchObject({ reason: 'no_server' });
  });

  test('agent.resign(): resign_request, server cleared, key kept', async () => {
    const r = await rig();
    await r.agent.resign();
    await r.broker.settle();
    const out = lastFromDevice(r);
    expect(out.topic).toBe(DEVICE_TOPIC);
    expect(out.m.type).toBe('resign_request');
    expect(out.m.sequenceId).toBe(1n);
    expect(r.keys.serverId()).toBeNull();
    expect(r.keys.peerKey(SERVER)).toBe(serverPub);
    expect(r.events.at(-1)).toEqual({ type: 'resigned', server: SERVER });
  });
});

// ------------------------------------------------------------------------------------------------ joins

describe('simple join', () => {
  test('join_request to SRUP/servers/<server>/<device>; 0x50 with the echoed token joins', async () => {
    const r = await rig({ serverId: null });
    const outcome = r.agent.join('simple', undefined, SERVER);
    await r.broker.settle();
    const req = lastFromDevice(r);
    expect(req.topic).toBe('SRUP/servers/5e12d3c4b5a69788/4a0f1b2c3d4e5f6');
    expect(req.m.type).toBe('join_request');
    expect(text(req.m.token)).toMatch(UUID4);
    expect(req.bytes).toEqual(expected('join_request', 1n, req.m.token, {}));
    expect(r.keys.serverId()).toBeNull();
    await send(r, 'response', { status: Status.JOIN_SUCCESS }, { token: req.m.token, seq: 2n });
    await expect(outcome).resolves.toBe('joined');
    expect(r.keys.serverId()).toBe(SERVER);
    expect(r.events).toContainEqual({ type: 'joined', server: SERVER, via: 'simple' });
    expect(r.clock.pending).toBe(0);
  });

  test('join() uses the key store\'s server by default', async () => {
    const r = await rig();
    const outcome = r.agent.join();
    await r.broker.settle();
    const req = lastFromDevice(r);
    expect(req.topic).toBe('SRUP/servers/5e12d3c4b5a69788/4a0f1b2c3d4e5f6');
    await send(r, 'response', { status: Status.JOIN_SUCCESS }, { token: req.m.token });
    await expect(outcome).resolves.toBe('joined');
  });

  test.each([
    [Status.JOIN_REFUSED, 'refused', 'join_refused'],
    [Status.JOIN_FAIL, 'failed', 'join_failed'],
  ])('status 0x%s -> %s, server unchanged', async (st, outcomeText, ev) => {
    const r = await rig({ serverId: null });
    const outcome = r.agent.join('simple', undefined, SERVER);
    await r.broker.settle();
    await send(r, 'response', { status: st }, { token: lastFromDevice(r).m.token });
    await expect(outcome).resolves.toBe(outcomeText);
    expect(r.keys.serverId()).toBeNull();
    expect(r.events.at(-1)?.type).toBe(ev);
  });

  test('a result with another token is ignored; the right one still counts', async () => {
    const r = await rig({ serverId: null });
    const outcome = r.agent.join('simple', undefined, SERVER);
    await r.broker.settle();
    const token = lastFromDevice(r).m.token;
    await send(r, 'response', { status: Status.JOIN_SUCCESS }, { token: 'not-ours' });
    expect(r.keys.serverId()).toBeNull();
    expect(r.logs.events('unexpected_response')).toHaveLength(1);
    await send(r, 'response', { status: Status.JOIN_SUCCESS }, { token });
    await expect(outcome).resolves.toBe('joined');
  });

  test('a result from another trusted peer is rejected', async () => {
    const r = await rig({ serverId: null });
    const outcome = r.agent.join('simple', undefined, SERVER);
    await r.broker.settle();
    const token = lastFromDevice(r).m.token;
    await send(r, 'response', { status: Status.JOIN_SUCCESS }, { token, sender: PEER });
    expect(r.logs.rejections()).toEqual(['not_permitted']);
    expect(r.seqs.lastAccepted(PEER)).toBe(0n);
    await send(r, 'response', { status: Status.JOIN_SUCCESS }, { token });
    await expect(outcome).resolves.toBe('joined');
  });

  test('times out cleanly; a late result is then rejected', async () => {
    const r = await rig({ serverId: null, options: { joinTimeoutMs: 5000 } });
    const outcome = r.agent.join('simple', undefined, SERVER);
    await r.broker.settle();
    const token = lastFromDevice(r).m.token;
    r.clock.advance(4999);
    r.clock.advance(1);
    await expect(outcome).resolves.toBe('timeout');
    expect(r.events.at(-1)).toEqual({ type: 'join_failed', server: SERVER, kind: 'simple', reason: 'timeout' });
    await send(r, 'response', { status: Status.JOIN_SUCCESS }, { token });
    expect(r.keys.serverId()).toBeNull();
    expect(r.logs.rejections()).toEqual(['not_permitted']);
    expect(r.seqs.lastAccepted(SERVER)).toBe(0n);
  });

  test('one join at a time; a server without a key, or no server at all, is refused', async () => {
    const r = await rig({ serverId: null });
    await expect(r.agent.join()).rejects.toMatchObject({ reason: 'no_server' });
    await expect(r.agent.join('simple', undefined, STRANGER)).rejects.toMatchObject({ reason: 'no_server_key' });
    const first = r.agent.join('simple', undefined, SERVER);
    await expect(r.agent.join('human', undefined, SERVER)).rejects.toMatchObject({ reason: 'busy' });
    await r.agent.close();
    await expect(first).resolves.toBe('failed');
  });

  test('a join request the broker does not take ends the join as failed', async () => {
    const r = await rig({ serverId: null });
    r.transport.publish = () => Promise.reject(new Error('connection lost'));
    await expect(r.agent.join('simple', undefined, SERVER)).resolves.toBe('failed');
    expect(r.logs.events('publish_failed')).toHaveLength(1);
    expect(r.seqs.lastSent(SERVER)).toBe(1n);
    expect(r.clock.pending).toBe(0);
  });

  test('a response when no join is pending is rejected', async () => {
    const r = await rig();
    await send(r, 'response', { status: Status.JOIN_SUCCESS });
    expect(r.logs.rejections()).toEqual(['not_permitted']);
    expect(r.seqs.lastAccepted(SERVER)).toBe(0n);
  });
});

describe('human-moderated join', () => {
  const SECRET = te('636dd7ad8c004d09b2c391d0cc3aa2b0');
  const seal = (plain: Uint8Array, to: RsaPublicKey = devicePub) => sealEnvelope(crypto, to, plain, seededRandom(99));

  test('0x0B -> 0x0C secret shown -> 0x50 with the 0x0C token clears it and joins', async () => {
    const r = await rig({ serverId: null });
    const outcome = r.agent.join('human', undefined, SERVER);
    await r.broker.settle();
    const req = lastFromDevice(r);
    expect(req.topic).toBe('SRUP/servers/5e12d3c4b5a69788/4a0f1b2c3d4e5f6');
    expect(req.m.type).toBe('human_join_request');
    expect(req.bytes).toEqual(expected('human_join_request', 1n, req.m.token, {}));
    await send(r, 'human_join_response', { encrypted: seal(SECRET) }, { token: 'hj-token' });
    expect(r.presenter.current).toEqual(SECRET);
    expect(r.events.at(-1)).toEqual({ type: 'challenge_shown', server: SERVER, kind: 'human' });
    await send(r, 'response', { status: Status.JOIN_SUCCESS }, { token: 'hj-token' });
    await expect(outcome).resolves.toBe('joined');
    expect(r.presenter.current).toBeNull();
    expect(r.presenter.history.map((h) => h.op)).toEqual(['show', 'clear']);
    expect(r.keys.serverId()).toBe(SERVER);
    expect(r.events.slice(-2)).toEqual([
      { type: 'challenge_cleared', server: SERVER },
      { type: 'joined', server: SERVER, via: 'human' },
    ]);
    expect(fromDevice(r)).toHaveLength(1); // nothing but the request
  });

  test('refused with the 0x0C token clears the challenge; server unchanged', async () => {
    const r = await rig({ serverId: null });
    const outcome = r.agent.join('human', undefined, SERVER);
    await r.broker.settle();
    await send(r, 'human_join_response', { encrypted: seal(SECRET) }, { token: 'hj' });
    await send(r, 'response', { status: Status.JOIN_REFUSED }, { token: 'hj' });
    await expect(outcome).resolves.toBe('refused');
    expect(r.presenter.current).toBeNull();
    expect(r.keys.serverId()).toBeNull();
  });

  test('the server may fail the join with the request token before any challenge (no human hook)', async () => {
    const r = await rig({ serverId: null });
    const outcome = r.agent.join('human', undefined, SERVER);
    await r.broker.settle();
    await send(r, 'response', { status: Status.JOIN_FAIL }, { token: lastFromDevice(r).m.token });
    await expect(outcome).resolves.toBe('failed');
    expect(r.presenter.history).toEqual([]);
  });

  test('timeout clears the challenge', async () => {
    const r = await rig({ serverId: null, options: { joinTimeoutMs: 1000 } });
    const outcome = r.agent.join('human', undefined, SERVER);
    await r.broker.settle();
    await send(r, 'human_join_response', { encrypted: seal(SECRET) });
    expect(r.presenter.current).toEqual(SECRET);
    r.clock.advance(1000);
    await expect(outcome).resolves.toBe('timeout');
    expect(r.presenter.current).toBeNull();
  });

  test('an envelope that does not open shows nothing and the join still ends cleanly', async () => {
    const r = await rig({ serverId: null, options: { joinTimeoutMs: 1000 } });
    const outcome = r.agent.join('human', undefined, SERVER);
    await r.broker.settle();
    await send(r, 'human_join_response', { encrypted: seal(SECRET, peerPub) });
    expect(r.presenter.history).toEqual([]);
    expect(r.logs.events('bad_envelope')).toHaveLength(1);
    r.clock.advance(1000);
    await expect(outcome).resolves.toBe('timeout');
    expect(r.presenter.history).toEqual([]);
  });

  test('0x0C with no human join pending, or during a simple join, is rejected', async () => {
    const r = await rig({ serverId: null });
    await send(r, 'human_join_response', { encrypted: seal(SECRET) });
    const outcome = r.agent.join('simple', undefined, SERVER);
    await r.broker.settle();
    await send(r, 'human_join_response', { encrypted: seal(SECRET) });
    expect(r.logs.rejections()).toEqual(['not_permitted', 'not_permitted']);
    expect(r.presenter.history).toEqual([]);
    await r.agent.close();
    await expect(outcome).resolves.toBe('failed');
  });
});

describe('observed join', () => {
  const OBSERVER = PEER;
  const SECRET = te('0f1e2d3c4b5a69788796a5b4c3d2e1f0');

  test('as the joining device: 0x0D(observer) -> 0x0E shown -> 0x50 joins', async () => {
    const r = await rig({ serverId: null });
    const outcome = r.agent.join('observed', OBSERVER, SERVER);
    await r.broker.settle();
    const req = lastFromDevice(r);
    expect(req.topic).toBe('SRUP/servers/5e12d3c4b5a69788/4a0f1b2c3d4e5f6');
    expect(req.m.type).toBe('observed_join_request');
    expect(req.bytes).toEqual(expected('observed_join_request', 1n, req.m.token, { observerId: OBSERVER }));
    await send(
      r,
      'observed_join_response',
      { encrypted: sealEnvelope(crypto, devicePub, SECRET, seededRandom(3)) },
      { token: 'oj' },
    );
    expect(r.presenter.current).toEqual(SECRET);
    expect(r.events.at(-1)).toEqual({ type: 'challenge_shown', server: SERVER, kind: 'observed' });
    await send(r, 'response', { status: Status.JOIN_SUCCESS }, { token: 'oj' });
    await expect(outcome).resolves.toBe('joined');
    expect(r.presenter.current).toBeNull();
    expect(r.keys.serverId()).toBe(SERVER);
  });

  test('an observed join needs another device as observer', async () => {
    const r = await rig();
    await expect(r.agent.join('observed')).rejects.toMatchObject({ reason: 'bad_argument' });
    await expect(r.agent.join('observed', DEVICE)).rejects.toMatchObject({ reason: 'bad_argument' });
  });

  describe('as the observer', () => {
    const JOINING = 0x4c0ffee000000001n;
    const request = (r: Rig, plain: Uint8Array, o: SendOpts = {}) =>
      send(
        r,
        'observation_request',
        { joiningDeviceId: JOINING, encrypted: sealEnvelope(crypto, devicePub, plain, seededRandom(5)) },
        { token: 'obs-1', seq: 8n, ...o },
      );

    test('the value seen locally matches -> 0x60 to the server with the request token (exact bytes)', async () => {
      const asked: bigint[] = [];
      const r = await rig({ options: { observe: async (id) => (asked.push(id), SECRET.slice()) } });
      await request(r, SECRET);
      expect(asked).toEqual([JOINING]);
      const out = lastFromDevice(r);
      expect(out.topic).toBe(DEVICE_TOPIC);
      expect(out.bytes).toEqual(expected('response', 9n, te('obs-1'), { status: Status.OBSERVED_JOIN_VALID }));
      expect(r.events.at(-1)).toEqual({ type: 'observation', server: SERVER, joiningDevice: JOINING, status: 0x60 });
    });

    test.each([
      ['a different value', async () => te('0f1e2d3c4b5a69788796a5b4c3d2e1f1'), Status.OBSERVED_JOIN_INVALID],
      ['a shorter value', async () => te('0f1e'), Status.OBSERVED_JOIN_INVALID],
      ['null', async () => null, Status.OBSERVED_JOIN_FAIL],
      ['a throw', async () => { throw new Error('camera off'); }, Status.OBSERVED_JOIN_FAIL],
      ['a synchronous value', () => SECRET.slice(), Status.OBSERVED_JOIN_VALID],
    ])('observe returning %s', async (_name, observe, st) => {
      const r = await rig({ options: { observe } });
      await request(r, SECRET);
      const out = lastFromDevice(r).m;
      expect(status(out)).toBe(st);
      expect(text(out.token)).toBe('obs-1');
    });

    test('no observe hook -> 0x6F', async () => {
      const r = await rig();
      await request(r, SECRET);
      expect(status(lastFromDevice(r).m)).toBe(Status.OBSERVED_JOIN_FAIL);
    });

    test('an observe hook that never answers times out -> 0x6F', async () => {
      const r = await rig({ options: { observe: () => new Promise(() => {}), observeTimeoutMs: 3000 } });
      await r.c2.publish(
        DEVICE_TOPIC,
        build(r, 'observation_request', {
          joiningDeviceId: JOINING,
          encrypted: sealEnvelope(crypto, devicePub, SECRET, seededRandom(5)),
        }, { token: 'slow' }),
      );
      await r.broker.settle();
      expect(fromDevice(r)).toHaveLength(0);
      r.clock.advance(3000);
      await r.agent.idle();
      await r.broker.settle();
      expect(status(lastFromDevice(r).m)).toBe(Status.OBSERVED_JOIN_FAIL);
      expect(text(lastFromDevice(r).m.token)).toBe('slow');
      expect(r.clock.pending).toBe(0);
    });

    test('an envelope not for this device -> 0x6F without asking the hook', async () => {
      let asked = 0;
      const r = await rig({ options: { observe: async () => (asked++, SECRET) } });
      await send(r, 'observation_request', {
        joiningDeviceId: JOINING,
        encrypted: sealEnvelope(crypto, peerPub, SECRET, seededRandom(5)),
      });
      expect(asked).toBe(0);
      expect(status(lastFromDevice(r).m)).toBe(Status.OBSERVED_JOIN_FAIL);
    });

    test('an observation request from a peer that is not the server is rejected', async () => {
      let asked = 0;
      const r = await rig({ options: { observe: async () => (asked++, SECRET) } });
      await request(r, SECRET, { sender: PEER });
      expect(asked).toBe(0);
      expect(fromDevice(r)).toHaveLength(0);
      expect(r.logs.rejections()).toEqual(['not_permitted']);
    });
  });
});

describe('join_command', () => {
  test('from a trusted peer naming this device: the sender becomes the server; not answered', async () => {
    const r = await rig();
    await send(r, 'join_command', { deviceId: DEVICE }, { sender: PEER, seq: 3n });
    expect(r.keys.serverId()).toBe(PEER);
    expect(r.seqs.lastAccepted(PEER)).toBe(3n);
    expect(fromDevice(r)).toHaveLength(0);
    expect(r.events.at(-1)).toEqual({ type: 'joined', server: PEER, via: 'join_command' });
  });

  test('naming another device, or from an untrusted sender, changes nothing', async () => {
    const r = await rig({ serverId: null });
    await send(r, 'join_command', { deviceId: DEVICE + 1n }, { sender: PEER });
    await send(r, 'join_command', { deviceId: DEVICE }, { sender: STRANGER, key: peerPriv });
    expect(r.keys.serverId()).toBeNull();
    expect(r.seqs.lastAccepted(PEER)).toBe(0n);
    expect(r.logs.rejections()).toEqual(['not_permitted', 'unknown_sender']);
    expect(r.logs.events('rejected')[0].detail.why).toBe('other_device');
  });
});

// ------------------------------------------------------------------------------------------------ update

describe('update', () => {
  const IMAGE = Uint8Array.from({ length: 5000 }, (_, i) => (i * 31 + 7) & 0xff);
  const URL = 'http://updates.test/fw-1.5.0.bin';
  const DIGEST = sha256hex(IMAGE);
  /** As pySRUP sends them: with a trailing 00 inside the length. */
  const initiateFields = (url = URL, digest = DIGEST) => ({ url: te(url + '\0'), digest: te(digest + '\0') });

  async function staged(r: Rig, token = 'upd-1') {
    r.downloader.serve(URL, IMAGE, { chunkSize: 1000 });
    await send(r, 'initiate', initiateFields(URL, DIGEST.toUpperCase()), { token, seq: 2n });
  }

  test('initiate: streamed, hashed, staged; 0x00 with the initiate token (exact bytes)', async () => {
    const r = await rig();
    await staged(r);
    expect(r.downloader.requests).toEqual([URL]);
    expect(r.downloader.largestChunk).toBe(1000);
    expect(r.updater.calls).toEqual(['bootState', 'begin', 'write:1000', 'write:1000', 'write:1000', 'write:1000', 'write:1000', 'finish']);
    expect(r.updater.inactive).toEqual(IMAGE);
    expect(r.seqs.pendingUpdate()).toEqual({ server: SERVER, token: te('upd-1'), state: 'staged' });
    expect(lastFromDevice(r).bytes).toEqual(expected('response', 3n, te('upd-1'), { status: Status.UPDATE_SUCCESS }));
    expect(r.events.map((e) => e.type)).toEqual(['connected', 'update_started', 'update_staged']);
  });

  test('url and digest without the trailing 00 work too', async () => {
    const r = await rig();
    r.downloader.serve(URL, IMAGE);
    await send(r, 'initiate', { url: te(URL), digest: te(DIGEST) });
    expect(status(lastFromDevice(r).m)).toBe(0x00);
  });

  test('activate with the staged token -> activating persisted -> updater.activate(); reboot -> 0x10 after connect', async () => {
    const r = await rig({ options: { actions: { 1: () => true } } });
    await staged(r);
    await send(r, 'activate', {}, { token: 'upd-1', seq: 4n });
    expect(r.seqs.pendingUpdate()).toEqual({ server: SERVER, token: te('upd-1'), state: 'activating' });
    expect(r.updater.restartRequested).toBe(true);
    expect(r.updater.calls.at(-1)).toBe('activate');
    expect(r.events.at(-1)).toEqual({ type: 'update_activating', server: SERVER, token: te('upd-1') });
    const publishedBefore = fromDevice(r).length;

    // The device restarts. Meanwhile the server sends an action: the broker keeps it in the device's session.
    await r.agent.close();
    await r.c2.publish(DEVICE_TOPIC, build(r, 'action', { actionId: 1 }, { token: 'while-down', seq: 5n }));
    expect(r.broker.queuedFor(DEVICE_CLIENT)).toBe(1);
    r.updater.reboot();
    r.events.length = 0;
    await boot(r, { options: { actions: { 1: () => true } } });
    await r.agent.idle();
    await r.broker.settle();

    expect(r.updater.running).toEqual(IMAGE);
    expect(r.events[0]).toEqual({ type: 'connected', sessionPresent: true });
    const after = fromDevice(r).slice(publishedBefore);
    expect(after.map((x) => [x.m.type, status(x.m), text(x.m.token)])).toEqual([
      ['response', Status.ACTIVATE_SUCCESS, 'upd-1'],
      ['response', Status.ACTION_SUCCESS, 'while-down'],
    ]);
    expect(after[0].bytes).toEqual(expected('response', 5n, te('upd-1'), { status: Status.ACTIVATE_SUCCESS }));
    expect(r.seqs.pendingUpdate()).toBeNull();
    expect(r.updater.calls.slice(-2)).toEqual(['bootState', 'confirm']);
    expect(r.events).toContainEqual({ type: 'update_confirmed', server: SERVER, token: te('upd-1') });
  });

  test.each([
    ['the new image does not come up (rolled back)', { fail: true }, true, Uint8Array.of(0xaa, 0xbb)],
    // Still unconfirmed: the bootloader rolls it back at the next restart.
    ['confirm() fails', {}, false, IMAGE],
  ])('after a reboot where %s -> 0x1F, pending cleared', async (_name, rebootOpts, confirmResult, running) => {
    const r = await rig();
    await staged(r);
    await send(r, 'activate', {}, { token: 'upd-1' });
    await r.agent.close();
    r.updater.confirmResult = confirmResult;
    r.updater.reboot(rebootOpts);
    await boot(r);
    await r.agent.idle();
    await r.broker.settle();
    const out = lastFromDevice(r).m;
    expect([status(out), text(out.token)]).toEqual([Status.ACTIVATE_FAIL, 'upd-1']);
    expect(r.seqs.pendingUpdate()).toBeNull();
    expect(r.updater.running).toEqual(running);
    expect(r.events.filter((e) => e.type === 'update_not_confirmed')).toHaveLength(1);
  });

  describe('an initiate while the running image is still unconfirmed (pending verify)', () => {
    const NEXT = Uint8Array.from({ length: 3000 }, (_, i) => (i * 13 + 1) & 0xff);
    const NEXT_URL = 'http://updates.test/fw-1.6.0.bin';

    /** Activated, restarted into IMAGE, and its confirmation after the restart failed (0x1F): still unconfirmed. */
    async function unconfirmed(): Promise<Rig> {
      const r = await rig();
      await staged(r);
      await send(r, 'activate', {}, { token: 'upd-1' });
      await r.agent.close();
      r.updater.confirmResult = false;
      r.updater.reboot();
      await boot(r);
      await r.agent.idle();
      await r.broker.settle();
      expect([status(lastFromDevice(r).m), r.updater.running]).toEqual([Status.ACTIVATE_FAIL, IMAGE]);
      expect(r.updater.bootState()).toBe('unconfirmed');
      r.updater.calls.length = 0;
      r.events.length = 0;
      r.downloader.serve(NEXT_URL, NEXT);
      return r;
    }

    test('it confirms the running image first, then downloads and stages as usual', async () => {
      const r = await unconfirmed();
      r.updater.confirmResult = true;
      await send(r, 'initiate', initiateFields(NEXT_URL, sha256hex(NEXT)), { token: 'upd-2' });
      expect(r.updater.calls.slice(0, 3)).toEqual(['bootState', 'confirm', 'begin']);
      expect(r.updater.calls.at(-1)).toBe('finish');
      expect([status(lastFromDevice(r).m), text(lastFromDevice(r).m.token)]).toEqual([Status.UPDATE_SUCCESS, 'upd-2']);
      expect(r.updater.inactive).toEqual(NEXT);
      expect(r.logs.events('running_image_confirmed')).toHaveLength(1);
      // A restart before the next activation keeps the confirmed image: no rollback.
      r.updater.reboot();
      expect([r.updater.bootState(), r.updater.running]).toEqual(['normal', IMAGE]);
    });

    test('one that cannot be confirmed: 0xFE, nothing written, and the rollback target is still there', async () => {
      const r = await unconfirmed();
      await send(r, 'initiate', initiateFields(NEXT_URL, sha256hex(NEXT)), { token: 'upd-2' });
      expect(r.updater.calls).toEqual(['bootState', 'confirm']);
      expect(r.downloader.requests).toEqual([URL]); // the first update's only
      expect([status(lastFromDevice(r).m), text(lastFromDevice(r).m.token)]).toEqual([Status.UPDATE_FAIL_FILE, 'upd-2']);
      expect(r.events).toEqual([{ type: 'update_failed', server: SERVER, status: Status.UPDATE_FAIL_FILE }]);
      expect(r.logs.events('update_failed').map((e) => e.detail.why)).toEqual(['running_image_unconfirmed']);
      r.updater.reboot(); // the bootloader rolls the unconfirmed image back to the untouched previous one
      expect([r.updater.bootState(), r.updater.running]).toEqual(['rolled_back', Uint8Array.of(0xaa, 0xbb)]);
    });
  });

  test('an activation the updater knows nothing of (boot state normal) -> 0x1F, pending cleared', async () => {
    const r = await rig();
    await r.agent.close();
    r.seqs.setPendingUpdate({ server: SERVER, token: te('lost'), state: 'activating' });
    r.seqs.setLastAccepted(SERVER, 30n);
    await boot(r);
    await r.agent.idle();
    await r.broker.settle();
    expect(lastFromDevice(r).bytes).toEqual(expected('response', 31n, te('lost'), { status: Status.ACTIVATE_FAIL }));
    expect(r.updater.calls).toEqual(['bootState']);
    expect(r.seqs.pendingUpdate()).toBeNull();
  });

  test('a restart without activation does nothing at connect', async () => {
    const r = await rig();
    await staged(r);
    const n = fromDevice(r).length;
    await r.agent.close();
    r.updater.reboot();
    await boot(r);
    await r.broker.settle();
    expect(fromDevice(r)).toHaveLength(n);
    expect(r.seqs.pendingUpdate()?.state).toBe('staged');
  });

  test('activate with another token -> 0x1F and nothing else', async () => {
    const r = await rig();
    await staged(r);
    const calls = [...r.updater.calls];
    await send(r, 'activate', {}, { token: 'other', seq: 9n });
    const out = lastFromDevice(r);
    expect(out.bytes).toEqual(expected('response', 10n, te('other'), { status: Status.ACTIVATE_FAIL }));
    expect(r.updater.calls).toEqual(calls);
    expect(r.updater.restartRequested).toBe(false);
    expect(r.seqs.pendingUpdate()?.state).toBe('staged');
    // The right token still works afterwards.
    await send(r, 'activate', {}, { token: 'upd-1' });
    expect(r.updater.restartRequested).toBe(true);
  });

  test('an updater that cannot activate -> 0x1F and the update stays staged', async () => {
    const r = await rig();
    await staged(r);
    r.updater.activate = () => {
      throw new Error('partition table locked');
    };
    await send(r, 'activate', {}, { token: 'upd-1' });
    expect(status(lastFromDevice(r).m)).toBe(Status.ACTIVATE_FAIL);
    expect(r.seqs.pendingUpdate()?.state).toBe('staged');
    expect(r.logs.events('activate_failed')).toHaveLength(1);
  });

  test('activate with nothing staged -> 0x1F', async () => {
    const r = await rig();
    await send(r, 'activate', {}, { token: 'upd-1' });
    expect(status(lastFromDevice(r).m)).toBe(Status.ACTIVATE_FAIL);
    expect(r.updater.calls).toEqual([]);
  });

  test('activate from a peer that is not the server is rejected', async () => {
    const r = await rig();
    await staged(r);
    await send(r, 'activate', {}, { token: 'upd-1', sender: PEER });
    expect(r.logs.rejections()).toEqual(['not_permitted']);
    expect(r.updater.restartRequested).toBe(false);
  });

  test('digest mismatch -> 0xFF, image aborted and never activated', async () => {
    const r = await rig();
    r.downloader.serve(URL, IMAGE);
    await send(r, 'initiate', initiateFields(URL, sha256hex(te('something else'))), { token: 'bad' });
    expect(status(lastFromDevice(r).m)).toBe(Status.UPDATE_FAIL_DIGEST);
    expect(r.updater.calls.at(-1)).toBe('abort');
    expect(r.updater.inactive).toBeNull();
    expect(r.seqs.pendingUpdate()).toBeNull();
    await send(r, 'activate', {}, { token: 'bad' });
    expect(status(lastFromDevice(r).m)).toBe(Status.ACTIVATE_FAIL);
    expect(r.updater.calls).not.toContain('activate');
    expect(r.updater.restartRequested).toBe(false);
    expect(r.events.filter((e) => e.type === 'update_failed')).toEqual([{ type: 'update_failed', server: SERVER, status: 0xff }]);
  });

  test('a digest that is not 64 hex digits -> 0xFF without downloading', async () => {
    const r = await rig();
    r.downloader.serve(URL, IMAGE);
    await send(r, 'initiate', initiateFields(URL, 'ab12'));
    expect(status(lastFromDevice(r).m)).toBe(Status.UPDATE_FAIL_DIGEST);
    expect(r.downloader.requests).toEqual([]);
  });

  test.each([
    ['cut off half way', (d: FakeDownloader) => d.serve(URL, IMAGE, { chunkSize: 1000, cutOffAt: 2500 }), Status.UPDATE_FAIL_FILE],
    ['HTTP 500', (d: FakeDownloader) => d.fail(URL, { ok: false, error: 'http_error', status: 500 }), Status.UPDATE_FAIL_HTTP_ERROR],
    ['unknown URL (404)', () => undefined, Status.UPDATE_FAIL_HTTP_ERROR],
    ['unreachable', (d: FakeDownloader) => d.fail(URL, { ok: false, error: 'unreachable', message: 'ECONNREFUSED' }), Status.UPDATE_FAIL_SERVER],
    ['local file error', (d: FakeDownloader) => d.fail(URL, { ok: false, error: 'file', message: 'flash full' }), Status.UPDATE_FAIL_FILE],
    ['aborted', (d: FakeDownloader) => d.fail(URL, { ok: false, error: 'aborted' }), Status.UPDATE_FAIL_FILE],
  ])('download %s -> status 0x%s, updater aborted', async (_name, setup, st) => {
    const r = await rig();
    setup(r.downloader);
    await send(r, 'initiate', initiateFields(), { token: 'u' });
    const out = lastFromDevice(r).m;
    expect([status(out), text(out.token)]).toEqual([st, 'u']);
    expect(r.updater.calls.at(-1)).toBe('abort');
    expect(r.seqs.pendingUpdate()).toBeNull();
  });

  test('cut off: only the bytes that arrived were written, and nothing is staged', async () => {
    const r = await rig();
    r.downloader.serve(URL, IMAGE, { chunkSize: 1000, cutOffAt: 2500 });
    await send(r, 'initiate', initiateFields());
    expect(r.updater.calls).toEqual(['bootState', 'begin', 'write:1000', 'write:1000', 'write:500', 'abort']);
  });

  test('a writer that throws -> 0xFE', async () => {
    const r = await rig();
    r.downloader.serve(URL, IMAGE);
    r.updater.write = () => {
      throw new Error('flash write failed');
    };
    await send(r, 'initiate', initiateFields());
    expect(status(lastFromDevice(r).m)).toBe(Status.UPDATE_FAIL_FILE);
  });

  test('a newer initiate replaces a running download: the old one writes nothing more and is answered 0xFE', async () => {
    const r = await rig();
    let release: () => void = () => {};
    const OTHER = 'http://files.example/fw-2.bin';
    r.downloader.serve(URL, IMAGE, { hold: new Promise<void>((res) => (release = res)) });
    r.downloader.serve(OTHER, IMAGE);
    // Not send(): that waits for the device to finish acting, and this download waits for release().
    await r.c2.publish(DEVICE_TOPIC, build(r, 'initiate', initiateFields(), { token: 'first' }));
    await r.broker.settle();
    expect(r.agent.updating).toBe(true);
    await r.c2.publish(DEVICE_TOPIC, build(r, 'initiate', initiateFields(OTHER), { token: 'second' }));
    await r.broker.settle();
    expect(fromDevice(r).map((x) => [status(x.m), text(x.m.token)])).toEqual([[Status.UPDATE_SUCCESS, 'second']]);
    expect(r.seqs.pendingUpdate()?.token).toEqual(te('second'));
    release();
    await r.agent.idle();
    await r.broker.settle();
    expect(fromDevice(r).map((x) => [status(x.m), text(x.m.token)])).toEqual([
      [Status.UPDATE_SUCCESS, 'second'],
      [Status.UPDATE_FAIL_FILE, 'first'],
    ]);
    // The staged image is the second one, whole: the first download wrote nothing after it was replaced.
    expect(r.seqs.pendingUpdate()?.token).toEqual(te('second'));
    expect(r.updater.inactive).toEqual(IMAGE);
    expect(r.agent.updating).toBe(false);
    expect(r.downloader.requests).toEqual([URL, OTHER]);
  });

  test('an invalid initiate during a download leaves the running one be', async () => {
    const r = await rig();
    let release: () => void = () => {};
    r.downloader.serve(URL, IMAGE, { hold: new Promise<void>((res) => (release = res)) });
    await r.c2.publish(DEVICE_TOPIC, build(r, 'initiate', initiateFields(), { token: 'first' }));
    await r.broker.settle();
    await r.c2.publish(DEVICE_TOPIC, build(r, 'initiate', initiateFields(URL, 'zz'), { token: 'bad' }));
    await r.broker.settle();
    release();
    await r.agent.idle();
    await r.broker.settle();
    expect(fromDevice(r).map((x) => [status(x.m), text(x.m.token)])).toEqual([
      [Status.UPDATE_FAIL_DIGEST, 'bad'],
      [Status.UPDATE_SUCCESS, 'first'],
    ]);
  });

  test('a new initiate replaces a staged update: the old token no longer activates', async () => {
    const r = await rig();
    await staged(r, 'old');
    await send(r, 'initiate', initiateFields(), { token: 'new' });
    expect(r.seqs.pendingUpdate()?.token).toEqual(te('new'));
    await send(r, 'activate', {}, { token: 'old' });
    expect(status(lastFromDevice(r).m)).toBe(Status.ACTIVATE_FAIL);
    expect(r.updater.restartRequested).toBe(false);
  });

  test('initiate from a trusted peer that is not the server is rejected without downloading', async () => {
    const r = await rig();
    r.downloader.serve(URL, IMAGE);
    await send(r, 'initiate', initiateFields(), { sender: PEER });
    expect(r.downloader.requests).toEqual([]);
    expect(r.updater.calls).toEqual([]);
    expect(r.logs.rejections()).toEqual(['not_permitted']);
  });
});

// ------------------------------------------------------------------------------------------------ events, log

describe('events and log', () => {
  test('on() adds a listener and returns its remover; a throwing listener is logged, not fatal', async () => {
    const r = await rig({ options: { actions: { 1: () => true } } });
    const seen: string[] = [];
    const off = r.agent.on((e) => seen.push(e.type));
    r.agent.on(() => {
      throw new Error('listener bug');
    });
    await send(r, 'action', { actionId: 1 });
    off();
    await send(r, 'action', { actionId: 1 });
    expect(seen).toEqual(['action']);
    expect(r.logs.events('listener_threw')).toHaveLength(2);
    expect(fromDevice(r)).toHaveLength(2);
  });

  test('disconnect and reconnect are reported; messages sent meanwhile arrive after reconnect', async () => {
    const r = await rig({ options: { actions: { 1: () => true } } });
    r.transport.disconnect('wifi lost');
    await send(r, 'action', { actionId: 1 }, { token: 'queued' });
    expect(fromDevice(r)).toHaveLength(0);
    r.transport.reconnect();
    await r.broker.settle();
    await r.agent.idle();
    await r.broker.settle();
    expect(text(lastFromDevice(r).m.token)).toBe('queued');
    expect(r.events.map((e) => e.type)).toEqual(['connected', 'disconnected', 'connected', 'action']);
    expect(r.events[1]).toEqual({ type: 'disconnected', reason: 'wifi lost' });
    expect(r.events[2]).toEqual({ type: 'connected', sessionPresent: true });
  });

  test('one log line per rejected message, with its reason and sender', async () => {
    const r = await rig();
    await send(r, 'action', { actionId: 1 }, { sender: STRANGER, key: peerPriv, seq: 77n });
    expect(r.logs.events('rejected')).toEqual([
      {
        level: 'warn',
        event: 'rejected',
        detail: { reason: 'unknown_sender', type: 'action', sender: '1234567890abcdef', seq: '77' },
      },
    ]);
  });

  test('after close() nothing is acted on and methods refuse', async () => {
    const r = await rig({ options: { actions: { 1: () => true } } });
    await r.agent.close();
    await expect(r.agent.join()).rejects.toMatchObject({ reason: 'not_started' });
    await expect(r.agent.resign()).rejects.toMatchObject({ reason: 'not_started' });
    expect(r.transport.isConnected).toBe(false);
  });
});

// ------------------------------------------------------------------------------------------------ failures half way

describe('a failing store or a close() half way leaves consistent state', () => {
  const SEEN = te('0f1e2d3c4b5a69788796a5b4c3d2e1f0');
  const IMAGE = Uint8Array.from({ length: 3000 }, (_, i) => (i * 17 + 3) & 0xff);
  const URL = 'http://updates.test/fw-2.0.0.bin';

  test('close() while an observe hook runs: its timer is cleared and nothing is sent afterwards', async () => {
    const r = await rig({ options: { observe: () => new Promise(() => {}), observeTimeoutMs: 3000 } });
    await r.c2.publish(
      DEVICE_TOPIC,
      build(r, 'observation_request', {
        joiningDeviceId: 0x4c0ffee000000001n,
        encrypted: sealEnvelope(crypto, devicePub, SEEN, seededRandom(5)),
      }, { token: 'slow', seq: 4n }),
    );
    await r.broker.settle();
    expect(r.clock.pending).toBe(1);
    await r.agent.close();
    expect(r.clock.pending).toBe(0);
    await r.agent.idle();
    expect(fromDevice(r)).toHaveLength(0);
    expect(r.seqs.lastSent(SERVER)).toBe(0n);
  });

  test('a join result the key store cannot keep ends the join as failed, instead of leaving join() waiting', async () => {
    const r = await rig({ serverId: null });
    const outcome = r.agent.join('simple', undefined, SERVER);
    await r.broker.settle();
    const token = lastFromDevice(r).m.token;
    r.keys.setServerId = () => {
      throw new Error('flash worn out');
    };
    await send(r, 'response', { status: Status.JOIN_SUCCESS }, { token });
    const settled = await Promise.race([outcome, new Promise((res) => setTimeout(() => res('still waiting'), 100))]);
    expect(settled).toBe('failed');
    expect(r.keys.serverId()).toBeNull();
    expect(r.events.at(-1)).toEqual({ type: 'join_failed', server: SERVER, kind: 'simple', reason: 'failed' });
    expect(r.logs.events('join_not_saved')).toHaveLength(1);
  });

  test('a deregister_command whose server cannot be cleared leaves the key too (no server without its key)', async () => {
    const r = await rig();
    r.keys.setServerId = () => {
      throw new Error('flash worn out');
    };
    await send(r, 'deregister_command', {});
    expect(r.keys.serverId()).toBe(SERVER);
    expect(r.keys.peerKey(SERVER)).not.toBeNull();
    expect(r.logs.events('handler_failed')).toHaveLength(1);
  });

  test('a staged update the store cannot persist is answered 0xFE and its image discarded', async () => {
    const r = await rig();
    r.downloader.serve(URL, IMAGE);
    const setPending = r.seqs.setPendingUpdate.bind(r.seqs);
    r.seqs.setPendingUpdate = (p) => {
      if (p !== null && p.state === 'staged') throw new Error('flash worn out');
      setPending(p);
    };
    await send(r, 'initiate', { url: te(URL), digest: te(sha256hex(IMAGE)) }, { token: 'upd-9', seq: 2n });
    const out = lastFromDevice(r).m;
    expect([status(out), text(out.token)]).toEqual([Status.UPDATE_FAIL_FILE, 'upd-9']);
    expect(r.updater.calls.slice(-2)).toEqual(['finish', 'abort']);
    expect(r.seqs.pendingUpdate()).toBeNull();
    expect(r.events.at(-1)).toEqual({ type: 'update_failed', server: SERVER, status: Status.UPDATE_FAIL_FILE });
  });

  test('a presenter that throws: the secret is still wiped, and the join goes on to its result', async () => {
    const r = await rig({ serverId: null });
    let handed: Uint8Array | null = null;
    r.presenter.showChallenge = (secret: Uint8Array) => {
      handed = secret;
      throw new Error('LED matrix not answering');
    };
    const outcome = r.agent.join('human', undefined, SERVER);
    await r.broker.settle();
    await send(r, 'human_join_response', { encrypted: sealEnvelope(crypto, devicePub, SEEN, seededRandom(9)) }, { token: 'hj' });
    expect(handed).not.toBeNull();
    expect([...(handed as unknown as Uint8Array)].every((b) => b === 0)).toBe(true);
    expect(r.logs.events('show_challenge_failed')).toHaveLength(1);
    await send(r, 'response', { status: Status.JOIN_SUCCESS }, { token: 'hj' });
    await expect(outcome).resolves.toBe('joined');
  });

  test('a sequence store that cannot persist the counter: the message is dropped, nothing throws into the transport', async () => {
    let ran = 0;
    const r = await rig({ options: { actions: { 1: () => (ran++, true) } } });
    r.seqs.setLastAccepted = () => {
      throw new Error('flash worn out');
    };
    const bytes = build(r, 'action', { actionId: 1 }, { seq: 3n });
    expect(() => r.transport.deliver(DEVICE_TOPIC, bytes)).not.toThrow();
    await r.agent.idle();
    expect(ran).toBe(0);
    expect(r.seqs.lastAccepted(SERVER)).toBe(0n);
    expect(fromDevice(r)).toHaveLength(0);
    expect(r.logs.events('receive_failed')).toHaveLength(1);
  });

  test('terminated while downloading: the image is discarded, nothing is staged for the former server', async () => {
    const r = await rig();
    let release: () => void = () => {};
    r.downloader.serve(URL, IMAGE, { hold: new Promise<void>((res) => (release = res)) });
    await r.c2.publish(DEVICE_TOPIC, build(r, 'initiate', { url: te(URL), digest: te(sha256hex(IMAGE)) }, { token: 'upd-t' }));
    await r.broker.settle();
    expect(r.agent.updating).toBe(true);
    // Not send(): that waits for the device to finish acting, and this download waits for release().
    await r.c2.publish(DEVICE_TOPIC, build(r, 'terminate_command', {}));
    await r.broker.settle();
    release();
    await r.agent.idle();
    await r.broker.settle();
    expect(r.keys.serverId()).toBeNull();
    expect(r.seqs.pendingUpdate()).toBeNull();
    expect(r.updater.calls.at(-1)).toBe('abort');
    const out = lastFromDevice(r).m;
    expect([status(out), text(out.token)]).toEqual([Status.UPDATE_FAIL_FILE, 'upd-t']);
  });

  test('hostile but signed field values are answered or ignored, never thrown on', async () => {
    const r = await rig({ options: { onData: () => {} } });
    await send(r, 'initiate', { url: Uint8Array.of(0xff, 0xfe, 0x00), digest: te('ab'.repeat(32)) }, { token: '' });
    expect([status(lastFromDevice(r).m), lastFromDevice(r).m.token.length]).toEqual([Status.UPDATE_FAIL_FILE, 0]);
    await send(r, 'initiate', { url: te(URL), digest: te('abc') });
    expect(status(lastFromDevice(r).m)).toBe(Status.UPDATE_FAIL_DIGEST);
    await send(r, 'data', { dataId: new Uint8Array(65535).fill(0x41), data: new Uint8Array(0) });
    await send(r, 'data', { dataId: Uint8Array.of(0xc0, 0x80), data: new Uint8Array(0) });
    await send(r, 'activate', {}, { token: '' });
    expect(status(lastFromDevice(r).m)).toBe(Status.ACTIVATE_FAIL);
    expect(r.logs.events('handler_failed')).toHaveLength(0);
    expect(r.downloader.requests).toEqual([]);
    expect(r.events.filter((e) => e.type === 'data').map((e) => (e as { length: number }).length)).toEqual([0]);
  });
});
