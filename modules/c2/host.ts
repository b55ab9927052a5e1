/**
 * What the C2 engine needs from the world. The transport, clock and log are the ports the device agent uses too
 * (modules/srup/ports.ts); the registry is the server's store (registry.ts).
 */
import type { Crypto, RandomBytes, RsaPrivateKey } from '../../crypto/types.js';
import type { Clock, Log, Transport } from '../srup/ports.js';
import type { Registry } from './registry.js';
import type { C2Listener } from './events.js';
import type { RateLimit } from './rate.js';

export type { Clock, Log, Transport } from '../srup/ports.js';

export interface C2Host {
  transport: Transport;
  registry: Registry;
  crypto: Crypto;
  random: RandomBytes;
  clock: Clock;
  log: Log;
  /** This server's 64-bit id. */
  serverId: bigint;
  /** This server's RSA private key (it signs every message). */
  privateKey: RsaPrivateKey;
  /**
   * Several server nodes on one fleet (same identity, registry database and broker): how this node tells the
   * others what it learnt that they may be waiting for. Absent for a single server.
   */
  cluster?: Cluster;
}

/**
 * What one node tells the others: a device answered a request (action status, ID text) that another node may
 * have sent, an update changed state (another node may hold its waiters and timer), or a device joined or left
 * (every node subscribes the topics of the joined devices).
 */
export type ClusterNote =
  | { readonly kind: 'answer'; readonly device: bigint; readonly token: Uint8Array; readonly status: number }
  | { readonly kind: 'identification'; readonly device: bigint; readonly token: Uint8Array; readonly text: string }
  | { readonly kind: 'update'; readonly token: string }
  | { readonly kind: 'membership'; readonly device: bigint; readonly joined: boolean };

export interface Cluster {
  /** Delivered to every other node once this node's writes before it are durable. */
  publish(note: ClusterNote): void;
  /** Notes from the other nodes (never this node's own). Returns a function that stops listening. */
  listen(fn: (note: ClusterNote) => void): () => void;
}

/** A decision about a simple join, or about an observed join once the observer has answered. */
export type JoinDecision = 'accept' | 'refuse' | 'fail' | 'defer';
/** A decision about a human-moderated or observed join request: go on with the challenge, or end it now. */
export type ChallengeDecision = 'challenge' | 'refuse' | 'fail';

export interface JoinRequestInfo {
  readonly device: bigint;
  readonly kind: 'simple' | 'human' | 'observed';
  /** The observer named by an observed join request, else null. */
  readonly observer: bigint | null;
}

export interface ObservationInfo {
  readonly device: bigint;
  readonly observer: bigint;
  /** 0x60 valid, 0x6E invalid, 0x6F fail. */
  readonly status: number;
}

type MaybePromise<T> = T | Promise<T>;

export interface C2Options {
  /**
   * Simple join (0x09): accept (0x50), refuse (0x5E), fail (0x5F), or defer to a later approveJoin / refuseJoin /
   * failJoin call. Without a hook every simple join from a provisioned device is accepted. A throw means 'fail'.
   */
  onJoinRequest?: (req: JoinRequestInfo) => MaybePromise<JoinDecision>;
  /**
   * Human-moderated (0x0B) or observed (0x0D) join: 'challenge' sends the secret (0x0C, or 0x0E + 0x0F), 'refuse'
   * / 'fail' answer at once. Default 'challenge'. A human-moderated join is then decided only by approveJoin /
   * refuseJoin / failJoin.
   */
  onChallengeRequest?: (req: JoinRequestInfo) => MaybePromise<ChallengeDecision>;
  /**
   * The observer's verdict on an observed join. Default: valid (0x60) → accept, invalid (0x6E) → refuse,
   * fail (0x6F) → fail. 'defer' leaves the join pending for approveJoin / refuseJoin / failJoin.
   */
  onObservationResult?: (res: ObservationInfo) => MaybePromise<JoinDecision>;
  /**
   * Fail (0x5F) a join still pending this long after its request: an operator who never decides, an observer
   * that never answers, a device that gave up. Default: pending joins never expire.
   */
  joinTimeoutMs?: number;
  /** Send an ID request right after accepting a join (pySRUP's accept_join(ID_req=True)). Default false. */
  identifyOnJoin?: boolean;
  /** Send the activate as soon as an update reports success (0x00). Default false. */
  autoActivate?: boolean;
  /** How long an action or ID request waits for its answer. Default 30 000 ms. */
  requestTimeoutMs?: number;
  /** How long an initiate waits for the device's download result. Default 300 000 ms. */
  initiateTimeoutMs?: number;
  /** How long an activate waits for the post-reboot confirmation (0x10 / 0x1F). Default 600 000 ms. */
  activateTimeoutMs?: number;
  /** Receives every event (same as engine.on(listener)). */
  onEvent?: C2Listener;
  /**
   * Several server nodes: subscribe through the MQTT shared subscription group of this name
   * ($share/<group>/SRUP/...), so that each message from a device reaches exactly one node.
   */
  sharedGroup?: string;
  /**
   * Several server nodes: every this many ms, take over the timers of updates and joins another node armed
   * (a node that died leaves them in the database). Default: no sweep (a single server arms them itself).
   */
  sweepMs?: number;
  /**
   * Per-device limit on what devices send unasked (data, join requests, resign / deregister requests; not
   * responses): default DEFAULT_DEVICE_RATE (100 at once, 10 per second). Messages over it are dropped before
   * their signature is checked and reported as rejected 'rate_limited'.
   */
  deviceRate?: RateLimit;
}
