/**
 * RSA key parsing and serialisation: PEM and DER, SubjectPublicKeyInfo / PKCS#1 public keys and PKCS#8 /
 * PKCS#1 private keys. Every failure on input is a CryptoError:
 *   bad_pem          not PEM, a label we do not read, bad base64
 *   bad_der          malformed DER, or ASN.1 that is not a valid RSA key (negative or inconsistent numbers)
 *   unsupported_key  a key of another algorithm, multi-prime RSA, a modulus over 16384 bits, an exponent
 *                    over 64 bits
 *   key_too_small    a modulus under 1024 bits
 */
import { base64Decode, base64Encode } from './base64.js';
import {
  DerReader,
  TAG_NULL,
  bitLength,
  derBitString,
  derInteger,
  derNull,
  derOctetString,
  derOid,
  derSequence,
} from './der.js';
import { CryptoError } from './types.js';
import type { RsaPrivateKey, RsaPublicKey } from './types.js';

export const RSA_ENCRYPTION_OID = '1.2.840.113549.1.1.1';
export const MIN_RSA_BITS = 1024;
export const MAX_RSA_BITS = 16384;
const MAX_EXPONENT_BITS = 64;

// ---- building and checking keys ----

/** A public key from its numbers, checked: odd n of 1024..16384 bits, odd e with 3 <= e < n and at most 64 bits. */
export function rsaPublicKey(n: bigint, e: bigint): RsaPublicKey {
  if (n <= 0n || e <= 0n) throw new CryptoError('bad_der', 'RSA modulus and exponent must be positive');
  const bits = bitLength(n);
  if (bits < MIN_RSA_BITS) throw new CryptoError('key_too_small', `RSA modulus of ${bits} bits; at least ${MIN_RSA_BITS} required`);
  if (bits > MAX_RSA_BITS) throw new CryptoError('unsupported_key', `RSA modulus of ${bits} bits; at most ${MAX_RSA_BITS} supported`);
  if ((n & 1n) === 0n) throw new CryptoError('bad_der', 'RSA modulus is even');
  if (bitLength(e) > MAX_EXPONENT_BITS) throw new CryptoError('unsupported_key', 'RSA public exponent over 64 bits');
  if (e < 3n || (e & 1n) === 0n || e >= n) throw new CryptoError('bad_der', 'invalid RSA public exponent');
  return Object.freeze({ kind: 'rsa-public', n, e, size: (bits + 7) >> 3 });
}

/**
 * A private key from its numbers, checked for consistency (n = pq, dp = d mod p-1, dq = d mod q-1,
 * qi q = 1 mod p, e d = 1 mod p-1 and q-1), so that CRT signing cannot produce a wrong signature.
 */
export function rsaPrivateKey(c: {
  n: bigint; e: bigint; d: bigint; p: bigint; q: bigint; dp: bigint; dq: bigint; qi: bigint;
}): RsaPrivateKey {
  const publicKey = rsaPublicKey(c.n, c.e);
  const { n, e, d, p, q, dp, dq, qi } = c;
  const bad = (what: string): never => {
    throw new CryptoError('bad_der', `inconsistent RSA private key: ${what}`);
  };
  if (p <= 2n || q <= 2n || p * q !== n) bad('n is not p*q');
  if (d <= 0n || d >= n) bad('d out of range');
  if (dp <= 0n || dp >= p - 1n || dp !== d % (p - 1n)) bad('dp');
  if (dq <= 0n || dq >= q - 1n || dq !== d % (q - 1n)) bad('dq');
  if (qi <= 0n || qi >= p || (qi * q) % p !== 1n) bad('qi');
  if ((e * dp) % (p - 1n) !== 1n || (e * dq) % (q - 1n) !== 1n) bad('e*d is not 1');
  return Object.freeze({ kind: 'rsa-private', n, e, d, p, q, dp, dq, qi, size: publicKey.size, publicKey });
}

// ---- PEM ----

interface Pem {
  label: string;
  der: Uint8Array;
}

/** Exactly one PEM block, optionally surrounded by whitespace; the body is base64 broken into lines. */
export function pemDecode(text: string): Pem {
  if (typeof text !== 'string') throw new CryptoError('bad_pem', 'PEM must be a string');
  const m = /^\s*-----BEGIN ([A-Z0-9 ]+)-----\r?\n([A-Za-z0-9+/=\s]*?)-----END ([A-Z0-9 ]+)-----\s*$/.exec(text);
  if (m === null) throw new CryptoError('bad_pem', 'not a PEM block');
  if (m[1] !== m[3]) throw new CryptoError('bad_pem', `PEM labels differ: ${m[1]} / ${m[3]}`);
  const der = base64Decode(m[2].replace(/\s+/g, ''));
  if (der === null || der.length === 0) throw new CryptoError('bad_pem', 'bad base64 in PEM body');
  return { label: m[1], der };
}

export function pemEncode(label: string, der: Uint8Array): string {
  return `-----BEGIN ${label}-----\n${base64Encode(der, 64)}\n-----END ${label}-----\n`;
}

function wrongLabel(label: string, kind: 'PUBLIC KEY' | 'PRIVATE KEY'): never {
  if (label.endsWith(kind)) throw new CryptoError('unsupported_key', `unsupported key type: ${label}`);
  throw new CryptoError('bad_pem', `expected a ${kind} PEM, found ${label}`);
}

// ---- public keys ----

/** SubjectPublicKeyInfo (`BEGIN PUBLIC KEY`), or PKCS#1 RSAPublicKey (`BEGIN RSA PUBLIC KEY`). */
export function parsePublicKeyPem(pem: string): RsaPublicKey {
  const { label, der } = pemDecode(pem);
  if (label === 'PUBLIC KEY') return parsePublicKeyDer(der);
  if (label === 'RSA PUBLIC KEY') return parsePkcs1PublicKeyDer(der);
  return wrongLabel(label, 'PUBLIC KEY');
}

