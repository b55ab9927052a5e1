/**
 * RSA over native BigInt (RFC 8017): RSASSA-PKCS1-v1_5 with a SHA-256 digest, RSAES-PKCS1-v1_5, and the
 * padding helpers the node:crypto host reuses. Modular exponentiation is left-to-right sliding-window with
 * Montgomery reduction, which on XS is markedly cheaper than BigInt `%`; private operations use the CRT.
 */
import { constantTimeEqual } from './equal.js';
import { bigIntToBytes, bigIntToWords, bitLength, bytesToBigInt } from './der.js';
import { CryptoError } from './types.js';
import type { RandomBytes, RsaPrivateKey, RsaPublicKey } from './types.js';

/** DER of DigestInfo { AlgorithmIdentifier { id-sha256, NULL }, OCTET STRING (32 bytes) } up to the digest. */
export const SHA256_DIGEST_INFO_PREFIX = Uint8Array.of(
  0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20,
);

/**
 * Montgomery arithmetic modulo a fixed odd m > 1 with R = 2^k, k the bit length of m. Residues are kept in
 * Montgomery form (x R mod m) inside pow(); on XS this costs noticeably less per step than BigInt `%`.
 */
export class Montgomery {
  readonly m: bigint;
  private readonly k: bigint;
  private readonly mask: bigint;
  /** -m^-1 mod R. */
  private readonly mPrime: bigint;

  constructor(m: bigint) {
    if (m <= 1n || (m & 1n) === 0n) throw new CryptoError('bad_argument', 'Montgomery arithmetic needs an odd modulus over 1');
    const bits = bitLength(m);
    this.m = m;
    this.k = BigInt(bits);
    this.mask = (1n << this.k) - 1n;
    // Newton's iteration x <- x (2 - m x) doubles the number of correct low bits; x = m is right mod 8.
    let inv = m;
    for (let good = 3; good < bits; good *= 2) inv = (inv * (2n - m * inv)) & this.mask;
    inv &= this.mask;
    this.mPrime = (this.mask + 1n - inv) & this.mask;
  }

  /** t R^-1 mod m for 0 <= t < m R. */
  private redc(t: bigint): bigint {
    const r = (t + (((t & this.mask) * this.mPrime) & this.mask) * this.m) >> this.k;
    return r >= this.m ? r - this.m : r;
  }

  /** base^exp mod m for base in [0, m), exp >= 0. Left-to-right sliding window. */
  pow(base: bigint, exp: bigint): bigint {
    if (exp === 0n) return 1n % this.m;
    const { m, k, mask, mPrime } = this;
    const words = bigIntToWords(exp);
    const top = bitLength(exp) - 1;
    const w = top >= 671 ? 6 : top >= 239 ? 5 : top >= 79 ? 4 : top >= 23 ? 3 : top >= 6 ? 2 : 1;
    // Odd powers base^1, base^3, ..., base^(2^w - 1), in Montgomery form.
    const b1 = (base << k) % m;
    const table: bigint[] = [b1];
    if (w > 1) {
      const b2 = this.redc(b1 * b1);
      for (let i = 1; i < 1 << (w - 1); i++) table.push(this.redc(table[i - 1] * b2));
    }
    // The reduction steps below are this.redc() written out: this loop is the whole cost of an RSA
    // private operation, and a call per step is measurable on XS.
    let r = 0n;
    let t = 0n;
    let started = false;
    let i = top;
    while (i >= 0) {
      if (((words[i >>> 5] >>> (i & 31)) & 1) === 0) {
        t = r * r;
        r = (t + (((t & mask) * mPrime) & mask) * m) >> k;
        if (r >= m) r -= m;
        i--;
        continue;
      }
      // The longest window of at most w bits from bit i down that ends in a 1.
      let j = i - w + 1 > 0 ? i - w + 1 : 0;
      while (((words[j >>> 5] >>> (j & 31)) & 1) === 0) j++;
      let v = 0;
      for (let b = i; b >= j; b--) {
        v = (v << 1) | ((words[b >>> 5] >>> (b & 31)) & 1);
        if (started) {
          t = r * r;
          r = (t + (((t & mask) * mPrime) & mask) * m) >> k;
          if (r >= m) r -= m;
        }
      }
      if (started) {
        t = r * table[v >> 1];
        r = (t + (((t & mask) * mPrime) & mask) * m) >> k;
        if (r >= m) r -= m;
      } else {
        r = table[v >> 1];
        started = true;
      }
      i = j - 1;
    }
    return this.redc(r);
  }
}

/** base^exp mod m for any m > 0 and exp >= 0. */
export function modPow(base: bigint, exp: bigint, m: bigint): bigint {
  if (m <= 0n || exp < 0n) throw new CryptoError('bad_argument', 'modPow needs m > 0 and exp >= 0');
  if (m === 1n) return 0n;
  let b = base % m;
  if (b < 0n) b += m;
  if ((m & 1n) === 1n) return new Montgomery(m).pow(b, exp);
  let r = 1n;
  for (let e = exp; e > 0n; e >>= 1n) {
    if ((e & 1n) === 1n) r = (r * b) % m;
    b = (b * b) % m;
  }
  return r;
}

export { constantTimeEqual };

// ---- raw RSA ----

/** x^e mod n (x in [0, n)). */
export function rsaPublicOp(key: RsaPublicKey, x: bigint): bigint {
  return new Montgomery(key.n).pow(x, key.e);
}

