/** Signing and verifying SRUP messages: RSASSA-PKCS1-v1_5 / SHA-256 over the signed bytes (SRUP-WIRE.md §5). */
import type { Crypto, RsaPrivateKey, RsaPublicKey } from '../../crypto/types.js';
import { signedBytes } from './codec.js';
import type { Message, MessageOf, TypeName, UnsignedMessage, UnsignedOf } from './schema.js';

/** Signs a message: the result is the same message with its signature. */
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
