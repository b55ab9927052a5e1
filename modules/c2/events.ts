/** What the engine tells the application: one event type, a union of small records. */
import type { DeviceProfile, JoinKind, UpdateRecord } from './registry.js';
import type { ColourIndex } from '../challenge/index.js';
import type { ReceiveRejectionReason } from './receive.js';

/** The picture of a join secret, for the operator to compare with what the device shows. */
export interface Challenge {
  /** The one-time secret the engine generated and sent (32 lowercase hex characters). */
  readonly secret: string;
  /** The 8×8 grid (64 colour indices, row-major from the top-left), as modules/challenge draws it. */
  readonly grid: readonly ColourIndex[];
  /** The 10-digit blink code (digits 1..4), as modules/challenge derives it. */
  readonly blink: string;
}

export type RemovalReason = 'terminated' | 'deregistered' | 'resigned';

/** Why an incoming message was dropped: the receive steps' reason, or over the sender's rate (before them). */
export type RejectedReason = ReceiveRejectionReason | 'rate_limited';

export type C2Event =
  | { type: 'connected'; sessionPresent: boolean }
  | { type: 'disconnected'; reason: string }
  /** A join request passed the receive pipeline (before any hook decided). */
  | { type: 'join_request'; device: bigint; kind: Exclude<JoinKind, 'command'>; observer: bigint | null }
  /** A human-moderated or observed join's secret was sent; show `challenge` to the operator. */
  | { type: 'challenge'; device: bigint; kind: 'human' | 'observed'; challenge: Challenge }
  /** The observation request 0x0F was sent to the observer. */
  | { type: 'observation_requested'; device: bigint; observer: bigint }
  /** The observer answered 0x60 / 0x6E / 0x6F. */
  | { type: 'observation_result'; device: bigint; observer: bigint; status: number }
  | { type: 'joined'; device: bigint; kind: JoinKind }
  | { type: 'join_refused'; device: bigint; kind: JoinKind | null }
  | { type: 'join_failed'; device: bigint; kind: JoinKind | null }
  /** Every accepted response (0x02), matched or not. */
  | { type: 'response'; device: bigint; status: number; token: Uint8Array }
  /** Data from a device (IDENTIFICATION_RESPONSE data is reported as 'identification' instead). */
  | { type: 'data'; device: bigint; dataId: string; data: Uint8Array; token: Uint8Array }
  | { type: 'identification'; device: bigint; text: string; firmwareName: string | null; firmwareVersion: string | null }
  /** A device's profile changed: set by the operator, or inferred from its ID response ("pySRUP version ..."). */
  | { type: 'profile'; device: bigint; profile: DeviceProfile; inferred: boolean }
  /** An update changed state. */
  | { type: 'update'; update: UpdateRecord }
  | { type: 'removed'; device: bigint; reason: RemovalReason; by: 'server' | 'device' }
  /** A device sent an answer or reading again (same token; after a power cut or a lost connection): taken once. */
  | { type: 'duplicate'; device: bigint; messageType: string; token: Uint8Array }
  /** An incoming message failed the receive pipeline; nothing changed. */
  | { type: 'rejected'; reason: RejectedReason; topic: string; sender: bigint | null };

export type C2Listener = (event: C2Event) => void;
