/**
 * What the agent's flows (join.ts, update.ts, commands.ts) share with the Agent: the host, the options, where
 * events go (AgentEvents), and the shape of a message a flow asks the agent to send (Reply). Also the agent's error type; the
 * token generator comes from modules/srup/session.ts, shared with the server.
 *
 * No flow sends: a flow returns the message its step answers with (a Reply, a value), and the Agent, which
 * drives every message from the transport to the answer, sends it (agent.ts). Calls go down only.
 */
import type { FieldsOf, TypeName } from '../srup/schema.js';
import type { AdmissionReason } from '../srup/session.js';
import type { AgentHost, Log, OwedKind } from './host.js';

// ------------------------------------------------------------------------------------------------ options

/** An action handler: true means done (0x20); false or a throw means failed (0x2F). */
export type ActionHandler = (actionId: number) => boolean | Promise<boolean>;

export interface AgentOptions {
  /** Sent, with the version, as the answer to an ID request: `"<firmwareName> <firmwareVersion>"`. */
  firmwareName: string;
  firmwareVersion: string;
  /** Action handlers by action id (0-255). An id with no handler is answered 0x2E. */
  actions?: Record<number, ActionHandler> | Map<number, ActionHandler>;
  /** Data from the server. `dataId` is the UTF-8 data id; `bytes` the raw payload (see modules/srup/data.ts). */
  onData?: (dataId: string, bytes: Uint8Array) => void;
  /**
   * Observer hook for an observed join: the value this device saw locally from `joiningDeviceId` (e.g. read from
   * its camera or typed in), or null if it saw nothing. Missing, null, a throw or a timeout all answer 0x6F.
   */
  observe?: (joiningDeviceId: bigint) => Promise<Uint8Array | null> | Uint8Array | null;
  /** Receives every AgentEvent (same as agent.on(listener)). */
  onEvent?: (event: AgentEvent) => void;
  /** How long a join waits for its result (default 120 000 ms). */
  joinTimeoutMs?: number;
  /** How long the observe hook may take (default 60 000 ms). */
  observeTimeoutMs?: number;
  /** How many data messages (sendData) may wait for the broker while offline (default 8). */
  queueLimit?: number;
}

// ------------------------------------------------------------------------------------------------ events

export type JoinKind = 'simple' | 'human' | 'observed';

/** Why a received message was refused: not on this device's topic, or a step of the shared admission. */
export type RejectionReason = AdmissionReason | 'wrong_topic';
export type JoinOutcome = 'joined' | 'refused' | 'failed' | 'timeout';

/** What the agent tells the application and host. Ids are bigint; tokens are the raw token bytes. */
export type AgentEvent =
  | { type: 'connected'; sessionPresent: boolean }
  | { type: 'disconnected'; reason: string }
  /** A received message failed a check (bad signature, replay, unknown sender, ...) and changed nothing. */
  | { type: 'rejected'; reason: RejectionReason }
  /** After a restart: an answer owed by the previous run sent again; `interrupted` when it was never decided. */
  | { type: 'answer_resent'; server: bigint; kind: OwedKind; token: Uint8Array; status: number; interrupted: boolean }
  | { type: 'join_requested'; kind: JoinKind; server: bigint }
  /** Joined a server: after a join result 0x50, or a join_command. */
  | { type: 'joined'; server: bigint; via: JoinKind | 'join_command' }
  | { type: 'join_refused'; server: bigint; kind: JoinKind }
  | { type: 'join_failed'; server: bigint; kind: JoinKind; reason: 'failed' | 'timeout' | 'closed' }
  | { type: 'challenge_shown'; server: bigint; kind: 'human' | 'observed' }
  | { type: 'challenge_cleared'; server: bigint }
  | { type: 'observation'; server: bigint; joiningDevice: bigint; status: number }
  | { type: 'action'; actionId: number; status: number }
  | { type: 'data'; dataId: string; length: number }
  | { type: 'id_request'; server: bigint }
  | { type: 'update_started'; server: bigint; url: string }
  | { type: 'update_failed'; server: bigint; status: number }
  | { type: 'update_staged'; server: bigint; token: Uint8Array }
  | { type: 'update_activating'; server: bigint; token: Uint8Array }
  | { type: 'activate_refused'; server: bigint }
  | { type: 'update_confirmed'; server: bigint; token: Uint8Array }
  | { type: 'update_not_confirmed'; server: bigint; token: Uint8Array; bootState: string }
  | { type: 'terminated'; server: bigint }
  | { type: 'deregistered'; server: bigint; by: 'server' | 'device' }
  | { type: 'resigned'; server: bigint };

// ------------------------------------------------------------------------------------------------ errors

export type AgentErrorReason =
  | 'not_started' // start() was not called, or close() was
  | 'already_started'
  | 'no_server' // the operation needs a server and the device has none
  | 'no_server_key' // no trusted key for the server, so its answers could never be verified
  | 'busy' // a join is already waiting for its result
  | 'bad_argument'
  | 'publish_failed' // the broker did not take a message the caller asked to send
  | 'not_joined' // a join ended without joining (refused, failed, timed out)
  | 'queue_full'; // too many messages wait for the broker (offline): AgentOptions.queueLimit

/** Thrown (or rejected) by the agent's public methods; received messages never throw. */
export class AgentError extends Error {
  readonly reason: AgentErrorReason;
  constructor(reason: AgentErrorReason, message: string) {
    super(message);
    this.name = 'AgentError';
    this.reason = reason;
  }
}

// ------------------------------------------------------------------------------------------------ context

/**
 * A message a flow's step answers with, for the Agent to send through the outbox (outbox.ts: sequence ID,
 * persist, topic, offline queue). `answering`: the sequence ID of the command this message answers (its answer
 * is owed across a power cut).
 */
export type Reply = {
  readonly [T in TypeName]: {
    readonly type: T;
    readonly peer: bigint;
    readonly token: Uint8Array;
    readonly fields: FieldsOf<T>;
    readonly answering?: bigint;
  };
}[TypeName];

/**
 * Where the agent's events go: the application's listeners. The Agent and its long-running flows report through
 * it, so that a flow's events go down to the listeners, never back up through the Agent.
 */
export class AgentEvents {
  private readonly listeners = new Set<(e: AgentEvent) => void>();

  constructor(private readonly log: Log) {}

  /** Adds a listener; returns a function that removes it. */
  on(listener: (e: AgentEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Tells every listener; a listener that throws is logged and the others still hear it. */
  emit(e: AgentEvent): void {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch (err) {
        this.log('warn', 'listener_threw', { event: e.type, why: String(err) });
      }
    }
  }
}

/** The agent as its long-running flows (join.ts, update.ts) see it: they report progress as events. */
export interface AgentContext {
  readonly host: AgentHost;
  readonly options: AgentOptions;
  /** This device's id (host.keys.deviceId). */
  readonly self: bigint;
  readonly events: AgentEvents;
}

/** The token generator, shared with the server side (modules/srup/session.ts). */
export { uuid4 } from '../srup/session.js';

/** Compares secret byte strings without an early exit (crypto/equal.ts: the one comparison). */
export { constantTimeEqual } from '../../crypto/equal.js';
