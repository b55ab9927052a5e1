/**
 * The key store and the sequence store as small JSON files in a state directory. Every change rewrites its
 * file with `writeFileDurable` (temp file, fsync, rename, fsync dir): a setter returns once the change is
 * durable, and a kill at any moment leaves either the old or the new complete file.
 *
 *   keys.json       {"deviceId":"<16 hex>","serverId":"<16 hex>"|null,"privateKey":"<PEM>","peers":{"<16 hex>":"<PEM>"}}
 *   sequences.json  {"accepted":{"<16 hex>":"<decimal>"},"sent":{...},"pending":null|{"server":"<16 hex>","token":"<hex>","state":"staged"|"activating"},
 *                    "owed":[{"peer":"<16 hex>","seq":"<decimal>","kind":"action"|"id_request"|"initiate","token":"<hex>","actionId":N,"status":N|null}]}
 *
 * Counters are decimal strings: a u64 does not fit a JSON number.
 */
import path from 'node:path';
import fs from 'node:fs';
import type { KeyStore, Owe, OwedAnswer, PendingUpdate, SequenceStore } from '../../modules/agent/host.js';
import { owedList } from '../../modules/agent/memory.js';
import type { RsaPrivateKey, RsaPublicKey } from '../../crypto/types.js';
import { parsePrivateKeyPem, parsePublicKeyPem, privateKeyToPem, publicKeyToPem } from '../../crypto/keys.js';
import { HostFileError, hexToId, idToHex, readJsonObject, writeFileDurable } from './durable.js';

export const KEYS_FILE = 'keys.json';
export const SEQUENCES_FILE = 'sequences.json';

const U64_MAX = 0xffffffffffffffffn;

// ------------------------------------------------------------------------------------------------ key store

export interface KeyStoreContents {
  deviceId: bigint;
  privateKey: RsaPrivateKey;
  serverId: bigint | null;
  peers?: ReadonlyMap<bigint, RsaPublicKey>;
}

export class FileKeyStore implements KeyStore {
  readonly deviceId: bigint;
  readonly privateKey: RsaPrivateKey;
  readonly file: string;
  private server: bigint | null;
  /** PEM text per peer (what is written), and parsed keys (what is handed out). */
  private readonly peerPems = new Map<bigint, string>();
  private readonly peerKeys = new Map<bigint, RsaPublicKey>();
  private readonly privatePem: string;

  private constructor(file: string, deviceId: bigint, privateKey: RsaPrivateKey, privatePem: string, server: bigint | null) {
    this.file = file;
    this.deviceId = deviceId;
    this.privateKey = privateKey;
    this.privatePem = privatePem;
    this.server = server;
  }

  static exists(dir: string): boolean {
    return fs.existsSync(path.join(dir, KEYS_FILE));
  }

  /** Writes a new key store (replacing any) and opens it. */
  static create(dir: string, c: KeyStoreContents): FileKeyStore {
    fs.mkdirSync(dir, { recursive: true });
    const store = new FileKeyStore(path.join(dir, KEYS_FILE), c.deviceId, c.privateKey, privateKeyToPem(c.privateKey),
      c.serverId);
    for (const [id, key] of c.peers ?? []) {
      store.peerPems.set(id, publicKeyToPem(key));
      store.peerKeys.set(id, key);
    }
    store.save();
    return store;
  }

  /** Opens `keys.json` in `dir`; throws HostFileError naming the file and field if it is missing or bad. */
  static open(dir: string): FileKeyStore {
    const file = path.join(dir, KEYS_FILE);
    const o = readJsonObject(file);
    const deviceId = hexToId(o.deviceId);
    if (deviceId === null) throw new HostFileError(file, 'deviceId', 'must be 16 hex digits');
    let server: bigint | null = null;
    if (o.serverId !== null && o.serverId !== undefined) {
      server = hexToId(o.serverId);
      if (server === null) throw new HostFileError(file, 'serverId', 'must be 16 hex digits or null');
    }
    if (typeof o.privateKey !== 'string') throw new HostFileError(file, 'privateKey', 'must be a PEM string');
    let privateKey: RsaPrivateKey;
    try {
      privateKey = parsePrivateKeyPem(o.privateKey);
    } catch (e) {
      throw new HostFileError(file, 'privateKey', (e as Error).message);
    }
    const store = new FileKeyStore(file, deviceId, privateKey, o.privateKey, server);
    const peers = o.peers ?? {};
    if (typeof peers !== 'object' || peers === null || Array.isArray(peers)) {
      throw new HostFileError(file, 'peers', 'must be an object of hex id to PEM');
    }
    for (const [hex, pem] of Object.entries(peers as Record<string, unknown>)) {
      const id = hexToId(hex);
      if (id === null) throw new HostFileError(file, `peers.${hex}`, 'key must be 16 hex digits');
      if (typeof pem !== 'string') throw new HostFileError(file, `peers.${hex}`, 'must be a PEM string');
      try {
        store.peerKeys.set(id, parsePublicKeyPem(pem));
      } catch (e) {
        throw new HostFileError(file, `peers.${hex}`, (e as Error).message);
      }
      store.peerPems.set(id, pem);
    }
    return store;
  }

