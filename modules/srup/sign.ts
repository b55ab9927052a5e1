/** Signing and verifying SRUP messages: RSASSA-PKCS1-v1_5 / SHA-256 over the signed bytes (SRUP-WIRE.md §5). */
import type { Crypto, RsaPrivateKey, RsaPublicKey } from '../../crypto/types.js';
import { signedBytes } from './codec.js';
import type { Message, MessageOf, TypeName, UnsignedOf } from './schema.js';

export function sign<T extends TypeName>(crypto: Crypto, key: RsaPrivateKey, m: UnsignedOf<T>): MessageOf<T> {
  const signature = crypto.sign(key, signedBytes(m as never));
  return { ...m, signature } as MessageOf<T>;
}

/** True when the message's signature verifies with `key`. Never throws for a well-formed message. */
export function verify(crypto: Crypto, key: RsaPublicKey, m: Message): boolean {
  return crypto.verify(key, signedBytes(m), m.signature);
}
