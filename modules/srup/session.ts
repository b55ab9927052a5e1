/**
 * The rules both ends of a SRUP conversation follow, device and server alike: how a message is signed and
 * verified, what a received message must pass before anyone acts on it, how an outgoing message becomes bytes,
 * and how a new conversation token is made.
 * Each side keeps its own topic check, permission table and logging (modules/agent/agent.ts,
 * modules/c2/receive.ts); the steps themselves live here once.
 *
 *   own      sender == own id: our own publish echoed back, dropped silently          -> reason null
 *   decode   strict decode (codec.ts)                                                  -> the SrupError reason
 *   key      the sender's key, from the side's trust store                             -> unknown_sender
 *   seen     sequence ID > lastAccepted(sender), strictly                              -> replay
 *   flood    sequence ID <= the side's ceiling while it is behind (flood.ts)             -> implausible
 *   verify   RSASSA-PKCS1-v1_5 / SHA-256 over the signed bytes                         -> bad_signature
 *   permit   the side's permission rule                                                -> not_permitted
 *   persist  setLastAccepted(sender, sequence ID)
 *
 * A message that fails a step changes no state. Everything that can be refused without RSA is refused before
 * the signature is checked (a signature costs tens of milliseconds on an ESP32): a flood of forgeries that
 * reuse seen sequence IDs, name unknown senders or do not decode costs no signature check at all. The reference
 * advances its counter before verifying (SRUP-WIRE.md §12 item 14); these steps do not.
 */
import { CryptoError } from '../../crypto/types.js';
import type { Crypto, RandomBytes, RsaPrivateKey, RsaPublicKey } from '../../crypto/types.js';
import { utf8 } from './bytes.js';
import { encode, peekHeader, signedBytes, tryDecode } from './codec.js';
import type { SrupErrorReason } from './errors.js';
import type { Message, MessageOf, TypeName, UnsignedMessage, UnsignedOf } from './schema.js';
import { nextSequenceId } from './topics.js';

// ------------------------------------------------------------------------------------------------ signatures

/**
 * Signs a message: the result is the same message with its signature. RSASSA-PKCS1-v1_5 / SHA-256 over the
 * signed bytes (SRUP-WIRE.md §5).
 */
export function sign<T extends TypeName>(crypto: Crypto, key: RsaPrivateKey, m: UnsignedOf<T>): MessageOf<T>;
/** Signs a message whose type is only known at run time. */
export function sign(crypto: Crypto, key: RsaPrivateKey, m: UnsignedMessage): Message;
export function sign(crypto: Crypto, key: RsaPrivateKey, m: UnsignedMessage): Message {
  const signature = crypto.sign(key, signedBytes(m));
  return { ...m, signature } as Message;
}

/** True when the message's signature verifies with `key`. Never throws for a well-formed message. */
export function verify(crypto: Crypto, key: RsaPublicKey, m: Message): boolean {
  return crypto.verify(key, signedBytes(m), m.signature);
}

// ------------------------------------------------------------------------------------------------ receiving

/**
 * What one side knows of a message's sender, read from its own stores between the two steps. `P` is the sender
 * as that side knows it (a key, a record); `peer` and `key` are null when the sender is not trusted here.
 */
export interface SenderView<P> {
  readonly peer: P | null;
  /** The key the sender's signature must verify with. */
  readonly key: RsaPublicKey | null;
  /** The last sequence ID accepted from the sender (any value for an untrusted sender: it is not compared). */
  readonly lastAccepted: bigint;
  /** The highest sequence ID the side checks now (flood.ts: while it is behind); null or absent: any. */
  readonly ceiling?: bigint | null;
}

export type RejectionDetail = Record<string, string | number | boolean | null>;

/** Why the receive steps refused a message: the decoder's reason, or the step that refused it. */
export type AdmissionReason = SrupErrorReason | 'unknown_sender' | 'bad_signature' | 'not_permitted' | 'replay' | 'implausible';

/**
 * A refusal. `reason` is null for our own echoed message (not an error); `message` is null when the bytes did not
 * decode. `detail`: `length` (decode), `why` (not_permitted) or `last` (replay).
 */
export type Refusal = { readonly ok: false; readonly reason: AdmissionReason | null; readonly message: Message | null; readonly detail: RejectionDetail };

/** The first step: the decoded message, or why not (before anything about the sender is read). */
export type Opened = { readonly ok: true; readonly message: Message } | Refusal;

export type Admission<P> =
  /**
   * Genuine and new. `persist` is what the side must make durable (setLastAccepted) once its own permission
   * rule takes the message, and before it acts on it; nothing has been written yet.
   */
  | { readonly ok: true; readonly message: Message; readonly peer: P; readonly persist: { readonly sender: bigint; readonly sequenceId: bigint } }
  | Refusal;