/** x^d mod n by the CRT (x in [0, n)). */
export function rsaPrivateOp(key: RsaPrivateKey, x: bigint): bigint {
  const { p, q } = key;
  const m1 = new Montgomery(p).pow(x % p, key.dp);
  const m2 = new Montgomery(q).pow(x % q, key.dq);
  let diff = m1 - (m2 % p);
  if (diff < 0n) diff += p;
  const h = (key.qi * diff) % p;
  return m2 + h * q;
}

// ---- RSASSA-PKCS1-v1_5 ----

/** EMSA-PKCS1-v1_5 encoding of a SHA-256 digest into k bytes. */
export function emsaPkcs1Sha256(digest: Uint8Array, k: number): Uint8Array {
  const tLen = SHA256_DIGEST_INFO_PREFIX.length + digest.length;
  if (digest.length !== 32) throw new CryptoError('bad_argument', 'a SHA-256 digest is 32 bytes');
  if (k < tLen + 11) throw new CryptoError('bad_argument', 'key too small for a SHA-256 signature');
  const em = new Uint8Array(k);
  em[1] = 0x01;
  em.fill(0xff, 2, k - tLen - 1);
  em.set(SHA256_DIGEST_INFO_PREFIX, k - tLen);
  em.set(digest, k - digest.length);
  return em;
}

/** The k-byte signature over a SHA-256 digest. The result is checked with the public key before it is returned. */
export function signDigest(key: RsaPrivateKey, digest: Uint8Array): Uint8Array {
  const m = bytesToBigInt(emsaPkcs1Sha256(digest, key.size));
  const s = rsaPrivateOp(key, m);
  // A fault in the CRT computation would leak a factor of n through the signature: never release one.
  if (rsaPublicOp(key.publicKey, s) !== m) throw new CryptoError('sign_failed', 'RSA signature failed its self-check');
  return bigIntToBytes(s, key.size);
}

/** Strict verification: length k, s < n, full re-encoded block compared. Never throws. */
export function verifyDigest(key: RsaPublicKey, digest: Uint8Array, signature: Uint8Array): boolean {
  try {
    if (!(signature instanceof Uint8Array) || signature.length !== key.size || digest.length !== 32) return false;
    const s = bytesToBigInt(signature);
    if (s >= key.n) return false;
    const em = bigIntToBytes(rsaPublicOp(key, s), key.size);
    return constantTimeEqual(em, emsaPkcs1Sha256(digest, key.size));
  } catch {
    return false;
  }
}

// ---- RSAES-PKCS1-v1_5 ----

/** 00 02 PS 00 M with PS at least 8 non-zero random bytes, k bytes in all. */
export function pkcs1Type2Pad(message: Uint8Array, k: number, random: RandomBytes): Uint8Array {
  if (message.length > k - 11) {
    throw new CryptoError('message_too_long', `RSA encryption takes at most ${k - 11} bytes, got ${message.length}`);
  }
  const psLen = k - 3 - message.length;
  const em = new Uint8Array(k);
  em[1] = 0x02;
  let filled = 0;
  for (let round = 0; filled < psLen; round++) {
    // Each round asks for more than is missing, so a sound source finishes in one or two rounds.
    if (round === 64) throw new CryptoError('bad_random', 'RandomBytes keeps returning zero bytes');
    const r = random(psLen - filled + 16);
    if (!(r instanceof Uint8Array)) throw new CryptoError('bad_random', 'RandomBytes must return a Uint8Array');
    for (let i = 0; i < r.length && filled < psLen; i++) {
      if (r[i] !== 0) em[2 + filled++] = r[i];
    }
  }
  em.set(message, k - message.length);
  return em;
}

/**
 * Removes type-2 padding from a k-byte block: the message, or null for any padding error. The scan over the
 * block runs the same way whatever the bytes are; only the final accept/reject and the copy branch.
 */
export function pkcs1Type2Unpad(em: Uint8Array): Uint8Array | null {
  const k = em.length;
  if (k < 11) return null;
  // good is 1 while the block is acceptable, computed without branches.
  let good = isZero(em[0]) & isZero(em[1] ^ 0x02);
  let looking = 1;
  let zeroIndex = 0;
  for (let i = 2; i < k; i++) {
    const z = isZero(em[i]);
    const take = looking & z;
    zeroIndex = (zeroIndex & (take - 1)) | (i & -take);
    looking &= z ^ 1;
  }
  good &= looking ^ 1;
  // The separator must follow at least 8 padding bytes: zeroIndex >= 10.
  good &= ((zeroIndex - 10) >>> 31) ^ 1;
  if (good !== 1) return null;
  return em.slice(zeroIndex + 1);
}

/** 1 if b (0..255) is zero, else 0, without a branch. */
function isZero(b: number): number {
  return ((b - 1) >>> 31) & 1;
}

export function encrypt(key: RsaPublicKey, message: Uint8Array, random: RandomBytes): Uint8Array {
  const em = pkcs1Type2Pad(message, key.size, random);
  return bigIntToBytes(rsaPublicOp(key, bytesToBigInt(em)), key.size);
}

/** The message, or null for a ciphertext of the wrong length, c >= n, or bad padding. Never throws. */
export function decrypt(key: RsaPrivateKey, ciphertext: Uint8Array): Uint8Array | null {
  try {
    if (!(ciphertext instanceof Uint8Array) || ciphertext.length !== key.size) return null;
    const c = bytesToBigInt(ciphertext);
    if (c >= key.n) return null;
    return pkcs1Type2Unpad(bigIntToBytes(rsaPrivateOp(key, c), key.size));
  } catch {
    return null;
  }
}
