/**
 * Wire interoperability with the reference implementation (pySRUP over the reference C++ library), from traffic
 * recorded on a Mosquitto broker between the reference and this project (test/data/interop, see its README):
 *
 *   c2-with-pysrup-devices.json   our C2 engine and three reference devices: simple join, action, ID request,
 *                                 data both ways, update (success, bad digest, 404, unreachable) and activate,
 *                                 human-moderated join, observed join with a reference device as observer
 *   agent-with-pysrup-server.json three of our device agents and a reference C2 server: simple join, ID request,
 *                                 actions (done / failed / unknown), data (int32, text, double), update, activate
 *                                 and the confirmation after the restart, human-moderated join, observed join
 *                                 with one of our agents as observer
 *   c2-with-pysrup-devices-leaving.json    our C2 engine and four reference devices: join command, terminate,
 *                                 resign, deregister request, deregister command
 *   agent-with-pysrup-server-leaving.json  three of our agents and a reference server: join command, deregister
 *                                 command, resign, deregister request
 *
 * Every recorded message is checked on its own (strict decode, signature, byte-exact re-encoding, topic, token,
 * sequence rules). Then each conversation is replayed through the in-memory broker: the reference side's messages
 * are injected exactly as recorded, and everything our side publishes must equal, byte for byte, what it
 * published in the recorded run — which the reference accepted. Our side runs with the recorded seeds, so its
 * tokens, secrets and envelopes are the same; signatures are deterministic (PKCS#1 v1.5).
 */
import fs from 'node:fs';
import path from 'node:path';
import { openEnvelope } from '../crypto/envelope.js';
import { parsePrivateKeyPem, parsePublicKeyPem } from '../crypto/keys.js';
import { pureCrypto } from '../crypto/pure.js';
import type { RandomBytes, RsaPrivateKey, RsaPublicKey } from '../crypto/types.js';
import { nodeCrypto } from '../hosts/node/crypto.js';
import { srupClientId } from '../hosts/node/mqtt.js';
import { Agent } from '../modules/agent/agent.js';
import type { AgentEvent } from '../modules/agent/agent.js';
import { MemoryKeyStore, MemorySequenceStore } from '../modules/agent/memory.js';
import { C2Engine, MemoryRegistry } from '../modules/c2/index.js';
import type { C2Event } from '../modules/c2/index.js';
import { fromHex, idTopicHex, toHex } from '../modules/srup/bytes.js';
import { decode, encode } from '../modules/srup/codec.js';
import type { Message } from '../modules/srup/schema.js';
import { Status } from '../modules/srup/schema.js';
import { verify } from '../modules/srup/session.js';
import { deviceTopic, joinTopic } from '../modules/srup/topics.js';
import { CollectingLog, FakeDownloader, FakeUpdater, ManualClock, RecordingPresenter, seededRandom } from './support/fakes.js';
import { MemoryBroker } from './support/memory-broker.js';

// ------------------------------------------------------------------------------------------------ recorded data

const DIR = path.join(__dirname, 'data', 'interop');

interface Trigger {
  call: string;
  actionId?: number;
  dataId?: string;
  kind?: string;
  value?: number;
  url?: string;
  digest?: string;
  observer?: string;
}

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
  trigger?: Trigger;
  hex: string;
}

interface ReferenceEvent {
  ev: string;
  [k: string]: unknown;
}

interface Conversation {
  about: string;
  /** What the reference side logged (its hooks, its counters): per device, or one list for a server. */
  reference: ReferenceEvent[] | Record<string, ReferenceEvent[]>;
  server: string;
  ids: Record<string, string>;
  firmware?: { url: string; size: number; sha256: string };
  messages: Recorded[];
}

interface ConversationA extends Conversation {
  engine: { random: { seededRandom: number }; provisioned: string[] };
  reference: Record<string, ReferenceEvent[]>;
}

interface ConversationB extends Conversation {
  agents: Record<string, { seededRandom: number; serverAtStart?: null }> & { firmwareName: string; firmwareVersion: string };
  reference: ReferenceEvent[];
}

const load = <T>(f: string): T => JSON.parse(fs.readFileSync(path.join(DIR, f), 'utf8')) as T;
const A = load<ConversationA>('c2-with-pysrup-devices.json');
const B = load<ConversationB>('agent-with-pysrup-server.json');
const C = load<ConversationA>('c2-with-pysrup-devices-leaving.json');
const D = load<ConversationB>('agent-with-pysrup-server-leaving.json');
const CONVERSATIONS: [string, Conversation][] = [
  ['our C2 with pySRUP devices', A],
  ['our agents with a pySRUP server', B],
  ['our C2 with pySRUP devices, join command and leaving', C],
  ['our agents with a pySRUP server, join command and leaving', D],
];

