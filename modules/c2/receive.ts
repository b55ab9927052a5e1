/**
 * The server's receive pipeline, with the same rules as the device agent's (modules/agent/agent.ts):
 *
 *   topic    SRUP/servers/<own id>/<device> or SRUP/<device>; anything else  -> wrong_topic
 *   own      sender == own id: our own publish echoed back on SRUP/<device>, dropped silently
 *   decode   strict decode (modules/srup/codec.ts)                           -> the SrupError reason
 *   key      the sender's key from the registry (provisioned beforehand)     -> unknown_sender
 *   seen     sequence ID > lastAccepted(sender), strictly                    -> replay (before any RSA)
 *   verify   RSASSA-PKCS1-v1_5 / SHA-256 over the signed bytes                -> bad_signature
 *   permit   PERMISSIONS below, and the topic must name the sender           -> not_permitted
 *   persist  setLastAccepted(sender, sequence ID)
 *
 * The topic check and the permission table are the server's; the other steps are the ones every SRUP peer runs
 * (openMessage and admitMessage, modules/srup/session.ts). A message that fails a step changes nothing and is logged once (warn
 * 'rejected'). Only an accepted message (its sequence ID already persisted) is handed to the engine to act on.
 */
import type { Crypto } from '../../crypto/types.js';
import type { Message, TypeName } from '../srup/schema.js';
import { admitMessage, openMessage } from '../srup/session.js';
import type { Admission, AdmissionReason } from '../srup/session.js';
import { parseTopic } from '../srup/topics.js';
import type { ParsedTopic } from '../srup/topics.js';
import { idHex16 } from '../srup/bytes.js';
import type { FloodGate } from '../srup/flood.js';
import type { Log } from '../srup/ports.js';
import type { DeviceRecord, Registry } from './registry.js';

/**
 * Who may send the server each message type, and where.
 *
 *   join        on SRUP/servers/<own id>/<sender>, from any provisioned device (whatever its state)
 *   joined      on SRUP/<sender>, from a device in state 'joined'
 *   never       a server never acts on it: server→device messages, and syndication (not supported)
 */
export type Rule = 'join' | 'joined' | 'never';

export const PERMISSIONS: Readonly<Record<TypeName, Rule>> = Object.freeze({
  join_request: 'join',
  human_join_request: 'join',
  observed_join_request: 'join',
  response: 'joined',
  data: 'joined',
  resign_request: 'joined',
  deregister_request: 'joined',
  initiate: 'never',
  activate: 'never',
  action: 'never',
  id_request: 'never',
  join_command: 'never',
  human_join_response: 'never',
  observed_join_response: 'never',
  observation_request: 'never',
  terminate_command: 'never',
  deregister_command: 'never',
  syndication_init: 'never',
  syndicated_action: 'never',
  syndicated_data: 'never',
  syndicated_id_request: 'never',
  syndicated_device_count: 'never',
  syndicated_device_list: 'never',
  syndication_request: 'never',
  syndicated_c2_request: 'never',
  syndication_end_request: 'never',
  syndicated_terminate: 'never',
});

export interface ReceiveDeps {
  readonly self: bigint;
  readonly registry: Registry;
  readonly crypto: Crypto;
  readonly log: Log;
  /** Sheds implausible messages while the server is flooded (modules/srup/flood.ts); absent: checks all. */
  readonly flood?: FloodGate;
}

/** Why the server refused a received message: not on one of its topics, or a step of the shared admission. */
export type ReceiveRejectionReason = AdmissionReason | 'wrong_topic';

/** Why a sender's message is not permitted (logged as `why` with reason 'not_permitted'). */
export type PermissionProblem = 'not_for_servers' | 'not_on_join_topic' | 'not_on_own_topic' | 'not_joined';

export type Rejection = { readonly reason: ReceiveRejectionReason; readonly sender: bigint | null };
export type Received = { readonly ok: true; readonly message: Message } | { readonly ok: false; readonly rejection: Rejection | null };

/** Runs the pipeline over one MQTT message. `rejection` is null for our own echoed messages (not an error). */
export function receive(deps: ReceiveDeps, topic: string, payload: Uint8Array): Received {
  const reject = (reason: ReceiveRejectionReason, sender: bigint | null, detail: Record<string, string | number | boolean | null> = {}): Received => {
    // A replay is almost always the broker delivering again what was taken just before a restart: info.
    deps.log(reason === 'replay' ? 'info' : 'warn', 'rejected', { reason, topic, ...(sender === null ? {} : { sender: idHex16(sender) }), ...detail });
    return { ok: false, rejection: { reason, sender } };
  };

  const where = parseTopic(topic);
  if (where.kind === 'other' || (where.kind === 'join' && where.server !== deps.self)) {
    return reject('wrong_topic', null);
  }

  const { registry } = deps;
  const o = openMessage(deps.self, payload);
  let a: Admission<DeviceRecord>;
  if (o.ok) {
    const sender = o.message.senderId;
    const d = registry.device(sender);
    const last = d === null ? 0n : registry.replayFloor !== undefined ? registry.replayFloor(sender) : registry.sequence(sender).lastAccepted;
    let ceiling: bigint | null = null;
    if (d !== null && deps.flood !== undefined && deps.flood.behind) {
      // Only while flooded: on PostgreSQL reading the counters is a round trip.
      const s = registry.sequence(sender);
      ceiling = deps.flood.ceiling(s.lastSent, s.lastAccepted);
    }
    a = admitMessage(deps.crypto, o.message, { peer: d, key: d === null ? null : d.publicKey, lastAccepted: last, ceiling });
  } else a = o;
  if (!a.ok && a.reason === 'implausible') {
    deps.flood?.shed(); // counted, logged now and then: a flood must not cost a log line each
    return { ok: false, rejection: { reason: 'implausible', sender: a.message?.senderId ?? null } };
  }
  if (a.ok) {
    const problem = permissionProblem(where, a.message, a.peer);
    if (problem !== null) return reject('not_permitted', a.message.senderId, { ...about(a.message), why: problem });
  }
  if (!a.ok) {
    if (a.reason === null) return { ok: false, rejection: null };
    if (a.message === null) return reject(a.reason, null, a.detail);
    return reject(a.reason, a.message.senderId, { ...about(a.message), ...a.detail });
  }
  const m = a.message;
  registry.setLastAccepted(a.persist.sender, a.persist.sequenceId);
  deps.log('debug', 'accepted', { ...about(m), sender: idHex16(m.senderId) });
  return { ok: true, message: m };
}

/** Why the server does not take `m` from `device` on the topic `where`, or null when it does. */
function permissionProblem(where: ParsedTopic, m: Message, device: DeviceRecord): PermissionProblem | null {
  const rule = PERMISSIONS[m.type];
  if (rule === 'never') return 'not_for_servers';
  if (rule === 'join') {
    return where.kind !== 'join' || where.device !== m.senderId ? 'not_on_join_topic' : null;
  }
  if (where.kind !== 'device' || where.device !== m.senderId) return 'not_on_own_topic';
  return device.state !== 'joined' ? 'not_joined' : null;
}

function about(m: Message): { type: TypeName; seq: string } {
  return { type: m.type, seq: m.sequenceId.toString() };
}
