/**
 * The SRUP encrypted-value envelope (SRUP-WIRE.md §6), as OpenSSL's EVP_Seal with AES-256-CBC and one RSA key
 * builds it:
 *   K (4, LE) | RSA-PKCS#1-v1.5-wrapped AES-256 key (K) | IV (16) | C (4, LE) | P (4, LE) | ciphertext (C)
 */
import { CryptoError } from './types.js';
import type { Crypto, RandomBytes, RsaPrivateKey, RsaPublicKey } from './types.js';
import { bigIntToBytes } from './der.js';

const AES_KEY = 32;
const IV = 16;
const MAX_PLAINTEXT = 0x7fffffff - 16;

function bad(message: string): never {
  throw new CryptoError('bad_envelope', message);
}

function randomOf(random: RandomBytes, n: number): Uint8Array {
  const r = random(n);
  if (!(r instanceof Uint8Array) || r.length !== n) throw new CryptoError('bad_random', `RandomBytes returned other than ${n} bytes`);
  return r;
}

function putU32(out: Uint8Array, at: number, v: number): void {
  out[at] = v & 255;
  out[at + 1] = (v >>> 8) & 255;
  out[at + 2] = (v >>> 16) & 255;
  out[at + 3] = (v >>> 24) & 255;
}

function getU32(b: Uint8Array, at: number): number {
  return (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0;
}

/** Encrypts `plaintext` to `recipient`: a fresh AES-256 key and IV, the key wrapped with RSA PKCS#1 v1.5. */
export function sealEnvelope(crypto: Crypto, recipient: RsaPublicKey, plaintext: Uint8Array, random: RandomBytes): Uint8Array {
  if (plaintext.length > MAX_PLAINTEXT) throw new CryptoError('message_too_long', 'plaintext too long for an envelope');
  const aesKey = randomOf(random, AES_KEY);
  const iv = randomOf(random, IV);
  const wrapped = crypto.rsaEncrypt(recipient, aesKey, random);
  const ct = crypto.aesCbcEncrypt(aesKey, iv, plaintext);
  aesKey.fill(0);
  const k = wrapped.length;
  const out = new Uint8Array(4 + k + IV + 8 + ct.length);
  putU32(out, 0, k);
  out.set(wrapped, 4);
  out.set(iv, 4 + k);
  putU32(out, 4 + k + IV, ct.length);
  putU32(out, 4 + k + IV + 4, plaintext.length);
  out.set(ct, 4 + k + IV + 8);
  return out;
}

/**
 * Opens an envelope with `key`. Throws CryptoError('bad_envelope') for any malformed layout, a wrapped key that
 * does not unwrap to 32 bytes, bad AES padding or a length mismatch; never reads outside `blob`.
 * A key that fails to unwrap is replaced by one derived from the private key and the wrapped bytes, and the
 * AES step still runs, so a failed unwrap and a failed decryption look the same from outside.
 */
export function openEnvelope(crypto: Crypto, key: RsaPrivateKey, blob: Uint8Array): Uint8Array {
  if (!(blob instanceof Uint8Array)) bad('envelope must be bytes');
  const total = blob.length;
  if (total < 4) bad('envelope too short for the wrapped-key length');
  const k = getU32(blob, 0);
  if (k !== key.size) bad(`wrapped-key length ${k}, expected ${key.size}`);
  const ivAt = 4 + k;
  const headerEnd = ivAt + IV + 8;
  if (total < headerEnd) bad('envelope truncated before its ciphertext');
  const c = getU32(blob, ivAt + IV);
  const p = getU32(blob, ivAt + IV + 4);
  if (c === 0 || c % 16 !== 0) bad(`ciphertext length ${c} is not a positive multiple of 16`);
  if (c !== total - headerEnd) bad(`ciphertext length ${c}, but ${total - headerEnd} bytes follow`);
  if (p > c - 1 || c !== 16 * (Math.floor(p / 16) + 1)) bad(`plaintext length ${p} does not match ciphertext length ${c}`);

  const wrapped = blob.subarray(4, ivAt);
  const iv = blob.subarray(ivAt, ivAt + IV);
  const ct = blob.subarray(headerEnd);

  let keyOk = false;
  let pt: Uint8Array | null = null;
  try {
    const unwrapped = crypto.rsaDecrypt(key, wrapped);
    keyOk = unwrapped !== null && unwrapped.length === AES_KEY;
    const aesKey = keyOk && unwrapped !== null ? unwrapped : crypto.sha256(concat(bigIntToBytes(key.d, key.size), wrapped));
    pt = crypto.aesCbcDecrypt(aesKey, iv, ct);
    aesKey.fill(0);
  } catch {
    // A Crypto implementation that throws on bad input is treated like one that returns null.
    keyOk = false;
  }
  if (!keyOk || pt === null || pt.length !== p) bad('envelope does not open');
  return pt;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}