const pemOf = (name: string, kind: 'public' | 'private') => fs.readFileSync(path.join(DIR, 'keys', `${name}.${kind}.pem`), 'utf8');
const publicKeys = new Map<string, RsaPublicKey>();
const privateKeys = new Map<string, RsaPrivateKey>();
const pub = (name: string): RsaPublicKey => {
  if (!publicKeys.has(name)) publicKeys.set(name, parsePublicKeyPem(pemOf(name, 'public')));
  return publicKeys.get(name) as RsaPublicKey;
};
const priv = (name: string): RsaPrivateKey => {
  if (!privateKeys.has(name)) privateKeys.set(name, parsePrivateKeyPem(pemOf(name, 'private')));
  return privateKeys.get(name) as RsaPrivateKey;
};
const idOf = (c: Conversation, name: string): bigint => BigInt('0x' + c.ids[name]);
const nameOf = (c: Conversation, id: bigint): string => {
  const n = Object.keys(c.ids).find((k) => idOf(c, k) === id);
  if (n === undefined) throw new Error(`unknown id ${id.toString(16)}`);
  return n;
};
const ascii = (b: Uint8Array) => Buffer.from(b).toString('latin1');
const firmware = (size: number) => Uint8Array.from({ length: size }, (_, i) => (31 * i + 7) & 255);
const refEvents = (events: ReferenceEvent[], ev: string) => events.filter((e) => e.ev === ev);

/** Our side of each conversation; the rest are reference peers. */
const OURS_A = new Set(['c2']);
const OURS_B = new Set(['tsdev', 'tshdev', 'tsodev']);
const OURS_D = new Set(['tscdev', 'tsrdev', 'tsxdev']);
const FIRMWARE_A = A.firmware as NonNullable<Conversation['firmware']>;
const FIRMWARE_B = B.firmware as NonNullable<Conversation['firmware']>;

// ------------------------------------------------------------------------------------------------ each message

describe.each(CONVERSATIONS)('recorded traffic, %s: every message', (_label, conv) => {
  const rows = conv.messages.map((r, i) => [`${i} ${r.from} -> ${r.to} ${r.type} seq ${r.seq}`, r] as const);

  test.each(rows)('%s: strict decode, both Crypto implementations verify, re-encodes byte for byte', (_n, r) => {
    const bytes = fromHex(r.hex);
    const m = decode(bytes);
    expect(m.type).toBe(r.type);
    expect(m.sequenceId).toBe(BigInt(r.seq));
    expect(nameOf(conv, m.senderId)).toBe(r.from);
    expect(ascii(m.token)).toBe(r.token);
    expect(verify(nodeCrypto, pub(r.from), m)).toBe(true);
    expect(verify(pureCrypto, pub(r.from), m)).toBe(true);
    expect(toHex(encode(m))).toBe(r.hex);
  });

  test.each(rows)('%s: topic as our topic rules build it (lowercase hex, no leading zeros)', (_n, r) => {
    const m = decode(fromHex(r.hex));
    const joinRequest = m.type === 'join_request' || m.type === 'human_join_request' || m.type === 'observed_join_request';
    const device = r.from === conv.server ? idOf(conv, r.to) : m.senderId;
    expect(r.topic).toBe(joinRequest ? joinTopic(idOf(conv, r.to), m.senderId) : deviceTopic(device));
    expect(r.topic.split('/').slice(1)).toEqual(r.topic.split('/').slice(1).map((p) => (p === 'servers' ? p : idTopicHex(BigInt('0x' + p)))));
  });
});

