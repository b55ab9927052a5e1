/**
 * RAM-only KeyStore and SequenceStore. Complete implementations of the host.ts interfaces, for tests and the
 * simulator; "durable" here means "until the object is dropped", so a test reboots a device by constructing a
 * new Agent over the same two store objects.
 */
import type { RsaPrivateKey, RsaPublicKey } from '../../crypto/types.js';
import type { KeyStore, Owe, OwedAnswer, PendingUpdate, SequenceStore } from './host.js';

export interface MemoryKeyStoreInit {
  deviceId: bigint;
  privateKey: RsaPrivateKey;
  /** The server this device obeys (default none). */
  serverId?: bigint | null;
  /** Trusted peer keys (the server's, other devices'). */
  peers?: Iterable<readonly [bigint, RsaPublicKey]>;
}

export class MemoryKeyStore implements KeyStore {
  readonly deviceId: bigint;
  readonly privateKey: RsaPrivateKey;
  private server: bigint | null;
  private readonly peers = new Map<bigint, RsaPublicKey>();

  constructor(init: MemoryKeyStoreInit) {
    this.deviceId = init.deviceId;
    this.privateKey = init.privateKey;
    this.server = init.serverId ?? null;
    for (const [id, key] of init.peers ?? []) this.peers.set(id, key);
  }

  serverId(): bigint | null {
    return this.server;
  }

  setServerId(id: bigint | null): void {
    this.server = id;
  }

  peerKey(id: bigint): RsaPublicKey | null {
    return this.peers.get(id) ?? null;
  }

  setPeerKey(id: bigint, key: RsaPublicKey | null): void {
    if (key === null) this.peers.delete(id);
    else this.peers.set(id, key);
  }

  /** The ids of all trusted peers, in insertion order (for inspection). */
  peerIds(): bigint[] {
    return [...this.peers.keys()];
  }
}

/** The owed-answer list after one change (shared by the stores that keep the list as a whole). */
export const owedList = {
  owe(list: readonly OwedAnswer[], peer: bigint, seq: bigint, o: Owe): OwedAnswer[] {
    if (list.some((x) => x.peer === peer && x.seq === seq)) return list.slice();
    return [...list, { peer, seq, kind: o.kind, token: o.token.slice(), actionId: o.actionId, status: null }];
  },
  answer(list: readonly OwedAnswer[], peer: bigint, a: { seq: bigint; status: number }): OwedAnswer[] {
    return list.map((x) => (x.peer === peer && x.seq === a.seq ? { ...x, status: a.status } : x));
  },
  settle(list: readonly OwedAnswer[], peer: bigint, seq: bigint): OwedAnswer[] {
    return list.filter((x) => !(x.peer === peer && x.seq === seq));
  },
};

export class MemorySequenceStore implements SequenceStore {
  readonly owedCapacity: number;
  private readonly accepted = new Map<bigint, bigint>();
  private readonly sent = new Map<bigint, bigint>();
  private pending: PendingUpdate | null = null;
  private owes: OwedAnswer[] = [];

  constructor(owedCapacity = 256) {
    this.owedCapacity = owedCapacity;
  }

  lastAccepted(peer: bigint): bigint {
    return this.accepted.get(peer) ?? 0n;
  }

  setLastAccepted(peer: bigint, seq: bigint, owe?: Owe): void {
    this.accepted.set(peer, seq);
    if (owe !== undefined) this.owes = owedList.owe(this.owes, peer, seq, owe);
  }

  lastSent(peer: bigint): bigint {
    return this.sent.get(peer) ?? 0n;
  }

  setLastSent(peer: bigint, seq: bigint, answer?: { seq: bigint; status: number }): void {
    this.sent.set(peer, seq);
    if (answer !== undefined) this.owes = owedList.answer(this.owes, peer, answer);
  }

  owed(): readonly OwedAnswer[] {
    return this.owes;
  }

  settle(peer: bigint, seq: bigint): void {
    this.owes = owedList.settle(this.owes, peer, seq);
  }

  forget(peer: bigint): void {
    this.accepted.delete(peer);
    this.sent.delete(peer);
    this.owes = this.owes.filter((x) => x.peer !== peer);
  }

  pendingUpdate(): PendingUpdate | null {
    return this.pending === null ? null : { ...this.pending, token: this.pending.token.slice() };
  }

  setPendingUpdate(p: PendingUpdate | null): void {
    // Copy: the store owns its value, as a flash-backed store would.
    this.pending = p === null ? null : { server: p.server, token: p.token.slice(), state: p.state };
  }
}