  serverId(): bigint | null {
    return this.server;
  }

  setServerId(id: bigint | null): void {
    if (id === this.server) return;
    const old = this.server;
    this.server = id;
    this.saveOrUndo(() => { this.server = old; });
  }

  peerKey(id: bigint): RsaPublicKey | null {
    return this.peerKeys.get(id) ?? null;
  }

  setPeerKey(id: bigint, key: RsaPublicKey | null): void {
    idToHex(id); // range check
    const oldPem = this.peerPems.get(id);
    const oldKey = this.peerKeys.get(id);
    if (key === null) {
      if (oldPem === undefined) return;
      this.peerPems.delete(id);
      this.peerKeys.delete(id);
    } else {
      this.peerPems.set(id, publicKeyToPem(key));
      this.peerKeys.set(id, key);
    }
    this.saveOrUndo(() => {
      if (oldPem === undefined || oldKey === undefined) {
        this.peerPems.delete(id);
        this.peerKeys.delete(id);
      } else {
        this.peerPems.set(id, oldPem);
        this.peerKeys.set(id, oldKey);
      }
    });
  }

  private saveOrUndo(undo: () => void): void {
    try {
      this.save();
    } catch (e) {
      undo(); // memory must not run ahead of the disk
      throw e;
    }
  }

  private save(): void {
    const peers: Record<string, string> = {};
    for (const id of [...this.peerPems.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))) {
      peers[idToHex(id)] = this.peerPems.get(id)!;
    }
    const doc = {
      deviceId: idToHex(this.deviceId),
      serverId: this.server === null ? null : idToHex(this.server),
      privateKey: this.privatePem,
      peers,
    };
    writeFileDurable(this.file, JSON.stringify(doc, null, 2) + '\n');
  }
}

// ------------------------------------------------------------------------------------------------ sequence store

function hexBytes(b: Uint8Array): string {
  let s = '';
  for (const x of b) s += x.toString(16).padStart(2, '0');
  return s;
}

function parseCounters(file: string, field: string, v: unknown): Map<bigint, bigint> {
  const m = new Map<bigint, bigint>();
  if (v === undefined) return m;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new HostFileError(file, field, 'must be an object of hex id to decimal string');
  }
  for (const [hex, n] of Object.entries(v as Record<string, unknown>)) {
    const id = hexToId(hex);
    if (id === null) throw new HostFileError(file, `${field}.${hex}`, 'key must be 16 hex digits');
    if (typeof n !== 'string' || !/^(0|[1-9][0-9]{0,19})$/.test(n) || BigInt(n) > U64_MAX) {
      throw new HostFileError(file, `${field}.${hex}`, 'must be a decimal u64 in a string');
    }
    m.set(id, BigInt(n));
  }
  return m;
}

function parsePending(file: string, v: unknown): PendingUpdate | null {
  if (v === null || v === undefined) return null;
  if (typeof v !== 'object' || Array.isArray(v)) throw new HostFileError(file, 'pending', 'must be an object or null');
  const o = v as Record<string, unknown>;
  const server = hexToId(o.server);
  if (server === null) throw new HostFileError(file, 'pending.server', 'must be 16 hex digits');
  if (typeof o.token !== 'string' || !/^([0-9a-f]{2})*$/.test(o.token)) {
    throw new HostFileError(file, 'pending.token', 'must be lowercase hex');
  }
  if (o.state !== 'staged' && o.state !== 'activating') {
    throw new HostFileError(file, 'pending.state', 'must be "staged" or "activating"');
  }
  const token = new Uint8Array(o.token.length / 2);
  for (let i = 0; i < token.length; i++) token[i] = parseInt(o.token.slice(2 * i, 2 * i + 2), 16);
  return { server, token, state: o.state };
}

function parseOwed(file: string, v: unknown): OwedAnswer[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw new HostFileError(file, 'owed', 'must be an array');
  return v.map((x: unknown, i): OwedAnswer => {
    const o = (typeof x === 'object' && x !== null ? x : {}) as Record<string, unknown>;
    const peer = hexToId(o.peer);
    if (peer === null) throw new HostFileError(file, `owed[${i}].peer`, 'must be 16 hex digits');
    if (typeof o.seq !== 'string' || !/^(0|[1-9][0-9]{0,19})$/.test(o.seq) || BigInt(o.seq) > U64_MAX) {
      throw new HostFileError(file, `owed[${i}].seq`, 'must be a decimal u64 in a string');
    }
    if (o.kind !== 'action' && o.kind !== 'id_request' && o.kind !== 'initiate') {
      throw new HostFileError(file, `owed[${i}].kind`, 'must be "action", "id_request" or "initiate"');
    }
    if (typeof o.token !== 'string' || !/^([0-9a-f]{2})*$/.test(o.token)) throw new HostFileError(file, `owed[${i}].token`, 'must be lowercase hex');
    const byte = (n: unknown) => typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 255;
    if (!byte(o.actionId)) throw new HostFileError(file, `owed[${i}].actionId`, 'must be 0-255');
    if (o.status !== null && !byte(o.status)) throw new HostFileError(file, `owed[${i}].status`, 'must be 0-255 or null');
    return { peer, seq: BigInt(o.seq), kind: o.kind, token: unhex(o.token), actionId: o.actionId as number, status: o.status as number | null };
  });
}