/** DER SubjectPublicKeyInfo with the rsaEncryption algorithm. */
export function parsePublicKeyDer(der: Uint8Array): RsaPublicKey {
  const top = new DerReader(der);
  const spki = top.sequence('SubjectPublicKeyInfo');
  top.finish('SubjectPublicKeyInfo');
  readRsaAlgorithm(spki);
  const bits = spki.bitString('subjectPublicKey');
  spki.finish('SubjectPublicKeyInfo');
  if (bits.unusedBits !== 0) throw new CryptoError('bad_der', 'subjectPublicKey is not whole bytes');
  return parsePkcs1PublicKeyDer(bits.bytes);
}

/** DER PKCS#1 RSAPublicKey { n, e }. */
export function parsePkcs1PublicKeyDer(der: Uint8Array): RsaPublicKey {
  const top = new DerReader(der);
  const seq = top.sequence('RSAPublicKey');
  top.finish('RSAPublicKey');
  const n = seq.integer('modulus');
  const e = seq.integer('publicExponent');
  seq.finish('RSAPublicKey');
  return rsaPublicKey(n, e);
}

/** AlgorithmIdentifier { rsaEncryption, NULL } (absent parameters are accepted too). */
function readRsaAlgorithm(r: DerReader): void {
  const alg = r.sequence('AlgorithmIdentifier');
  const oid = alg.oid('algorithm');
  if (oid !== RSA_ENCRYPTION_OID) throw new CryptoError('unsupported_key', `not an RSA key (algorithm ${oid})`);
  if (alg.peekTag() === TAG_NULL) alg.null('algorithm parameters');
  alg.finish('AlgorithmIdentifier');
}

export function publicKeyToDer(key: RsaPublicKey): Uint8Array {
  return derSequence(derSequence(derOid(RSA_ENCRYPTION_OID), derNull()), derBitString(pkcs1PublicKeyToDer(key)));
}

export function pkcs1PublicKeyToDer(key: RsaPublicKey): Uint8Array {
  return derSequence(derInteger(key.n), derInteger(key.e));
}

export function publicKeyToPem(key: RsaPublicKey): string {
  return pemEncode('PUBLIC KEY', publicKeyToDer(key));
}

// ---- private keys ----

/** PKCS#8 PrivateKeyInfo (`BEGIN PRIVATE KEY`), or PKCS#1 RSAPrivateKey (`BEGIN RSA PRIVATE KEY`). */
export function parsePrivateKeyPem(pem: string): RsaPrivateKey {
  const { label, der } = pemDecode(pem);
  if (label === 'PRIVATE KEY') return parsePrivateKeyDer(der);
  if (label === 'RSA PRIVATE KEY') return parsePkcs1PrivateKeyDer(der);
  return wrongLabel(label, 'PRIVATE KEY');
}

/** DER PKCS#8 PrivateKeyInfo (version 0, or 1 with the optional fields skipped) holding an RSA key. */
export function parsePrivateKeyDer(der: Uint8Array): RsaPrivateKey {
  const top = new DerReader(der);
  const info = top.sequence('PrivateKeyInfo');
  top.finish('PrivateKeyInfo');
  const version = info.smallInteger('PrivateKeyInfo version');
  if (version > 1) throw new CryptoError('unsupported_key', `PrivateKeyInfo version ${version}`);
  readRsaAlgorithm(info);
  const inner = info.octetString('privateKey');
  // Optional [0] attributes and (version 1) [1] publicKey: read past them.
  if (info.peekTag() === 0xa0) info.read(0xa0, 'attributes');
  if (version === 1 && info.peekTag() === 0x81) info.read(0x81, 'publicKey');
  info.finish('PrivateKeyInfo');
  return parsePkcs1PrivateKeyDer(inner);
}

/** DER PKCS#1 RSAPrivateKey, two-prime (version 0) only. */
export function parsePkcs1PrivateKeyDer(der: Uint8Array): RsaPrivateKey {
  const top = new DerReader(der);
  const seq = top.sequence('RSAPrivateKey');
  top.finish('RSAPrivateKey');
  const version = seq.smallInteger('RSAPrivateKey version');
  if (version !== 0) throw new CryptoError('unsupported_key', 'multi-prime RSA keys are not supported');
  const n = seq.integer('modulus');
  const e = seq.integer('publicExponent');
  const d = seq.integer('privateExponent');
  const p = seq.integer('prime1');
  const q = seq.integer('prime2');
  const dp = seq.integer('exponent1');
  const dq = seq.integer('exponent2');
  const qi = seq.integer('coefficient');
  seq.finish('RSAPrivateKey');
  return rsaPrivateKey({ n, e, d, p, q, dp, dq, qi });
}

export function pkcs1PrivateKeyToDer(key: RsaPrivateKey): Uint8Array {
  return derSequence(
    derInteger(0n),
    derInteger(key.n),
    derInteger(key.e),
    derInteger(key.d),
    derInteger(key.p),
    derInteger(key.q),
    derInteger(key.dp),
    derInteger(key.dq),
    derInteger(key.qi),
  );
}

/** PKCS#8 PrivateKeyInfo (version 0, rsaEncryption with NULL parameters). */
export function privateKeyToDer(key: RsaPrivateKey): Uint8Array {
  return derSequence(
    derInteger(0n),
    derSequence(derOid(RSA_ENCRYPTION_OID), derNull()),
    derOctetString(pkcs1PrivateKeyToDer(key)),
  );
}

export function privateKeyToPem(key: RsaPrivateKey): string {
  return pemEncode('PRIVATE KEY', privateKeyToDer(key));
}
