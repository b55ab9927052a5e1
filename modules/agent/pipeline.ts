/**
 * The one receive pipeline every incoming MQTT message goes through, and the permission table.
 *
 *   topic    only SRUP/<own id> is ours                                  -> wrong_topic
 *   own      sender == own id: our own publish echoed back, dropped silently
 *   decode   strict decode (modules/srup/codec.ts)                       -> the SrupError reason
 *   key      the sender's key among trusted peers (keys.peerKey)         -> unknown_sender
 *   seen     sequence ID > sequences.lastAccepted(sender), strictly     -> replay (before any RSA)
 *   verify   RSASSA-PKCS1-v1_5 / SHA-256 over the signed bytes            -> bad_signature
 *   permit   PERMISSIONS below                                           -> not_permitted
 *   persist  sequences.setLastAccepted(sender, sequence ID)
 *
 * The topic check and the permission table are the device's; the other steps are the ones every SRUP peer runs
 * (admitMessage, modules/srup/session.ts). Only then does the caller act. A message that fails a step changes no
 * state at all (no counter moves, no key or server changes) and is logged once: warn 'rejected' {reason, ...}.
 * The reference advances its counter before verifying (SRUP-WIRE.md §12 item 14); this pipeline does not.
 */
import type { Crypto, RsaPublicKey } from '../../crypto/types.js';
import { idHex16 } from '../srup/bytes.js';
import type { Message, TypeName } from '../srup/schema.js';
import { admitMessage } from '../srup/session.js';
import { deviceTopic } from '../srup/topics.js';
import type { JoinKind } from './context.js';
import type { KeyStore, Log, Owe, SequenceStore } from './host.js';
import { MAX_OWED_TOKEN } from './host.js';

/**
 * Who may send a device each message type.
 *
 *   server        the device's current server (keys.serverId())
 *   trusted_peer  any sender whose key is in the key store; for join_command the device_id must be our own id,
 *                 and the sender becomes the server
 *   join_server   the server a join of ours is waiting on (agent.join(...)); only while it waits
 *   human_join    as join_server, and only while that join is a human-moderated one
 *   observed_join as join_server, and only while that join is an observed one
 *   never         a device never accepts it: device→server messages, and syndication (not supported)
 */
export type Rule = 'server' | 'trusted_peer' | 'join_server' | 'human_join' | 'observed_join' | 'never';

export const PERMISSIONS: Readonly<Record<TypeName, Rule>> = Object.freeze({
  initiate: 'server',
  activate: 'server',
  action: 'server',
  data: 'server',
  id_request: 'server',
  terminate_command: 'server',
  deregister_command: 'server',
  observation_request: 'server',
  join_command: 'trusted_peer',
  response: 'join_server',
  human_join_response: 'human_join',
  observed_join_response: 'observed_join',
  join_request: 'never',
  human_join_request: 'never',
  observed_join_request: 'never',
  resign_request: 'never',
  deregister_request: 'never',
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

export interface PipelineDeps {
  readonly self: bigint;
  readonly keys: KeyStore;
  readonly sequences: SequenceStore;
  readonly crypto: Crypto;
  readonly log: Log;
}

/** The join the agent is waiting on, if any (passed in by the agent with each message: data, not a call back). */
export type WaitingJoin = { readonly server: bigint; readonly kind: JoinKind } | null;

/** Why `m` from its sender is not allowed, or null when it is. */
export function permissionProblem(deps: PipelineDeps, join: WaitingJoin, m: Message): string | null {
  const rule = PERMISSIONS[m.type];
  switch (rule) {
    case 'server':
      return deps.keys.serverId() === m.senderId ? null : 'not_from_server';
    case 'trusted_peer':
      // The key lookup already proved the sender is trusted; the command must name this device.
      if (m.type === 'join_command' && m.fields.deviceId !== deps.self) return 'other_device';
      return null;
    case 'join_server':
      return join !== null && join.server === m.senderId ? null : 'no_join_pending';
    case 'human_join':
      return join !== null && join.server === m.senderId && join.kind === 'human' ? null : 'no_human_join_pending';
    case 'observed_join':
      return join !== null && join.server === m.senderId && join.kind === 'observed'
        ? null
        : 'no_observed_join_pending';
    case 'never':
      return 'not_for_devices';
  }
}

/**
 * Runs the pipeline over one MQTT message: the topic, the shared decision (admitMessage), the permission rule,
 * then the decision's `persist`. Returns the accepted message (its sequence ID persisted), or null when it was
 * dropped (logged, except for our own echoed messages).
 */
export function receive(deps: PipelineDeps, join: WaitingJoin, topic: string, payload: Uint8Array): Message | null {
  if (topic !== deviceTopic(deps.self)) {
    deps.log('warn', 'rejected', { reason: 'wrong_topic', topic });
    return null;
  }

  const a = admitMessage<RsaPublicKey>(
    {
      self: deps.self,
      crypto: deps.crypto,
      peer: (sender) => deps.keys.peerKey(sender),
      keyOf: (key) => key,
      lastAccepted: (sender) => deps.sequences.lastAccepted(sender),
    },
    payload,
  );
  const problem = a.ok ? permissionProblem(deps, join, a.message) : null;
  if (problem !== null && a.ok) {
    deps.log('warn', 'rejected', { reason: 'not_permitted', ...about(a.message), why: problem });
    return null;
  }
  if (!a.ok) {
    // reason null: our own publish echoed back, dropped silently.
    if (a.reason !== null) {
      // A replay is almost always the broker delivering again what was taken just before a restart: info.
      deps.log(a.reason === 'replay' ? 'info' : 'warn', 'rejected', { reason: a.reason, ...(a.message === null ? {} : about(a.message)), ...a.detail });
    }
    return null;
  }
  // A command that is answered is owed its answer from here on, in the same durable change as its counter.
  deps.sequences.setLastAccepted(a.persist.sender, a.persist.sequenceId, oweFor(deps, a.message));
  deps.log('debug', 'accepted', about(a.message));
  return a.message;
}

/**
 * What the device owes for `m` until the broker has its answer: commands that are answered (action, ID request,
 * initiate). Undefined for anything else, and — answered as before but without the guarantee across a power
 * cut, and logged — when the token is longer than MAX_OWED_TOKEN or the store already owes all it can keep.
 */
export function oweFor(deps: PipelineDeps, m: Message): Owe | undefined {
  let owe: Owe;
  if (m.type === 'action') owe = { kind: 'action', token: m.token, actionId: m.fields.actionId };
  else if (m.type === 'id_request') owe = { kind: 'id_request', token: m.token, actionId: 0 };
  else if (m.type === 'initiate') owe = { kind: 'initiate', token: m.token, actionId: 0 };
  else return undefined;
  const { sequences } = deps;
  if (m.token.length > MAX_OWED_TOKEN || sequences.owed().length >= sequences.owedCapacity) {
    deps.log('warn', 'answer_not_durable', { type: m.type, tokenLength: m.token.length, owed: sequences.owed().length });
    return undefined;
  }
  return owe;
}

function about(m: Message): { type: TypeName; sender: string; seq: string } {
  return { type: m.type, sender: idHex16(m.senderId), seq: m.sequenceId.toString() };
}
