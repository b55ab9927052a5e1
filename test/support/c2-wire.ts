/**
 * Test rig for the C2 engine: keys, hand-built signed device messages, and an engine on a MemoryBroker with a
 * MemoryRegistry, a ManualClock and deterministic randomness.
 *
 *   const rig = await startRig();
 *   rig.provision(DEV_A, 'joined');
 *   rig.inject(deviceTopic(DEV_A), deviceMessage(rig.keys.a, 'response', DEV_A, 1n, 'tok', { status: 0x20 }));
 *   await rig.settle();
 *   rig.sentTo(DEV_A)        // what the engine published on SRUP/<DEV_A>, decoded and signature-checked
 */
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parsePrivateKeyPem } from '../../crypto/keys.js';
import { pureCrypto } from '../../crypto/pure.js';
import type { RsaPrivateKey } from '../../crypto/types.js';
import { decode, encode } from '../../modules/srup/codec.js';
import { utf8 } from '../../modules/srup/bytes.js';
import type { FieldsOf, Message, MessageOf, TypeName, UnsignedOf } from '../../modules/srup/schema.js';
import { sign, verify } from '../../modules/srup/session.js';
import { deviceTopic } from '../../modules/srup/topics.js';
import { C2Engine } from '../../modules/c2/engine.js';
import type { C2Event } from '../../modules/c2/events.js';
import type { C2Options } from '../../modules/c2/host.js';
import { MemoryRegistry } from '../../modules/c2/memory-registry.js';
import type { DeviceState } from '../../modules/c2/registry.js';
import { CollectingLog, ManualClock, seededRandom } from './fakes.js';
import { MemoryBroker, type MemoryTransport } from './memory-broker.js';

/** The server's id, and devices' ids; DEV_A has a leading zero (topic SRUP/123456789abcdef). */
export const SERVER_ID = 0x4c2a9e10b3d54f01n;
export const DEV_A = 0x0123456789abcdefn;
export const DEV_B = 0x7e5d4c3b2a194f08n;
export const DEV_C = 0x3141592653594f97n;
/** An id nobody provisioned. */
export const STRANGER = 0x5a5a5a5a5a5a4a5an;

const VECTOR_KEYS = join(__dirname, '..', 'data', 'srup-vectors', 'keys');
const keyCache = new Map<string, RsaPrivateKey>();

/** A private key of the vector set: 'signer-1', 'signer-2' or 'recipient-1'. */
export function vectorKey(name: string): RsaPrivateKey {
  let k = keyCache.get(name);
  if (k === undefined) {
    k = parsePrivateKeyPem(readFileSync(join(VECTOR_KEYS, `${name}.private.pem`), 'utf8'));
    keyCache.set(name, k);
  }
  return k;
}

