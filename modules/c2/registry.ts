/**
 * What the C2 engine remembers, behind one synchronous interface: devices, replay counters, update
 * conversations and an audit log. Implementations: in memory (memory-registry.ts), SQLite (the embedded
 * default) and PostgreSQL (several server nodes on one fleet), both in hosts/node. Every read is synchronous, and
 * every write is durable when it returns — except inside group(), whose writes are durable when its promise
 * resolves: the engine persists an outgoing sequence ID before it publishes the message, and an accepted one
 * before it acts on the message, and lets the writes of commands that arrive together share one commit.
 *
 * Values are plain data: ids are bigint (u64), tokens the engine creates are 36-character uuid4 text, tokens
 * received from devices are raw bytes, times are the host clock's milliseconds. Implementations return copies
 * (or immutable rows): changing a returned object never changes the stored state.
 */
import type { RsaPublicKey } from '../../crypto/types.js';

/**
 * provisioned   key registered, never joined (or joined again after a refused/failed join)
 * pending       a join is in progress (request received, challenge or observation under way, or deferred)
 * joined        controlled by this server: its topic is subscribed and commands may be sent
 * refused       the last join was refused (0x5E)
 * failed        the last join failed (0x5F)
 * terminated    a terminate command (0x11) was sent
 * deregistered  a deregister command (0x13) was sent or the device sent a deregister request (0x12)
 * resigned      the device sent a resign request (0x10)
 */
export type DeviceState =
  | 'provisioned'
  | 'pending'
  | 'joined'
  | 'refused'
  | 'failed'
  | 'terminated'
  | 'deregistered'
  | 'resigned';

/** How the device joined (or is joining): join_request, human_join_request, observed_join_request, join_command. */
export type JoinKind = 'simple' | 'human' | 'observed' | 'command';

/**
 * Which conventions beyond the wire format the device follows (SRUP-WIRE.md §7, §11):
 *
 * srup       this project's device agent: answers an action (0x20 / 0x2E / 0x2F) and confirms an activation
 *            after its restart (0x10 / 0x1F)
 * reference  the reference implementation (pySRUP): answers neither an action nor an activate
 *
 * Set when the device is registered (default 'srup'), or inferred: an IDENTIFICATION_RESPONSE that starts with
 * "pySRUP version" makes it 'reference'.
 */
export type DeviceProfile = 'srup' | 'reference';

export const DEVICE_PROFILES: readonly DeviceProfile[] = ['srup', 'reference'];

export function isDeviceProfile(v: unknown): v is DeviceProfile {
  return v === 'srup' || v === 'reference';
}

export interface DeviceRecord {
  readonly id: bigint;
  readonly publicKey: RsaPublicKey;
  readonly state: DeviceState;
  /** What the device answers: see DeviceProfile. */
  readonly profile: DeviceProfile;
  readonly joinKind: JoinKind | null;
  /**
   * The token the join answer (0x50/0x5E/0x5F) will carry: the join request's token for a simple join, the
   * token of the 0x0C / 0x0E the server sent for a human-moderated / observed join. Null when no join is pending.
   */
  readonly joinToken: Uint8Array | null;
  /** The one-time secret of a human-moderated or observed join (32 lowercase hex characters), or null. */
  readonly joinSecret: string | null;
  /** Observed join: the observer named in the 0x0D request, and the token of the 0x0F sent to it. */
  readonly observerId: bigint | null;
  readonly observationToken: Uint8Array | null;
  /** Host-clock time of the last accepted message from the device, or null. */
  readonly lastSeen: number | null;
  /** The last IDENTIFICATION_RESPONSE string, and the name/version read from it (null when it has no version). */
  readonly identification: string | null;
  readonly firmwareName: string | null;
  readonly firmwareVersion: string | null;
  /** The last response (0x02) the device sent: status byte, token, time. */
  readonly lastResponse: { readonly status: number; readonly token: Uint8Array; readonly at: number } | null;
  readonly createdAt: number;
  readonly updatedAt: number;
}

/** Fields the engine changes on a device; `id`, `publicKey` and `createdAt` are fixed at provisioning. */
export type DevicePatch = Partial<Omit<DeviceRecord, 'id' | 'createdAt' | 'updatedAt'>>;

/** Replay counters for one peer. Both start at 0n. */
export interface SequenceState {
  /** The highest sequence ID sent to the peer. */
  readonly lastSent: bigint;
  /** The highest sequence ID accepted from the peer. */
  readonly lastAccepted: bigint;
}

