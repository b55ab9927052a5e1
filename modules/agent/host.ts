/**
 * Everything the device agent needs from the world, in one place (with the neutral ports of
 * modules/srup/ports.ts, which the server shares). Hosts (hosts/node, hosts/moddable)
 * implement these; the agent (modules/agent) and its tests use nothing else. Nothing here is
 * platform-specific, and every method is small enough to implement on an ESP32.
 *
 * Conventions: ids are bigint; byte strings are Uint8Array; reads are synchronous; a store method that
 * changes state returns only once the change is durable (survives power loss).
 */
import type { Crypto, RandomBytes, RsaPrivateKey, RsaPublicKey } from '../../crypto/types.js';
import type { Clock, Log, Transport } from '../srup/ports.js';

// The ports the server uses too (transport, clock, log) live in modules/srup/ports.ts.
export type { Clock, Log, LogLevel, Transport, TransportHandlers } from '../srup/ports.js';

// ------------------------------------------------------------------------------------------------ key store

/** The device's identity and trust anchors, kept in the key store (flash partition `srup` on ESP32). */
export interface KeyStore {
  /** This device's 64-bit id. */
  readonly deviceId: bigint;
  /** This device's RSA private key. */
  readonly privateKey: RsaPrivateKey;
  /** The C2 server this device obeys, or null when it has none (after terminate / deregister / resign). */
  serverId(): bigint | null;
  setServerId(id: bigint | null): void;
  /** The public key of a trusted peer (the server, or devices the application trusts), or null. */
  peerKey(id: bigint): RsaPublicKey | null;
  /** Adds, replaces (key) or removes (null) a trusted peer key. */
  setPeerKey(id: bigint, key: RsaPublicKey | null): void;
}

// ------------------------------------------------------------------------------------------------ sequence store

/** The longest command token whose answer is kept across a power cut (pySRUP's tokens are 36 bytes). */
export const MAX_OWED_TOKEN = 48;

/** A pending update: downloaded and verified (`staged`), or activated and waiting for confirmation. */
export interface PendingUpdate {
  readonly server: bigint;
  readonly token: Uint8Array;
  readonly state: 'staged' | 'activating';
}

/** The commands whose answers are kept across a power cut: action (0x04), ID request (0x06), initiate (0x01). */
export type OwedKind = 'action' | 'id_request' | 'initiate';

/** What the device records about a command it must answer, in the same durable change as its sequence ID. */
export interface Owe {
  readonly kind: OwedKind;
  /** The command's token (echoed by the answer). */
  readonly token: Uint8Array;
  /** The action id for 'action', else 0. */
  readonly actionId: number;
}

/** An answer the device owes a peer, from the command's acceptance until the broker took the answer (PUBACK). */
export interface OwedAnswer extends Owe {
  readonly peer: bigint;
  /** The command's sequence ID: with `peer`, what names the command. */
  readonly seq: bigint;
  /** The answer's status once it is decided (0 for an ID response), null until then. */
  readonly status: number | null;
}

/**
 * Replay counters, one pair per peer (sequence IDs are u64), the pending update token, and the answers owed.
 * Unknown peers read as 0n. Setters are durable on return.
 */
export interface SequenceStore {
  lastAccepted(peer: bigint): bigint;
  /** With `owe`: records the answer owed for this command in the same durable change (power loss keeps both or neither). */
  setLastAccepted(peer: bigint, seq: bigint, owe?: Owe): void;
  lastSent(peer: bigint): bigint;
  /**
   * With `answer`: the message sent answers the owed command `answer.seq` of `peer` with `answer.status`, recorded in
   * the same durable change as the counter.
   */
  setLastSent(peer: bigint, seq: bigint, answer?: { readonly seq: bigint; readonly status: number }): void;
  /** The answers owed, oldest first. */
  owed(): readonly OwedAnswer[];
  /** How many answers the store can keep owed at once; the agent owes no more than this (tokens up to MAX_OWED_TOKEN bytes). */
  readonly owedCapacity: number;
  /** The answer to command `seq` of `peer` reached the broker: it is owed no more. */
  settle(peer: bigint, seq: bigint): void;
  /** Forgets both counters of a peer and the answers owed to it (after deregistration). */
  forget(peer: bigint): void;
  pendingUpdate(): PendingUpdate | null;
  setPendingUpdate(p: PendingUpdate | null): void;
}

// ------------------------------------------------------------------------------------------------ presenter

/** What the device shows a person during a human-moderated join. */
export interface Presenter {
  /**
   * Shows the join challenge: `secret` is the decrypted one-time value exactly as received (pySRUP sends 32
   * lowercase hex characters). The presenter derives its picture (8×8 grid, blink code) with
   * modules/challenge so that the C2 console shows the same thing.
   */
  showChallenge(secret: Uint8Array): void;
  /** Stops showing it (join accepted, refused, failed, or superseded). */
  clearChallenge(): void;
}

// ------------------------------------------------------------------------------------------------ download, update

export type DownloadResult =
  | { readonly ok: true; readonly bytes: number }
  | { readonly ok: false; readonly error: 'http_error'; readonly status: number } // non-2xx answer
  | { readonly ok: false; readonly error: 'unreachable'; readonly message: string } // DNS, connect, TLS, reset
  | { readonly ok: false; readonly error: 'file'; readonly message: string } // cut off, sink refused, local I/O
  | { readonly ok: false; readonly error: 'aborted' };

/** Lets the agent end a running download (a newer initiate replaces it): the downloader sets `stop` while it runs. */
export interface DownloadControl {
  /** Ends the download at once (its connection closed); it resolves with error 'aborted'. */
  stop: (() => void) | null;
}

export interface Downloader {
  /**
   * Streams the body of `url` to `onChunk`, in order, never holding the whole body. A piece is valid during the
   * call only (a device's downloader reuses one buffer): keep a copy to keep it. Resolves once the body ended
   * (or failed); never rejects. If onChunk throws, the download stops with error 'file'. With `control`, the
   * downloader sets control.stop while the download runs.
   */
  download(url: string, onChunk: (chunk: Uint8Array) => void, control?: DownloadControl): Promise<DownloadResult>;
}

/** What the updater knows at boot about the last activated image. */
export type BootState =
  | 'normal' // no activation pending
  | 'unconfirmed' // running an activated image that has not been confirmed yet
  | 'rolled_back'; // an activated image failed and the previous one is running again

/** Two image slots, like ESP32 OTA partitions. */
export interface Updater {
  /**
   * Starts writing a new image into the inactive slot (erasing what was there). Throws while bootState() is
   * 'unconfirmed': the inactive slot then holds the image a rollback returns to (ESP-IDF refuses the same).
   */
  begin(): void;
  write(chunk: Uint8Array): void;
  /** The image is complete and may be activated later. */
  finish(): void;
  /** Discards a partly or fully written image. */
  abort(): void;
  /** Makes the finished image boot next and restarts the device. On a device this does not return. */
  activate(): void;
  /** The state at boot; 'unconfirmed' becomes 'normal' once confirm() succeeded. */
  bootState(): BootState;
  /** Marks the running image good (cancels rollback). Returns false if it cannot. */
  confirm(): boolean;
}

// ------------------------------------------------------------------------------------------------ all together

export interface AgentHost {
  transport: Transport;
  keys: KeyStore;
  sequences: SequenceStore;
  clock: Clock;
  crypto: Crypto;
  random: RandomBytes;
  presenter: Presenter;
  downloader: Downloader;
  updater: Updater;
  log: Log;
}