/** A fresh RSA-2048 key from node:crypto, cached by name for the test file. */
export function generatedKey(name: string): RsaPrivateKey {
  let k = keyCache.get(`gen:${name}`);
  if (k === undefined) {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    k = parsePrivateKeyPem(privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
    keyCache.set(`gen:${name}`, k);
  }
  return k;
}

export interface Keys {
  server: RsaPrivateKey;
  a: RsaPrivateKey;
  b: RsaPrivateKey;
  c: RsaPrivateKey;
  stranger: RsaPrivateKey;
}

export function testKeys(): Keys {
  return {
    server: vectorKey('signer-1'),
    a: vectorKey('signer-2'),
    b: vectorKey('recipient-1'),
    c: generatedKey('c'),
    stranger: generatedKey('stranger'),
  };
}

export function tokenBytes(t: string | Uint8Array): Uint8Array {
  return typeof t === 'string' ? utf8(t) : t;
}

/** A message as a device (or anyone holding `key`) would sign and send it. */
export function deviceMessage<T extends TypeName>(
  key: RsaPrivateKey,
  type: T,
  sender: bigint,
  sequenceId: bigint,
  token: string | Uint8Array,
  fields: FieldsOf<T>,
): Uint8Array {
  const unsigned = { type, sequenceId, senderId: sender, token: tokenBytes(token), fields } as UnsignedOf<T>;
  return encode(sign(pureCrypto, key, unsigned) as Message);
}

/** The exact bytes the server must publish for this message (PKCS#1 v1.5 signatures are deterministic). */
export function expectedServerBytes<T extends TypeName>(
  key: RsaPrivateKey,
  type: T,
  sequenceId: bigint,
  token: Uint8Array,
  fields: FieldsOf<T>,
): Uint8Array {
  return deviceMessage(key, type, SERVER_ID, sequenceId, token, fields);
}

export interface Rig {
  broker: MemoryBroker;
  transport: MemoryTransport;
  registry: MemoryRegistry;
  clock: ManualClock;
  log: CollectingLog;
  engine: C2Engine;
  events: C2Event[];
  keys: Keys;
  /** Registers a device's key, optionally putting it straight into a state (e.g. 'joined'). */
  provision(id: bigint, state?: DeviceState): void;
  /** Publishes bytes as an outside party (a device), then waits until the engine acted. */
  inject(topic: string, payload: Uint8Array): Promise<void>;
  settle(): Promise<void>;
  /** Messages the engine published on SRUP/<device>, decoded; each one's signature is checked. */
  sentTo(device: bigint): Message[];
  /** Raw payloads the engine published on SRUP/<device>. */
  rawTo(device: bigint): Uint8Array[];
  /** Events of one type. */
  eventsOf<K extends C2Event['type']>(type: K): Extract<C2Event, { type: K }>[];
}

/**
 * What a message that changes nothing must leave as it was: the registry's devices and the counters of DEV_A and
 * DEV_B, the audit log's length, and how much the engine published.
 */
export function rigState(r: Rig) {
  return {
    devices: r.registry.devices(),
    seqA: r.registry.sequence(DEV_A),
    seqB: r.registry.sequence(DEV_B),
    audit: r.registry.audit().length,
    published: r.broker.log.filter((p) => p.client === r.transport.clientId).length,
  };
}

export function keyOf(keys: Keys, id: bigint): RsaPrivateKey {
  if (id === DEV_A) return keys.a;
  if (id === DEV_B) return keys.b;
  if (id === DEV_C) return keys.c;
  if (id === SERVER_ID) return keys.server;
  return keys.stranger;
}

export async function startRig(options: C2Options = {}, prepare?: (r: Rig) => void): Promise<Rig> {
  const keys = testKeys();
  const broker = new MemoryBroker();
  const transport = broker.client('SRUP Client: c2');
  const registry = new MemoryRegistry();
  const clock = new ManualClock(1_000_000);
  const log = new CollectingLog();
  const events: C2Event[] = [];
  const engine = new C2Engine(
    {
      transport,
      registry,
      crypto: pureCrypto,
      random: seededRandom(7),
      clock,
      log: log.log,
      serverId: SERVER_ID,
      privateKey: keys.server,
    },
    { ...options, onEvent: (e) => events.push(e) },
  );
  const rig: Rig = {
    broker,
    transport,
    registry,
    clock,
    log,
    engine,
    events,
    keys,
    provision(id, state) {
      registry.addDevice(id, keyOf(keys, id).publicKey, clock.now());
      if (state !== undefined && state !== 'provisioned') registry.updateDevice(id, { state }, clock.now());
    },
    async inject(topic, payload) {
      broker.inject(topic, payload);
      await broker.settle();
      await engine.idle();
      await broker.settle();
    },
    settle: async () => {
      await broker.settle();
      await engine.idle();
      await broker.settle();
    },
    rawTo(device) {
      return broker
        .published(deviceTopic(device))
        .filter((p) => p.client === transport.clientId)
        .map((p) => p.payload);
    },
    sentTo(device) {
      return rig.rawTo(device).map((bytes) => {
        const m = decode(bytes);
        if (m.senderId !== SERVER_ID || !verify(pureCrypto, keys.server.publicKey, m)) {
          throw new Error('the engine published a message that does not verify with its key');
        }
        return m;
      });
    },
    eventsOf(type) {
      return events.filter((e) => e.type === type) as never;
    },
  };
  prepare?.(rig);
  await engine.start();
  await rig.settle();
  return rig;
}

/** Narrows a decoded message to its type, failing the test otherwise. */
export function as<T extends TypeName>(m: Message | undefined, type: T): MessageOf<T> {
  if (m === undefined) throw new Error(`expected a ${type} message, got nothing`);
  if (m.type !== type) throw new Error(`expected a ${type} message, got ${m.type}`);
  return m as MessageOf<T>;
}

export function text(b: Uint8Array): string {
  return Buffer.from(b).toString('utf8');
}