/**
 * initiated   initiate (0x01) sent, waiting for the device's response
 * staged      the device fetched the file and the digest matched (0x00)
 * activating  activate (0x03) sent, waiting for the post-reboot confirmation (for a 'reference' device: waiting
 *             for the broker to take it)
 * confirmed   the device confirmed the new image (0x10)
 * activated   the broker took the activate for a device that never confirms (profile 'reference'): as far as
 *             the server can know, done; a later 0x10 / 0x1F still moves it to 'confirmed' / 'failed'
 * failed      the device reported a failure (status set) or a wait timed out (status null)
 *
 * 'confirmed', 'activated' and 'failed' end an update.
 */
export type UpdateState = 'initiated' | 'staged' | 'activating' | 'confirmed' | 'activated' | 'failed';

/** True for the states that end an update: 'confirmed', 'activated', 'failed'. */
export function updateEnded(state: UpdateState): boolean {
  return state === 'confirmed' || state === 'activated' || state === 'failed';
}

export interface UpdateRecord {
  /** The initiate's token (uuid4 text); the response and the activate carry the same token. */
  readonly token: string;
  readonly device: bigint;
  readonly url: string;
  /** Lowercase hex SHA-256 of the file, as sent (without the trailing 00). */
  readonly digest: string;
  readonly state: UpdateState;
  /** The last status byte received for this update (0x00, 0xFC-0xFF, 0x10, 0x1F), null if none. */
  readonly status: number | null;
  /** Why it failed when no status says so: 'initiate_timeout', 'activate_timeout'; otherwise null. */
  readonly failure: string | null;
  readonly createdAt: number;
  readonly updatedAt: number;
}

export type UpdatePatch = Partial<Pick<UpdateRecord, 'state' | 'status' | 'failure'>>;

/** One line of the audit log: every message the engine sends and every message it accepts. */
export interface AuditEntry {
  /** Assigned by the registry: 1, 2, 3... in insertion order. */
  readonly seq: number;
  readonly at: number;
  readonly direction: 'out' | 'in';
  /** The device the message went to or came from. */
  readonly device: bigint;
  /** Message type name (schema.ts), e.g. 'initiate', 'response'. */
  readonly type: string;
  readonly sequenceId: bigint;
  readonly token: Uint8Array;
  /** Response status byte, when the message is a response. */
  readonly status: number | null;
  /**
   * The message as it went over the wire: whole up to 1 KiB, else its first 1 KiB (core.ts AUDIT_MAX_BYTES;
   * header, token, signature and the start of the fields).
   */
  readonly bytes: Uint8Array;
}

export type AuditInput = Omit<AuditEntry, 'seq'>;

export interface AuditQuery {
  readonly device?: bigint;
  /** Only entries with seq greater than this. */
  readonly after?: number;
  /** At most this many, the oldest first. */
  readonly limit?: number;
}

/** A data message a device sent (not its ID response), as the registry keeps it. */
export interface ReadingInput {
  readonly device: bigint;
  readonly dataId: string;
  readonly at: number;
  readonly token: Uint8Array;
  /** The payload as it came (the wire carries no type; see modules/srup/data.ts). */
  readonly data: Uint8Array;
}

export interface Reading extends ReadingInput {
  /** Increasing over all readings. */
  readonly seq: number;
}

/** How many readings a registry keeps per device and data id (the oldest go first). */
export const READINGS_PER_DATA_ID = 100;

export interface Registry {
  // ------------------------------------------------------------------------------------------ devices
  device(id: bigint): DeviceRecord | null;
  /** Every device, optionally only those in one state, ordered by id. */
  devices(state?: DeviceState): DeviceRecord[];
  /**
   * Provisioning: registers a device's public key (state 'provisioned'). Registering a known id replaces its
   * key and resets it to 'provisioned' with no join in progress. `profile` defaults to the known device's
   * profile, or 'srup' for a new one.
   */
  addDevice(id: bigint, publicKey: RsaPublicKey, now: number, profile?: DeviceProfile): DeviceRecord;
  /** Changes some fields of a known device; throws if the device is unknown. Returns the new record. */
  updateDevice(id: bigint, patch: DevicePatch, now: number): DeviceRecord;
  /**
   * Forgets a device entirely: record, counters and update records. False if it was unknown. With keepCounters
   * its sequence counters stay (a device registered again under the same id never gets an ID it had already).
   */
  removeDevice(id: bigint, options?: { keepCounters?: boolean }): boolean;
  /**
   * What each message received from a device records (the hot path): lastSeen and updatedAt set to `now`, and
   * lastResponse when given; nothing else changes and nothing is read back. An unknown id changes nothing.
   */
  markSeen(id: bigint, now: number, lastResponse: { status: number; token: Uint8Array; at: number } | null): void;

