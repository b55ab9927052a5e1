/**
 * The server's inbound queue (modules/srup/inbox.ts) over its registry: what the server refuses without a
 * signature check, how far a message's sequence ID is from the one expected next, and the server's bound.
 */
import { peekHeader } from '../srup/codec.js';
import { InboundQueue } from '../srup/inbox.js';
import type { Clock, Log } from '../srup/ports.js';
import { parseTopic } from '../srup/topics.js';
import type { Registry } from './registry.js';

/** Messages the server keeps waiting at most, all devices together. */
export const SERVER_INBOX_MESSAGES = 1024;
/** Bytes the server keeps waiting at most (one message always fits, whatever its size). */
export const SERVER_INBOX_BYTES = 16 * 1024 * 1024;

export interface ServerInboxDeps {
  readonly self: bigint;
  readonly registry: Registry;
  readonly clock: Clock;
  readonly log: Log;
  /** True when the engine refuses this device's message by its rate limit (no signature check either). */
  limited(header: { readonly code: number; readonly senderId: bigint }): boolean;
}

/**
 * The queue in front of the engine's receive steps (`process`). A message is refused without a signature check
 * when its topic is not one of ours, its header does not decode, it is our own, its sender is not a registered
 * device, the device is over its rate or the sequence ID was seen; otherwise it ranks by its step past
 * max(last accepted from, last sent to) that device (a genuine device's next message is one more than both).
 */
export function serverInbox(deps: ServerInboxDeps, process: (topic: string, payload: Uint8Array) => void): InboundQueue {
  const { registry } = deps;
  return new InboundQueue({
    clock: deps.clock,
    log: deps.log,
    maxMessages: SERVER_INBOX_MESSAGES,
    maxBytes: SERVER_INBOX_BYTES,
    process,
    rank(topic, payload) {
      const where = parseTopic(topic);
      if (where.kind === 'other' || (where.kind === 'join' && where.server !== deps.self)) return null;
      const h = peekHeader(payload);
      if (h.senderId === deps.self || registry.device(h.senderId) === null || deps.limited(h)) return null;
      const floor = registry.replayFloor !== undefined ? registry.replayFloor(h.senderId) : registry.sequence(h.senderId).lastAccepted;
      if (h.sequenceId <= floor) return null;
      const { lastSent, lastAccepted } = registry.sequence(h.senderId);
      const step = h.sequenceId - (lastSent > lastAccepted ? lastSent : lastAccepted);
      // Several server nodes may take one device's messages out of order (replayFloor): never below 1.
      return step > 0n ? step : 1n;
    },
  });
}
