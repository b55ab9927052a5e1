/**
 * RAM-only KeyStore and SequenceStore. Complete implementations of the host.ts interfaces, for tests and the
 * simulator; "durable" here means "until the object is dropped", so a test reboots a device by constructing a
 * new Agent over the same two store objects.
 */
import type { RsaPrivateKey, RsaPublicKey } from '../../crypto/types.js';
import type { KeyStore, PendingUpdate, SequenceStore } from './host.js';

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

export class MemorySequenceStore implements SequenceStore {
  private readonly accepted = new Map<bigint, bigint>();
  private readonly sent = new Map<bigint, bigint>();
  private pending: PendingUpdate | null = null;

  lastAccepted(peer: bigint): bigint {
    return this.accepted.get(peer) ?? 0n;
  }

  setLastAccepted(peer: bigint, seq: bigint): void {
    this.accepted.set(peer, seq);
  }

  lastSent(peer: bigint): bigint {
    return this.sent.get(peer) ?? 0n;
  }

  setLastSent(peer: bigint, seq: bigint): void {
    this.sent.set(peer, seq);
  }

  forget(peer: bigint): void {
    this.accepted.delete(peer);
    this.sent.delete(peer);
  }

  pendingUpdate(): PendingUpdate | null {
    return this.pending === null ? null : { ...this.pending, token: this.pending.token.slice() };
  }

  setPendingUpdate(p: PendingUpdate | null): void {
    // Copy: the store owns its value, as a flash-backed store would.
    this.pending = p === null ? null : { server: p.server, token: p.token.slice(), state: p.state };
  }
}
