/**
 * The Crypto interface on node:crypto. Keys stay in the shared bigint form; node KeyObjects are built from them
 * through JWK on first use and cached per key object.
 *
 * RSAES-PKCS1-v1_5 is done with RSA_NO_PADDING plus the shared padding code in crypto/rsa.ts: Node 20 refuses
 * privateDecrypt with RSA_PKCS1_PADDING (the Marvin mitigation, CVE-2023-46809), and padding on our side also
 * lets encryption take its randomness from the caller's RandomBytes like the pure implementation does.
 */
import * as nodeCryptoModule from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { pkcs1Type2Pad, pkcs1Type2Unpad } from '../../crypto/rsa.js';
import { bigIntToBytes } from '../../crypto/der.js';
import { parsePrivateKeyPem, parsePublicKeyPem, privateKeyToPem, publicKeyToPem } from '../../crypto/keys.js';
import type { Crypto, RandomBytes, RsaPrivateKey, RsaPublicKey, Sha256Stream } from '../../crypto/types.js';
import { CryptoError } from '../../crypto/types.js';

const { constants, createCipheriv, createDecipheriv, createHash, createPrivateKey, createPublicKey } = nodeCryptoModule;

function view(b: Uint8Array): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

function b64url(v: bigint): string {
  return Buffer.from(bigIntToBytes(v, 0)).toString('base64url');
}

const publicKeys = new WeakMap<RsaPublicKey, KeyObject>();
const privateKeys = new WeakMap<RsaPrivateKey, KeyObject>();

function publicKeyObject(key: RsaPublicKey): KeyObject {
  let k = publicKeys.get(key);
  if (k === undefined) {
    k = createPublicKey({ key: { kty: 'RSA', n: b64url(key.n), e: b64url(key.e) }, format: 'jwk' });
    publicKeys.set(key, k);
  }
  return k;
}

function privateKeyObject(key: RsaPrivateKey): KeyObject {
  let k = privateKeys.get(key);
  if (k === undefined) {
    k = createPrivateKey({
      key: {
        kty: 'RSA',
        n: b64url(key.n),
        e: b64url(key.e),
        d: b64url(key.d),
        p: b64url(key.p),
        q: b64url(key.q),
        dp: b64url(key.dp),
        dq: b64url(key.dq),
        qi: b64url(key.qi),
      },
      format: 'jwk',
    });
    privateKeys.set(key, k);
  }
  return k;
}

function aesName(key: Uint8Array, iv: Uint8Array): string | null {
  if (!(key instanceof Uint8Array) || !(iv instanceof Uint8Array) || iv.length !== 16) return null;
  if (key.length === 16) return 'aes-128-cbc';
  if (key.length === 24) return 'aes-192-cbc';
  if (key.length === 32) return 'aes-256-cbc';
  return null;
}

export const nodeCrypto: Crypto = Object.freeze({
  name: 'node',
  sha256(data: Uint8Array): Uint8Array {
    return view(createHash('sha256').update(data).digest());
  },
  sha256Stream(): Sha256Stream {
    const h = createHash('sha256');
    return {
      update(chunk: Uint8Array): void {
        h.update(chunk);
      },
      digest(): Uint8Array {
        return view(h.digest());
      },
    };
  },
  sign(key: RsaPrivateKey, message: Uint8Array): Uint8Array {
    return view(
      nodeCryptoModule.sign('sha256', message, { key: privateKeyObject(key), padding: constants.RSA_PKCS1_PADDING }),
    );
  },
  verify(key: RsaPublicKey, message: Uint8Array, signature: Uint8Array): boolean {
    try {
      if (!(signature instanceof Uint8Array) || signature.length !== key.size) return false;
      return nodeCryptoModule.verify(
        'sha256',
        message,
        { key: publicKeyObject(key), padding: constants.RSA_PKCS1_PADDING },
        signature,
      );
    } catch {
      return false;
    }
  },
  rsaEncrypt(key: RsaPublicKey, message: Uint8Array, random: RandomBytes): Uint8Array {
    const em = pkcs1Type2Pad(message, key.size, random);
    return view(nodeCryptoModule.publicEncrypt({ key: publicKeyObject(key), padding: constants.RSA_NO_PADDING }, em));
  },
  rsaDecrypt(key: RsaPrivateKey, ciphertext: Uint8Array): Uint8Array | null {
    try {
      if (!(ciphertext instanceof Uint8Array) || ciphertext.length !== key.size) return null;
      const em = nodeCryptoModule.privateDecrypt(
        { key: privateKeyObject(key), padding: constants.RSA_NO_PADDING },
        ciphertext,
      );
      if (em.length !== key.size) return null;
      return pkcs1Type2Unpad(view(em));
    } catch {
      return null;
    }
  },
  aesCbcEncrypt(key: Uint8Array, iv: Uint8Array, plaintext: Uint8Array): Uint8Array {
    const alg = aesName(key, iv);
    if (alg === null) throw new CryptoError('bad_argument', 'AES-CBC takes a 16, 24 or 32-byte key and a 16-byte IV');
    const c = createCipheriv(alg, key, iv);
    return view(Buffer.concat([c.update(plaintext), c.final()]));
  },
  aesCbcDecrypt(key: Uint8Array, iv: Uint8Array, ciphertext: Uint8Array): Uint8Array | null {
    const alg = aesName(key, iv);
    if (alg === null || !(ciphertext instanceof Uint8Array)) return null;
    if (ciphertext.length === 0 || ciphertext.length % 16 !== 0) return null;
    try {
      const d = createDecipheriv(alg, key, iv);
      return view(Buffer.concat([d.update(ciphertext), d.final()]));
    } catch {
      return null;
    }
  },
});

/** Cryptographically strong random bytes from node:crypto. */
export const randomBytes: RandomBytes = (n: number): Uint8Array => view(nodeCryptoModule.randomBytes(n));

/** A fresh RSA key pair (public exponent 65537) with its PKCS#8 and SubjectPublicKeyInfo PEM. */
export function generateRsaKeyPair(bits = 2048): {
  privateKey: RsaPrivateKey;
  publicKey: RsaPublicKey;
  privatePem: string;
  publicPem: string;
} {
  const pair = nodeCryptoModule.generateKeyPairSync('rsa', {
    modulusLength: bits,
    publicExponent: 65537,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  const privateKey = parsePrivateKeyPem(pair.privateKey);
  const publicKey = privateKey.publicKey;
  // The public half is parsed too, so a mismatch between node's two encodings could not go unnoticed.
  const fromSpki = parsePublicKeyPem(pair.publicKey);
  if (fromSpki.n !== publicKey.n || fromSpki.e !== publicKey.e) throw new Error('generated key pair does not match');
  return { privateKey, publicKey, privatePem: privateKeyToPem(privateKey), publicPem: publicKeyToPem(publicKey) };
}