function unhex(text: string): Uint8Array {
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export class FileSequenceStore implements SequenceStore {
  readonly file: string;
  /** A JSON file has room for many; the flash counter log keeps 32 (modules/store/counter-log.ts). */
  readonly owedCapacity = 256;
  private readonly accepted: Map<bigint, bigint>;
  private readonly sent: Map<bigint, bigint>;
  private pending: PendingUpdate | null;
  private owes: OwedAnswer[];

  private constructor(file: string, accepted: Map<bigint, bigint>, sent: Map<bigint, bigint>, pending: PendingUpdate | null, owed: OwedAnswer[]) {
    this.file = file;
    this.accepted = accepted;
    this.sent = sent;
    this.pending = pending;
    this.owes = owed;
  }

  /** Opens `sequences.json` in `dir` (an absent file is an empty store; it is written on the first change). */
  static open(dir: string): FileSequenceStore {
    const file = path.join(dir, SEQUENCES_FILE);
    if (!fs.existsSync(file)) {
      fs.mkdirSync(dir, { recursive: true });
      return new FileSequenceStore(file, new Map(), new Map(), null, []);
    }
    const o = readJsonObject(file);
    return new FileSequenceStore(file, parseCounters(file, 'accepted', o.accepted), parseCounters(file, 'sent', o.sent),
      parsePending(file, o.pending), parseOwed(file, o.owed));
  }

  lastAccepted(peer: bigint): bigint {
    return this.accepted.get(peer) ?? 0n;
  }

  setLastAccepted(peer: bigint, seq: bigint, owe?: Owe): void {
    this.setCounter(this.accepted, peer, seq, owe === undefined ? null : owedList.owe(this.owes, peer, seq, owe));
  }

  lastSent(peer: bigint): bigint {
    return this.sent.get(peer) ?? 0n;
  }

  setLastSent(peer: bigint, seq: bigint, answer?: { seq: bigint; status: number }): void {
    this.setCounter(this.sent, peer, seq, answer === undefined ? null : owedList.answer(this.owes, peer, answer));
  }

  owed(): readonly OwedAnswer[] {
    return this.owes;
  }

  settle(peer: bigint, seq: bigint): void {
    const old = this.owes;
    const next = owedList.settle(old, peer, seq);
    if (next.length === old.length) return;
    this.owes = next;
    this.saveOrUndo(() => { this.owes = old; });
  }

  forget(peer: bigint): void {
    const a = this.accepted.get(peer);
    const s = this.sent.get(peer);
    const owes = this.owes;
    if (a === undefined && s === undefined && !owes.some((x) => x.peer === peer)) return;
    this.accepted.delete(peer);
    this.sent.delete(peer);
    this.owes = owes.filter((x) => x.peer !== peer);
    this.saveOrUndo(() => {
      if (a !== undefined) this.accepted.set(peer, a);
      if (s !== undefined) this.sent.set(peer, s);
      this.owes = owes;
    });
  }

  pendingUpdate(): PendingUpdate | null {
    return this.pending;
  }

  setPendingUpdate(p: PendingUpdate | null): void {
    const old = this.pending;
    this.pending = p === null ? null : { server: p.server, token: p.token.slice(), state: p.state };
    this.saveOrUndo(() => { this.pending = old; });
  }

  /** One durable change: a counter, and with `owes` the owed-answer list as well. */
  private setCounter(map: Map<bigint, bigint>, peer: bigint, seq: bigint, owes: OwedAnswer[] | null): void {
    idToHex(peer);
    if (seq < 0n || seq > U64_MAX) throw new RangeError(`sequence ID out of u64 range: ${seq}`);
    const old = map.get(peer);
    const oldOwes = this.owes;
    if (old === seq && owes === null) return;
    map.set(peer, seq);
    if (owes !== null) this.owes = owes;
    this.saveOrUndo(() => {
      if (old === undefined) map.delete(peer);
      else map.set(peer, old);
      this.owes = oldOwes;
    });
  }

  private saveOrUndo(undo: () => void): void {
    try {
      this.save();
    } catch (e) {
      undo();
      throw e;
    }
  }

  private save(): void {
    const obj = (m: Map<bigint, bigint>) => {
      const o: Record<string, string> = {};
      for (const [id, n] of m) o[idToHex(id)] = n.toString();
      return o;
    };
    const p = this.pending;
    const doc = {
      accepted: obj(this.accepted),
      sent: obj(this.sent),
      pending: p === null ? null : { server: idToHex(p.server), token: hexBytes(p.token), state: p.state },
      ...(this.owes.length === 0 ? {} : { owed: this.owes.map((x) => ({ peer: idToHex(x.peer), seq: x.seq.toString(), kind: x.kind, token: hexBytes(x.token), actionId: x.actionId, status: x.status })) }),
    };
    writeFileDurable(this.file, JSON.stringify(doc));
  }
}
