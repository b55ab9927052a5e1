/**
 * The crypto the SRUP layers need, behind one interface with two implementations:
 *   crypto/pure.ts     pure TypeScript over native BigInt (+ @noble/hashes, @noble/ciphers); runs anywhere, XS too
 *   hosts/node/crypto.ts  node:crypto
 * Hosts may swap in native primitives (Moddable `crypt`) behind the same interface.
 *
 * Everything is synchronous. Randomness always comes from the host (RandomBytes), never Math.random.
 */

export interface RsaPublicKey {
  readonly kind: 'rsa-public';
  readonly n: bigint;
  readonly e: bigint;
  /** Modulus length in bytes (k in RFC 8017): 256 for RSA-2048. */
  readonly size: number;
}

export interface RsaPrivateKey {
  readonly kind: 'rsa-private';
  readonly n: bigint;
  readonly e: bigint;
  readonly d: bigint;
  readonly p: bigint;
  readonly q: bigint;
  readonly dp: bigint;
  readonly dq: bigint;
  readonly qi: bigint;
  readonly size: number;
  readonly publicKey: RsaPublicKey;
}

/** Returns n cryptographically strong random bytes. */
export type RandomBytes = (n: number) => Uint8Array;

export interface Sha256Stream {
  update(chunk: Uint8Array): void;
  /** The 32-byte digest; the stream cannot be used afterwards. */
  digest(): Uint8Array;
}

export interface Crypto {
  readonly name: string;
  sha256(data: Uint8Array): Uint8Array;
  sha256Stream(): Sha256Stream;
  /** RSASSA-PKCS1-v1_5 with SHA-256 over `message` (the message is hashed here). */
  sign(key: RsaPrivateKey, message: Uint8Array): Uint8Array;
  /** RSASSA-PKCS1-v1_5 with SHA-256. False for any invalid signature; never throws on bad input. */
  verify(key: RsaPublicKey, message: Uint8Array, signature: Uint8Array): boolean;
  /** RSAES-PKCS1-v1_5 encryption (type 2 padding); message at most size - 11 bytes. */
  rsaEncrypt(key: RsaPublicKey, message: Uint8Array, random: RandomBytes): Uint8Array;
  /** RSAES-PKCS1-v1_5 decryption. Null for any invalid ciphertext or padding; never throws on bad input. */
  rsaDecrypt(key: RsaPrivateKey, ciphertext: Uint8Array): Uint8Array | null;
  /** AES-CBC with PKCS#7 padding; key of 16, 24 or 32 bytes, iv of 16. */
  aesCbcEncrypt(key: Uint8Array, iv: Uint8Array, plaintext: Uint8Array): Uint8Array;
  /** AES-CBC with PKCS#7 padding. Null for a bad length or bad padding; never throws on bad input. */
  aesCbcDecrypt(key: Uint8Array, iv: Uint8Array, ciphertext: Uint8Array): Uint8Array | null;
}

export type CryptoErrorReason =
  | 'bad_pem' // not PEM, wrong label, bad base64
  | 'bad_der' // malformed DER / ASN.1
  | 'unsupported_key' // not RSA, or an unsupported structure
  | 'key_too_small' // modulus under 1024 bits
  | 'message_too_long' // RSA encryption or envelope input too long
  | 'bad_envelope' // an envelope that is malformed or does not open
  | 'bad_argument' // a value a primitive cannot take (an even modulus, a digest of the wrong size, an AES key...)
  | 'bad_random' // the host's RandomBytes returned the wrong type or size, or only zero bytes
  | 'sign_failed'; // a signature failed its own check (a fault while signing): never sent

export class CryptoError extends Error {
  readonly reason: CryptoErrorReason;
  constructor(reason: CryptoErrorReason, message: string) {
    super(message);
    this.name = 'CryptoError';
    this.reason = reason;
  }
}
