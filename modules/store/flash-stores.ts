/**
 * KeyStore and SequenceStore (modules/agent/host.ts) on a flash partition: the key-store record (record.ts)
 * in the A/B slots and the counter log (counter-log.ts) in the blocks after them. Every setter is durable on
 * return. Pure: the host hands in a Flash.
 */
import type { KeyStore, Owe, OwedAnswer, PendingUpdate, SequenceStore } from '../agent/host.js';
import type { RsaPrivateKey, RsaPublicKey } from '../../crypto/types.js';
import { parsePkcs1PrivateKeyDer, parsePrivateKeyDer, parsePublicKeyDer, publicKeyToDer } from '../../crypto/keys.js';
import { CounterLog, MAX_OWED } from './counter-log.js';
import { StoreError } from './errors.js';
import { DEFAULT_LAYOUT, layoutFor, type Flash, type StoreLayout } from './flash.js';
import { RecordSlots, type DeviceRecord } from './record.js';

/** PKCS#8 first (what provisioning writes), PKCS#1 otherwise. */
export function parseStoredPrivateKey(der: Uint8Array): RsaPrivateKey {
  try {
    return parsePrivateKeyDer(der);
  } catch {
    return parsePkcs1PrivateKeyDer(der);
  }
}

/**
 * The key store keeps in RAM only what every message needs: the device id, the parsed private key, the server
 * id and the parsed peer keys. The rest of the record (broker URL, CA, Wi-Fi, presenter settings, the key's
 * DER) stays in flash and is read when asked for (`record`) or rewritten (a change reads the newest record,
 * changes it and writes it as the next generation).
 */
export class FlashKeyStore implements KeyStore {
  readonly deviceId: bigint;
  readonly privateKey: RsaPrivateKey;
  private readonly slots: RecordSlots;
  private server: bigint | null;
  private readonly keys = new Map<bigint, RsaPublicKey>();

  constructor(flash: Flash, layout: StoreLayout = DEFAULT_LAYOUT) {
    this.slots = new RecordSlots(flash, layoutFor(flash, layout));
    const rec = this.slots.load();
    if (rec === null) throw new StoreError('not_provisioned', 'no valid key-store record in the srup partition');
    this.deviceId = rec.deviceId;
    this.server = rec.serverId;
    this.privateKey = parseStoredPrivateKey(rec.privateKey);
    for (const p of rec.peers) this.keys.set(p.id, parsePublicKeyDer(p.der));
  }

  /** The whole record (broker URL, CA, Wi-Fi, presenter settings) as last written, read from flash. */
  get record(): DeviceRecord {
    return this.load();
  }

  serverId(): bigint | null {
    return this.server;
  }

  setServerId(id: bigint | null): void {
    if (id === this.server) return;
    this.slots.save({ ...this.load(), serverId: id });
    this.server = id;
  }

  peerKey(id: bigint): RsaPublicKey | null {
    return this.keys.get(id) ?? null;
  }

  setPeerKey(id: bigint, key: RsaPublicKey | null): void {
    if (key === null && !this.keys.has(id)) return;
    const rec = this.load();
    const peers = rec.peers.filter((p) => p.id !== id);
    if (key !== null) peers.push({ id, der: publicKeyToDer(key) });
    this.slots.save({ ...rec, peers });
    if (key === null) this.keys.delete(id);
    else this.keys.set(id, key);
  }

  private load(): DeviceRecord {
    const rec = this.slots.load();
    if (rec === null) throw new StoreError('not_provisioned', 'the key-store record is no longer readable');
    return rec;
  }
}

export class FlashSequenceStore implements SequenceStore {
  readonly owedCapacity = MAX_OWED;
  private readonly log: CounterLog;

  constructor(flash: Flash, layout: StoreLayout = DEFAULT_LAYOUT) {
    this.log = new CounterLog(flash, layoutFor(flash, layout));
  }

  lastAccepted(peer: bigint): bigint {
    return this.log.counters(peer).accepted;
  }

  setLastAccepted(peer: bigint, seq: bigint, owe?: Owe): void {
    if (owe === undefined) this.log.setAccepted(peer, seq);
    else this.log.acceptOwing(peer, seq, owe.kind, owe.actionId, owe.token);
  }

  lastSent(peer: bigint): bigint {
    return this.log.counters(peer).sent;
  }

  setLastSent(peer: bigint, seq: bigint, answer?: { seq: bigint; status: number }): void {
    if (answer === undefined) this.log.setSent(peer, seq);
    else this.log.sentAnswering(peer, seq, answer.seq, answer.status);
  }

  owed(): readonly OwedAnswer[] {
    return this.log.owed;
  }

  settle(peer: bigint, seq: bigint): void {
    this.log.settle(peer, seq);
  }

  forget(peer: bigint): void {
    this.log.forget(peer);
  }

  pendingUpdate(): PendingUpdate | null {
    const p = this.log.pending;
    return p === null ? null : { server: p.server, token: p.token.slice(), state: p.state };
  }

  setPendingUpdate(p: PendingUpdate | null): void {
    this.log.setPending(p === null ? null : { server: p.server, token: p.token.slice(), state: p.state });
  }
}

/** A fresh partition image holding `r` as generation 1 in slot A, everything else erased. */
export function partitionImage(r: DeviceRecord, byteLength: number, layout: StoreLayout = DEFAULT_LAYOUT): Uint8Array {
  // Built through the same code path the device uses, on a flash held in memory.
  const bytes = new Uint8Array(byteLength).fill(0xff);
  const flash: Flash = {
    byteLength,
    blockSize: 4096,
    read: (o, n) => bytes.slice(o, o + n),
    write: (o, b) => {
      for (let i = 0; i < b.length; i++) bytes[o + i] &= b[i];
    },
    eraseBlock: (i) => {
      bytes.fill(0xff, i * 4096, (i + 1) * 4096);
    },
  };
  new RecordSlots(flash, layoutFor(flash, layout)).save(r);
  return bytes;
}
