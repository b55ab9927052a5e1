/**
 * The device's inbound queue (modules/srup/inbox.ts) over its host: what the device refuses without a signature
 * check, how far a message's sequence ID is from the one expected next, and the device's bound.
 */
import { peekHeader } from '../srup/codec.js';
import { InboundQueue } from '../srup/inbox.js';
import { deviceTopic } from '../srup/topics.js';
import type { AgentHost } from './host.js';

/** Messages the device keeps waiting at most: a few signed commands (a forged one is ~0.3-0.7 KiB). */
export const DEVICE_INBOX_MESSAGES = 8;
/** Bytes the device keeps waiting at most (one message always fits, whatever its size). */
export const DEVICE_INBOX_BYTES = 8 * 1024;

/**
 * The queue in front of the agent's receive steps (`process`). A message is refused without a signature check
 * when it is not on our topic, its header does not decode, it is our own, its sender is not a trusted peer or
 * its sequence ID was seen; otherwise it ranks by its step past max(last accepted from, last sent to) that
 * sender (a genuine peer's next message is one more than both: modules/srup/topics.ts nextSequenceId).
 */
export function deviceInbox(host: AgentHost, self: bigint, process: (topic: string, payload: Uint8Array) => void): InboundQueue {
  const topic = deviceTopic(self);
  return new InboundQueue({
    clock: host.clock,
    log: host.log,
    maxMessages: DEVICE_INBOX_MESSAGES,
    maxBytes: DEVICE_INBOX_BYTES,
    process,
    rank(t, payload) {
      if (t !== topic) return null;
      const { senderId, sequenceId } = peekHeader(payload);
      if (senderId === self || host.keys.peerKey(senderId) === null) return null;
      const accepted = host.sequences.lastAccepted(senderId);
      if (sequenceId <= accepted) return null;
      const sent = host.sequences.lastSent(senderId);
      return sequenceId - (sent > accepted ? sent : accepted);
    },
  });
}