describe.each(CONVERSATIONS)('recorded traffic, %s: conventions', (_label, conv) => {
  const decoded = conv.messages.map((r) => ({ r, m: decode(fromHex(r.hex)) }));
  const pairs = new Map<string, { r: Recorded; m: Message }[]>();
  for (const x of decoded) {
    const dev = x.r.from === conv.server ? x.r.to : x.r.from;
    const list = pairs.get(dev) ?? [];
    list.push(x);
    pairs.set(dev, list);
  }

  test('some ids have a leading zero nibble, and their topics drop it', () => {
    const short = Object.entries(conv.ids).filter(([, hex]) => hex.length < 16);
    expect(short.length).toBeGreaterThan(0);
    for (const [name, hex] of short) {
      expect(idTopicHex(idOf(conv, name))).toBe(hex);
      expect(conv.messages.some((r) => r.topic.split('/').includes(hex))).toBe(true);
    }
  });

  test('one sequence counter per device/server pair, shared by both directions: 1, 2, 3, ... (never 0)', () => {
    for (const list of pairs.values()) {
      expect(list.map((x) => Number(x.m.sequenceId))).toEqual(list.map((_x, i) => i + 1));
    }
  });

  test("every response echoes a token: the request's, or for a moderated join the server's own 0x0C / 0x0E", () => {
    for (const list of pairs.values()) {
      list.forEach((x, i) => {
        if (x.m.type !== 'response') return;
        const earlier = list.slice(0, i);
        const from = earlier.filter((y) => y.r.token === x.r.token).map((y) => (y.r.from === x.r.from ? y.m.type : 'peer'));
        if (x.r.status !== undefined && x.r.status >= 0x50 && x.r.status <= 0x5f && x.r.from === conv.server) {
          // A join result: the request's token (simple join) or that of the challenge the server sent.
          const last = earlier.filter((y) => y.m.type.endsWith('join_request') || y.m.type.endsWith('join_response')).pop();
          expect(last?.r.token).toBe(x.r.token);
        } else {
          expect(from).toContain('peer');
        }
      });
    }
  });

  test('an activate carries the token of the initiate it activates, after a 0x00 answer with that token', () => {
    for (const list of pairs.values()) {
      list.forEach((x, i) => {
        if (x.m.type !== 'activate') return;
        const before = list.slice(0, i);
        expect(before.some((y) => y.m.type === 'initiate' && y.r.token === x.r.token)).toBe(true);
        expect(before.some((y) => y.m.type === 'response' && y.r.status === Status.UPDATE_SUCCESS && y.r.token === x.r.token)).toBe(true);
      });
    }
  });

  test('new conversations use uuid4 text tokens (36 characters)', () => {
    for (const { r } of decoded) expect(r.token).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  test('initiate url and digest are text with exactly one trailing 00; the digest is lowercase hex SHA-256', () => {
    const initiates = decoded.filter((x) => x.m.type === 'initiate');
    expect(initiates.length > 0).toBe(conv.firmware !== undefined);
    for (const { m } of initiates) {
      if (m.type !== 'initiate') continue;
      for (const f of [m.fields.url, m.fields.digest]) {
        expect(f[f.length - 1]).toBe(0);
        expect(f.subarray(0, f.length - 1).includes(0)).toBe(false);
      }
      expect(ascii(m.fields.digest.subarray(0, 64))).toMatch(/^[0-9a-f]{64}$/);
      expect(m.fields.digest.length).toBe(65);
    }
  });

  test('ID requests are answered with data "IDENTIFICATION_RESPONSE" (no terminator in the data id)', () => {
    for (const list of pairs.values()) {
      list.forEach((x, i) => {
        if (x.m.type !== 'id_request') return;
        const answer = list.slice(i + 1).find((y) => y.r.from !== x.r.from);
        expect(answer?.m.type).toBe('data');
        if (answer?.m.type === 'data') expect(ascii(answer.m.fields.dataId)).toBe('IDENTIFICATION_RESPONSE');
      });
    }
  });

  test('the reference uses "SRUP Client: <id>" as its MQTT client id, as srupClientId builds it', () => {
    const events = Array.isArray(conv.reference) ? conv.reference : Object.values(conv.reference).flat();
    const ids = refEvents(events, 'mqtt_client').map((e) => String(e.client_id));
    expect(ids.length).toBeGreaterThan(0);
    for (const cid of ids) {
      const hex = cid.replace(/^SRUP Client: /, '');
      expect(srupClientId(BigInt('0x' + hex))).toBe(cid);
    }
  });
});

// ------------------------------------------------------------------------------------------------ facts about the reference

describe('recorded traffic: what the reference does and does not answer', () => {
  const byDevice = (c: Conversation, dev: string) => c.messages.filter((r) => r.from === dev || r.to === dev);

  test('a pySRUP device answers neither an action nor an activate (no response carries their tokens)', () => {
    const msgs = byDevice(A, 'pydev');
    for (const t of ['action', 'activate']) {
      const sent = msgs.filter((r) => r.type === t && r.from === 'c2');
      expect(sent.length).toBe(1);
      const answers = msgs.filter((r) => r.from === 'pydev' && r.type === 'response' && r.token === sent[0].token);
      // The activate's token is the initiate's: its only response is the 0x00 that came before the activate.
      expect(answers.every((r) => r.status === Status.UPDATE_SUCCESS)).toBe(true);
    }
    expect(refEvents(A.reference.pydev, 'on_action').map((e) => e.action_id)).toEqual([7]);
    expect(refEvents(A.reference.pydev, 'on_update').map((e) => e.size)).toEqual([FIRMWARE_A.size]);
  });

  test('a pySRUP device answers an ID request with a new token and pySRUP\'s default text', () => {
    const msgs = byDevice(A, 'pydev');
    const i = msgs.findIndex((r) => r.type === 'id_request');
    const answer = msgs[i + 1];
    expect(answer.type).toBe('data');
    expect(answer.token).not.toBe(msgs[i].token);
    const m = decode(fromHex(answer.hex));
    if (m.type !== 'data') throw new Error('not data');
    expect(ascii(m.fields.data)).toMatch(/^pySRUP version <function .*<lambda> at 0x[0-9a-f]+>\.<function .*<lambda> at 0x[0-9a-f]+>$/);
  });

  test('pySRUP update statuses: 0x00 success, 0xFF digest, 0xFE HTTP 404, 0xFD unreachable', () => {
    const statuses = A.messages.filter((r) => r.from === 'pydev' && r.type === 'response').map((r) => r.status);
    expect(statuses).toEqual([0x00, 0xff, 0xfe, 0xfd]);
  });

  test('a pySRUP server ignores the answers it does not expect, and accepted all of ours', () => {
    const responses = refEvents(B.reference, 'on_response').map((e) => e.status);
    expect(responses).toEqual([0x20, 0x2f, 0x2e, 0x00, 0x10, 0x60]);
    expect(refEvents(B.reference, 'on_data').map((e) => e.text)).toEqual([
      `${B.agents.firmwareName} ${B.agents.firmwareVersion}`,
      `${B.agents.firmwareName} ${B.agents.firmwareVersion}`,
      `${B.agents.firmwareName} ${B.agents.firmwareVersion}`,
    ]);
    expect(refEvents(B.reference, 'on_update_success').length).toBe(1);
  });

  test('a pySRUP server cannot send a terminate command (send_SRUP_Terminate raises on a hex id), only deregister', () => {
    expect(refEvents(D.reference, 'terminate_exception').map((e) => e.error)).toEqual(['ValueError()']);
    expect(D.messages.some((r) => r.type === 'terminate_command')).toBe(false);
    expect(D.messages.filter((r) => r.type === 'deregister_command').length).toBe(1);
  });

  test('pySRUP data payloads: int as int32 LE, str as raw UTF-8, float as double LE', () => {
    const data = B.messages.filter((r) => r.from === 'pysrv' && r.type === 'data').map((r) => decode(fromHex(r.hex)));
    const got = data.map((m) => (m.type === 'data' ? [ascii(m.fields.dataId), toHex(m.fields.data)] : null));
    expect(got).toEqual([
      ['setpoint', '2a000000'],
      ['label', toHex(Buffer.from('hello'))],
      ['gain', '000000000000e03f'],
    ]);
  });
});

// ------------------------------------------------------------------------------------------------ envelopes

describe('envelopes across the two implementations', () => {
  const envelopes = (c: Conversation) =>
    c.messages
      .map((r) => ({ r, m: decode(fromHex(r.hex)) }))
      .filter((x) => x.m.type === 'human_join_response' || x.m.type === 'observed_join_response' || x.m.type === 'observation_request');

  test('reference-sealed secrets open with our code (node and pure crypto) to the values the reference generated', () => {
    const values = new Map<string, string>();
    for (const e of refEvents(B.reference, 'human_join_value')) values.set(String(e.device), String(e.value));
    for (const e of refEvents(B.reference, 'observed_join_value')) values.set(String(e.device), String(e.value));
    const joinValueFor = (r: Recorded, m: Message) =>
      m.type === 'observation_request' ? values.get(idTopicHex(m.fields.joiningDeviceId)) : values.get(B.ids[r.to]);
    const list = envelopes(B);
    expect(list.map((x) => x.m.type)).toEqual(['human_join_response', 'observed_join_response', 'observation_request']);
    for (const { r, m } of list) {
      if (!('encrypted' in m.fields)) throw new Error('no envelope');
      for (const crypto of [nodeCrypto, pureCrypto]) {
        expect(ascii(openEnvelope(crypto, priv(r.to), m.fields.encrypted))).toBe(joinValueFor(r, m));
      }
    }
  });

  test('our sealed secrets are the values the reference decrypted', () => {
    const shown: Record<string, string> = {
      pyhdev: String(refEvents(A.reference.pyhdev, 'on_human_join_response')[0].value),
      pyodev: String(refEvents(A.reference.pyodev, 'on_observed_join_response')[0].value),
    };
    const observed = String(refEvents(A.reference.pyhdev, 'on_observation_request')[0].value);
    expect(observed).toBe(shown.pyodev);
    for (const { r, m } of envelopes(A)) {
      if (!('encrypted' in m.fields)) throw new Error('no envelope');
      const expected = m.type === 'observation_request' ? observed : shown[r.to];
      expect(ascii(openEnvelope(pureCrypto, priv(r.to), m.fields.encrypted))).toBe(expected);
    }
  });
});

// ------------------------------------------------------------------------------------------------ replay driver

interface Replay {
  broker: MemoryBroker;
  /** Client ids of our side. */
  ours: Set<string>;
  settle(): Promise<void>;
  /** Makes our side send a message it does not send by itself (an API call, a restart). */
  trigger(r: Recorded): Promise<void>;
}

/**
 * Walks the recorded messages in order: injects the reference's, and checks that ours come out of our side, in
 * the same order, with the same topic and the same bytes.
 */
async function replay(conv: Conversation, oursNames: Set<string>, w: Replay): Promise<void> {
  const outputs = () => w.broker.log.filter((p) => p.client !== null && w.ours.has(p.client));
  let taken = 0;
  for (const [i, r] of conv.messages.entries()) {
    if (!oursNames.has(r.from)) {
      w.broker.inject(r.topic, fromHex(r.hex));
      await w.settle();
      continue;
    }
    await w.settle();
    if (outputs().length <= taken) {
      if (r.trigger === undefined) throw new Error(`message ${i}: ${r.type} from ${r.from} expected, nothing was sent`);
      await w.trigger(r);
      await w.settle();
    }
    const out = outputs()[taken++];
    expect({ i, type: r.type, topic: out?.topic, hex: out === undefined ? null : toHex(out.payload) }).toEqual({
      i,
      type: r.type,
      topic: r.topic,
      hex: r.hex,
    });
  }
  await w.settle();
  expect(outputs().length).toBe(taken);
}

// ------------------------------------------------------------------------------------------------ our C2 engine

/** Our C2 engine as it ran in a recorded conversation: same id, key, random stream and options. */
function recordedEngine(conv: ConversationA) {
  const broker = new MemoryBroker();
  const server = idOf(conv, 'c2');
  const clientId = srupClientId(server);
  const registry = new MemoryRegistry();
  const log = new CollectingLog();
  const events: C2Event[] = [];
  const engine = new C2Engine(
    {
      transport: broker.client(clientId),
      registry,
      crypto: nodeCrypto,
      random: seededRandom(conv.engine.random.seededRandom),
      clock: new ManualClock(1_000_000),
      log: log.log,
      serverId: server,
      privateKey: priv('c2'),
    },
    { autoActivate: true, onEvent: (e) => events.push(e) },
  );
  return { broker, clientId, registry, log, events, engine };
}

test('our C2 engine, replayed against the recorded pySRUP devices, sends exactly what they accepted', async () => {
  const { broker, clientId, registry, log, events, engine } = recordedEngine(A);
  await engine.start();
  for (const d of ['pydev', 'pyhdev', 'pyodev']) engine.provision(idOf(A, d), pub(d));

  const pending: Promise<unknown>[] = [];
  const results = new Map<string, unknown[]>();
  const keep = (name: string, p: Promise<unknown>) => {
    const list = results.get(name) ?? [];
    results.set(name, list);
    pending.push(
      p.then(
        (v) => list.push(v),
        (e: unknown) => list.push(e),
      ),
    );
  };
  const settle = async () => {
    for (let i = 0; i < 3; i++) {
      await broker.settle();
      await engine.idle();
    }
  };

  await replay(A, OURS_A, {
    broker,
    ours: new Set([clientId]),
    settle,
    async trigger(r) {
      const t = r.trigger as Trigger;
      const dev = idOf(A, r.to);
      if (t.call === 'sendAction') keep('action', engine.sendAction(dev, t.actionId as number));
      else if (t.call === 'requestId') keep(`id ${r.to}`, engine.requestId(dev));
      else if (t.call === 'sendData') keep('data', engine.sendData(dev, t.dataId as string, 'int32', t.value as number));
      else if (t.call === 'initiateUpdate') keep('initiate', engine.initiateUpdate(dev, t.url as string, t.digest as string));
      else if (t.call === 'approveJoin') {
        // The operator compares the secret on the console with what the device shows (the reference decrypted it).
        const c = events.find((e): e is Extract<C2Event, { type: 'challenge' }> => e.type === 'challenge' && e.device === dev);
        expect(c?.challenge.secret).toBe(refEvents(A.reference[r.to], 'on_human_join_response')[0].value);
        await engine.approveJoin(dev);
      } else throw new Error(`unknown trigger ${t.call}`);
    },
  });

  // Nothing the reference sent was refused.
  expect(log.rejections()).toEqual([]);
  for (const d of ['pydev', 'pyhdev', 'pyodev']) expect(engine.device(idOf(A, d))?.state).toBe('joined');

  // The observed join: the secret sealed to the joining device was the one the reference observer compared.
  const observed = events.find((e): e is Extract<C2Event, { type: 'challenge' }> => e.type === 'challenge' && e.device === idOf(A, 'pyodev'));
  expect(observed?.challenge.secret).toBe(refEvents(A.reference.pyodev, 'on_observed_join_response')[0].value);
  expect(events.filter((e) => e.type === 'observation_result').map((e) => (e as { status: number }).status)).toEqual([Status.OBSERVED_JOIN_VALID]);

  // Answers settled what they answer: the three ID requests, the four initiates (0x00, 0xFF, 0xFE, 0xFD).
  const defaultId = (name: string) => {
    const r = A.messages.find((x) => x.from === name && x.type === 'data' && A.messages[A.messages.indexOf(x) - 1].type === 'id_request') as Recorded;
    const m = decode(fromHex(r.hex));
    return m.type === 'data' ? ascii(m.fields.data) : null;
  };
  await Promise.all(pending.slice(1)); // all but the action, which the reference never answers
  expect(results.get('id pydev')).toEqual([defaultId('pydev')]);
  expect(results.get('id pyhdev')).toEqual([defaultId('pyhdev')]);
  expect(results.get('id pyodev')).toEqual([defaultId('pyodev')]);
  expect((results.get('initiate') as { status: number }[]).map((u) => u.status)).toEqual([0x00, 0xff, 0xfe, 0xfd]);
  expect(registry.updates(idOf(A, 'pydev')).map((u) => u.state)).toEqual(['activated', 'failed', 'failed', 'failed']);
  // Data the reference device sent on its own (after the action): a double, 21.5.
  const data = events.filter((e): e is Extract<C2Event, { type: 'data' }> => e.type === 'data');
  expect(data.map((e) => [e.dataId, Buffer.from(e.data).readDoubleLE(0)])).toEqual([['temperature', 21.5]]);

  // Both sides end on the same counter: the reference's final counter for this server equals ours.
  for (const d of ['pydev', 'pyhdev', 'pyodev']) {
    const s = registry.sequence(idOf(A, d));
    const theirs = refEvents(A.reference[d], 'final')[0].seq_ids as Record<string, number>;
    expect(Number(s.lastSent > s.lastAccepted ? s.lastSent : s.lastAccepted)).toBe(theirs[A.ids.c2]);
  }
  engine.stop();
});

// ------------------------------------------------------------------------------------------------ our device agent

test('our device agents, replayed against the recorded pySRUP server, send exactly what it accepted', async () => {
  const broker = new MemoryBroker();
  const server = idOf(B, 'pysrv');
  const image = firmware(FIRMWARE_B.size);
  expect(toHex(nodeCrypto.sha256(image))).toBe(FIRMWARE_B.sha256);

  interface Dev {
    name: string;
    id: bigint;
    keys: MemoryKeyStore;
    seqs: MemorySequenceStore;
    updater: FakeUpdater;
    presenter: RecordingPresenter;
    downloader: FakeDownloader;
    random: RandomBytes;
    log: CollectingLog;
    events: AgentEvent[];
    agent: Agent;
    boot(): void;
  }
  const devs = new Map<string, Dev>();
  const byId = (id: bigint) => [...devs.values()].find((d) => d.id === id);
  for (const name of OURS_B) {
    const id = idOf(B, name);
    const d = {
      name,
      id,
      keys: new MemoryKeyStore({ deviceId: id, privateKey: priv(name), serverId: server, peers: [[server, pub('pysrv')]] }),
      seqs: new MemorySequenceStore(),
      updater: new FakeUpdater(Uint8Array.of(1)),
      presenter: new RecordingPresenter(),
      downloader: new FakeDownloader().serve(FIRMWARE_B.url, image),
      random: seededRandom(B.agents[name].seededRandom),
      log: new CollectingLog(),
      events: [] as AgentEvent[],
    } as Dev;
    d.boot = () => {
      d.agent = new Agent(
        {
          transport: broker.client(srupClientId(id)),
          keys: d.keys,
          sequences: d.seqs,
          clock: new ManualClock(),
          crypto: nodeCrypto,
          random: d.random, // one stream across restarts, as in the recorded run
          presenter: d.presenter,
          downloader: d.downloader,
          updater: d.updater,
          log: d.log.log,
        },
        {
          firmwareName: B.agents.firmwareName,
          firmwareVersion: B.agents.firmwareVersion,
          actions: { 7: () => true, 8: () => false },
          // The observer reads what the joining device shows.
          observe: (joining) => byId(joining)?.presenter.current ?? null,
          onEvent: (e) => d.events.push(e),
        },
      );
      d.agent.start();
    };
    d.boot();
    devs.set(name, d);
  }
  const settle = async () => {
    for (let i = 0; i < 3; i++) {
      await broker.settle();
      for (const d of devs.values()) await d.agent.idle();
    }
  };
  await settle();

  const joins = new Map<string, Promise<string>>();
  await replay(B, OURS_B, {
    broker,
    ours: new Set([...devs.values()].map((d) => srupClientId(d.id))),
    settle,
    async trigger(r) {
      const t = r.trigger as Trigger;
      const d = devs.get(r.from) as Dev;
      if (t.call === 'join') {
        const kind = t.kind as 'simple' | 'human' | 'observed';
        joins.set(r.from, d.agent.join(kind, t.observer === undefined ? undefined : idOf(B, t.observer)));
      } else if (t.call === 'reboot') {
        expect(d.updater.restartRequested).toBe(true);
        await d.agent.close();
        d.updater.reboot();
        d.boot();
      } else throw new Error(`unknown trigger ${t.call}`);
    },
  });

  for (const d of devs.values()) {
    expect(d.log.rejections()).toEqual([]);
    expect(d.keys.serverId()).toBe(server);
    await expect(joins.get(d.name)).resolves.toBe('joined');
  }
  const tsdev = devs.get('tsdev') as Dev;
  expect(tsdev.updater.running).toEqual(image);
  expect(tsdev.events.filter((e) => e.type === 'action').map((e) => (e as { status: number }).status)).toEqual([0x20, 0x2f, 0x2e]);
  expect(tsdev.events.some((e) => e.type === 'update_confirmed')).toBe(true);

  // What our devices showed is what the reference server generated; the observer answered 0x60.
  const shown = (name: string) => {
    const h = (devs.get(name) as Dev).presenter.history.find((x) => x.op === 'show');
    return h !== undefined && h.op === 'show' ? ascii(h.secret) : null;
  };
  expect(shown('tshdev')).toBe(refEvents(B.reference, 'human_join_value')[0].value);
  expect(shown('tsodev')).toBe(refEvents(B.reference, 'observed_join_value')[0].value);
  expect((devs.get('tshdev') as Dev).events.filter((e) => e.type === 'observation').map((e) => (e as { status: number }).status)).toEqual([
    Status.OBSERVED_JOIN_VALID,
  ]);

  // Both sides end on the same counter.
  const theirs = refEvents(B.reference, 'final')[0].seq_ids as Record<string, number>;
  for (const d of devs.values()) {
    const mine = d.seqs.lastSent(server) > d.seqs.lastAccepted(server) ? d.seqs.lastSent(server) : d.seqs.lastAccepted(server);
    expect(Number(mine)).toBe(theirs[B.ids[d.name]]);
  }
  for (const d of devs.values()) await d.agent.close();
});

// ------------------------------------------------------------------------------------------------ join command, leaving

test('our C2 engine, replayed against recorded pySRUP devices: join command, terminate, resign, deregister', async () => {
  const { broker, clientId, registry, log, events, engine } = recordedEngine(C);
  await engine.start();
  for (const d of C.engine.provisioned) engine.provision(idOf(C, d), pub(d));
  const ids: Promise<string>[] = [];
  const settle = async () => {
    for (let i = 0; i < 3; i++) {
      await broker.settle();
      await engine.idle();
    }
  };
  await replay(C, OURS_A, {
    broker,
    ours: new Set([clientId]),
    settle,
    async trigger(r) {
      const dev = idOf(C, r.to);
      const call = (r.trigger as Trigger).call;
      if (call === 'sendJoinCommand') await engine.sendJoinCommand(dev);
      else if (call === 'requestId') ids.push(engine.requestId(dev));
      else if (call === 'terminate') await engine.terminate(dev);
      else if (call === 'deregister') await engine.deregister(dev);
      else throw new Error(`unknown trigger ${call}`);
    },
  });
  expect(log.rejections()).toEqual([]);
  // The device that joined by command answered the ID request (so it obeyed the command).
  await expect(Promise.all(ids)).resolves.toEqual([expect.stringMatching(/^pySRUP version </)]);
  const state = (n: string) => engine.device(idOf(C, n))?.state;
  expect([state('pycdev'), state('pyrdev'), state('pyxdev'), state('pyddev')]).toEqual(['terminated', 'resigned', 'deregistered', 'deregistered']);
  const removed = events.filter((e): e is Extract<C2Event, { type: 'removed' }> => e.type === 'removed');
  expect(removed.map((e) => [nameOf(C, e.device), e.reason, e.by])).toEqual([
    ['pycdev', 'terminated', 'server'],
    ['pyrdev', 'resigned', 'device'],
    ['pyxdev', 'deregistered', 'device'],
    ['pyddev', 'deregistered', 'server'],
  ]);
  // The reference devices left: no server any more, and their counters end where ours do.
  for (const d of C.engine.provisioned) {
    const fin = refEvents(C.reference[d], 'final')[0];
    expect(fin.server_id).toBeNull();
    const s = registry.sequence(idOf(C, d));
    expect(Number(s.lastSent > s.lastAccepted ? s.lastSent : s.lastAccepted)).toBe((fin.seq_ids as Record<string, number>)[C.ids.c2]);
  }
  engine.stop();
});

test('our device agents, replayed against a recorded pySRUP server: join command, deregister command, resign, deregister', async () => {
  const broker = new MemoryBroker();
  const server = idOf(D, 'pysrv');
  const devs = new Map<string, { keys: MemoryKeyStore; seqs: MemorySequenceStore; agent: Agent; log: CollectingLog; events: AgentEvent[] }>();
  for (const name of OURS_D) {
    const id = idOf(D, name);
    const keys = new MemoryKeyStore({
      deviceId: id,
      privateKey: priv(name),
      serverId: D.agents[name].serverAtStart === null ? null : server,
      peers: [[server, pub('pysrv')]],
    });
    const seqs = new MemorySequenceStore();
    const log = new CollectingLog();
    const events: AgentEvent[] = [];
    const agent = new Agent(
      {
        transport: broker.client(srupClientId(id)),
        keys,
        sequences: seqs,
        clock: new ManualClock(),
        crypto: nodeCrypto,
        random: seededRandom(D.agents[name].seededRandom),
        presenter: new RecordingPresenter(),
        downloader: new FakeDownloader(),
        updater: new FakeUpdater(Uint8Array.of(1)),
        log: log.log,
      },
      { firmwareName: D.agents.firmwareName, firmwareVersion: D.agents.firmwareVersion, onEvent: (e) => events.push(e) },
    );
    agent.start();
    devs.set(name, { keys, seqs, agent, log, events });
  }
  const settle = async () => {
    for (let i = 0; i < 3; i++) {
      await broker.settle();
      for (const d of devs.values()) await d.agent.idle();
    }
  };
  await settle();
  const joins: Promise<string>[] = [];
  await replay(D, OURS_D, {
    broker,
    ours: new Set([...OURS_D].map((n) => srupClientId(idOf(D, n)))),
    settle,
    async trigger(r) {
      const d = devs.get(r.from);
      if (d === undefined) throw new Error(`not ours: ${r.from}`);
      const call = (r.trigger as Trigger).call;
      if (call === 'join') joins.push(d.agent.join('simple'));
      else if (call === 'resign') await d.agent.resign();
      else if (call === 'deregister') await d.agent.deregister();
      else throw new Error(`unknown trigger ${call}`);
    },
  });
  await expect(Promise.all(joins)).resolves.toEqual(['joined', 'joined']);
  const get = (n: string) => devs.get(n) as NonNullable<ReturnType<typeof devs.get>>;
  for (const [name, d] of devs) {
    expect(d.log.rejections()).toEqual([]);
    expect(d.keys.serverId()).toBeNull();
    const mine = d.seqs.lastSent(server) > d.seqs.lastAccepted(server) ? d.seqs.lastSent(server) : d.seqs.lastAccepted(server);
    expect(Number(mine)).toBe((refEvents(D.reference, 'final')[0].seq_ids as Record<string, number>)[D.ids[name]]);
  }
  expect(get('tscdev').events.map((e) => e.type)).toEqual(expect.arrayContaining(['joined', 'id_request', 'deregistered']));
  // Deregistration drops the server's key (either side starting it); resigning keeps it.
  expect(get('tscdev').keys.peerKey(server)).toBeNull();
  expect(get('tsrdev').keys.peerKey(server)).not.toBeNull();
  expect(get('tsxdev').keys.peerKey(server)).toBeNull();
  // The reference server let all three go.
  expect(refEvents(D.reference, 'final')[0].devices).toEqual([]);
  for (const d of devs.values()) await d.agent.close();
});