function refuse(reason: AdmissionReason | null, message: Message | null, detail: RejectionDetail = {}): Refusal {
  return { ok: false, reason, message, detail };
}

/**
 * The receive steps are two decisions over values, with the side's reads between them; neither reads or writes
 * anything of the side, nor calls it:
 *
 *   const o = openMessage(self, payload);                       // own echo, decode
 *   const a = o.ok ? admitMessage(crypto, o.message, view) : o; // view: what the side read of o.message.senderId
 *
 * then the side checks its permission rule, applies `persist`, and acts (modules/agent/agent.ts,
 * modules/c2/receive.ts).
 */
export function openMessage(self: bigint, payload: Uint8Array): Opened {
  // Our own publishes come back on the shared topic: drop them before any work.
  try {
    if (peekHeader(payload).senderId === self) return refuse(null, null);
  } catch {
    // A malformed header: decode below reports why.
  }
  const decoded = tryDecode(payload);
  if (!decoded.ok) return refuse(decoded.error.reason, null, { length: payload.length });
  return { ok: true, message: decoded.message };
}

/** The second step over a decoded message and what the side read of its sender: key, replay, signature. */
export function admitMessage<P>(crypto: Crypto, m: Message, sender: SenderView<P>): Admission<P> {
  if (sender.peer === null || sender.key === null) return refuse('unknown_sender', m);
  // Already seen: refused before the signature, whoever signed it (nothing changes either way).
  if (m.sequenceId <= sender.lastAccepted) return refuse('replay', m, { last: sender.lastAccepted.toString() });
  // The side is flooded and this sequence ID is far past the next one, as a forger's random one (flood.ts).
  if (sender.ceiling != null && m.sequenceId > sender.ceiling) return refuse('implausible', m);
  if (!verify(crypto, sender.key, m)) return refuse('bad_signature', m);
  return { ok: true, message: m, peer: sender.peer, persist: { sender: m.senderId, sequenceId: m.sequenceId } };
}

// ------------------------------------------------------------------------------------------------ sending

/**
 * A new message as bytes: signed with `key` and encoded, with the sequence ID it carries. Throws SrupError when a
 * value does not fit its field. Outgoing messages to a peer take their sequence ID through sealNext.
 */
export function sealMessage<T extends TypeName>(crypto: Crypto, key: RsaPrivateKey, m: UnsignedOf<T>): Uint8Array {
  return encode(sign(crypto, key, m as UnsignedMessage));
}

/** The counters a side keeps for one peer. */
export interface PeerCounters {
  readonly lastSent: bigint;
  readonly lastAccepted: bigint;
}

/**
 * The sending rule for a peer whose counters live in a store (the device, modules/agent/outbox.ts), as a decision:
 * the sequence ID is nextSequenceId(last sent, last accepted) (topics.ts; what a reference peer with one counter
 * per peer accepts), and the message is sealed with it. Nothing is written: the caller makes `persist` durable
 * (the new last sent; it may record more in the same change) and only then publishes `bytes`, so that no sequence
 * ID ever leaves twice, whatever moment the power goes. A value that does not fit throws SrupError here, before
 * anything is persisted, so it uses up no sequence ID. The server takes the same nextSequenceId through its
 * registry (Registry.allocateSequence), inside the group that also audits the message and is undone when sealing
 * fails: the same rule and guarantee.
 */
export function sealNext<T extends TypeName>(
  crypto: Crypto,
  key: RsaPrivateKey,
  counters: PeerCounters,
  m: Omit<UnsignedOf<T>, 'sequenceId'>,
): { readonly bytes: Uint8Array; readonly persist: { readonly sequenceId: bigint } } {
  const sequenceId = nextSequenceId(counters.lastSent, counters.lastAccepted);
  const bytes = sealMessage(crypto, key, { ...m, sequenceId } as UnsignedOf<T>);
  return { bytes, persist: { sequenceId } };
}

// ------------------------------------------------------------------------------------------------ tokens

const HEX = '0123456789abcdef';

/**
 * `str(uuid.uuid4())` from 16 random bytes, as pySRUP makes tokens for new conversations: 36 characters,
 * version 4, RFC 4122 variant, lowercase, hyphenated.
 */
export function uuid4(random16: Uint8Array): string {
  if (!(random16 instanceof Uint8Array) || random16.length !== 16) throw new CryptoError('bad_random', 'uuid4 needs 16 random bytes');
  const b = random16.slice();
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  let s = '';
  for (let i = 0; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) s += '-';
    s += HEX[b[i] >> 4] + HEX[b[i] & 15];
  }
  return s;
}

/** A new conversation's token, on both sides: uuid4 text from 16 bytes of host randomness, as its 36 bytes. */
export function conversationToken(random: RandomBytes): Uint8Array {
  return utf8(uuid4(random(16)));
}