  // ------------------------------------------------------------------------------------------ sequence IDs
  sequence(peer: bigint): SequenceState;
  setLastSent(peer: bigint, seq: bigint): void;
  /**
   * Records `seq` as accepted from `peer`; lastAccepted never moves back. When `seq` was accepted already
   * (another server node on the same database took the same message first) this throws
   * C2Error('already_accepted') and changes nothing, so that no message is acted on twice.
   */
  setLastAccepted(peer: bigint, seq: bigint): void;
  /**
   * The replay rule's floor: a message whose sequence ID is at or below it is a replay. Without this method it
   * is lastAccepted (each message must be newer than every one accepted before). A registry shared by several
   * server nodes, which may take one device's messages out of order, returns lastAccepted minus a window and
   * remembers each ID it accepted within it (setLastAccepted refuses a second one).
   */
  replayFloor?(peer: bigint): bigint;
  /**
   * The next sequence ID to send to `peer`, nextSequenceId(lastSent, lastAccepted) (modules/srup/topics.ts),
   * stored as lastSent in the same step: two callers (two server nodes on one database included) never get the
   * same value.
   */
  allocateSequence(peer: bigint): bigint;
  /** Resets both counters of a peer to 0n. */
  forgetSequence(peer: bigint): void;

  // ------------------------------------------------------------------------------------------ updates
  addUpdate(u: { token: string; device: bigint; url: string; digest: string }, now: number): UpdateRecord;
  update(token: string): UpdateRecord | null;
  /** Updates of a device (or all), oldest first. */
  updates(device?: bigint): UpdateRecord[];
  setUpdate(token: string, patch: UpdatePatch, now: number): UpdateRecord;

  // ------------------------------------------------------------------------------------------ audit log
  appendAudit(entry: AuditInput): AuditEntry;
  /** appendAudit when the caller needs nothing back (the hot path): on a remote database, no answer waited for. */
  recordAudit(entry: AuditInput): void;
  audit(query?: AuditQuery): AuditEntry[];

  // ------------------------------------------------------------------------------------------ group commit
  /**
   * Runs `fn` now and resolves with its value once every write it made is durable. Writes of the groups begun
   * in the same turn of the event loop may share one commit. If `fn` throws, the promise rejects with what it
   * threw, and a durable registry undoes the writes `fn` made (the memory registry keeps them).
   */
  group<T>(fn: () => T): Promise<T>;

  // ------------------------------------------------------------------------------------------ data history
  /** Keeps a reading; only the last READINGS_PER_DATA_ID per device and data id stay. */
  appendReading(r: ReadingInput): Reading;
  /** A device's readings, oldest first: of one data id, or of all (the last READINGS_PER_DATA_ID of each). */
  readings(device: bigint, dataId?: string): Reading[];
}

/**
 * The record addDevice stores for `id`: state 'provisioned' with no join in progress. When it replaces `old`,
 * what the server learnt about the device (last seen, identification, profile, last response) and its creation
 * time are kept; a `profile` given replaces the old one. Every Registry implementation builds it here, so that
 * they cannot drift apart.
 */
export function provisionedRecord(
  id: bigint,
  publicKey: RsaPublicKey,
  old: DeviceRecord | null,
  now: number,
  profile?: DeviceProfile,
): DeviceRecord {
  return {
    id,
    publicKey,
    state: 'provisioned',
    profile: profile ?? (old ? old.profile : 'srup'),
    joinKind: null,
    joinToken: null,
    joinSecret: null,
    observerId: null,
    observationToken: null,
    lastSeen: old ? old.lastSeen : null,
    identification: old ? old.identification : null,
    firmwareName: old ? old.firmwareName : null,
    firmwareVersion: old ? old.firmwareVersion : null,
    lastResponse: old ? old.lastResponse : null,
    createdAt: old ? old.createdAt : now,
    updatedAt: now,
  };
}
