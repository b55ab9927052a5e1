/**
 * One Crypto made from two primitives: a SHA-256 stream and raw AES-CBC (whole blocks, no padding). RSA
 * (crypto/rsa.ts) and PKCS#7 padding are ours and the same everywhere, so the pure implementation (@noble,
 * crypto/pure.ts) and the device's native one (the Moddable SDK's `crypt`, hosts/moddable/crypto.ts) differ
 * only in those two primitives.
 *
 * Padding is done here, not by the primitive: the SDK's CBC mode does not check the pad bytes on decrypt and
 * its padded encrypt writes a block past what it allocated, so a primitive is only ever asked for whole
 * blocks.
 */
import { decrypt, encrypt, signDigest, verifyDigest } from './rsa.js';
import type { Crypto, RandomBytes, RsaPrivateKey, RsaPublicKey, Sha256Stream } from './types.js';
import { CryptoError } from './types.js';

/** AES-CBC over whole 16-byte blocks; key of 16, 24 or 32 bytes and iv of 16 are checked before the call. */
export interface RawAesCbc {
  encrypt(key: Uint8Array, iv: Uint8Array, blocks: Uint8Array): Uint8Array;
  decrypt(key: Uint8Array, iv: Uint8Array, blocks: Uint8Array): Uint8Array;
}

export interface CryptoPrimitives {
  readonly name: string;
  sha256Stream(): Sha256Stream;
  readonly aesCbc: RawAesCbc;
}

const BLOCK = 16;

/** PKCS#7: 1 to 16 bytes, each holding the pad length; always at least one byte. */
export function pkcs7Pad(data: Uint8Array): Uint8Array {
  const pad = BLOCK - (data.length % BLOCK);
  const out = new Uint8Array(data.length + pad);
  out.set(data);
  out.fill(pad, data.length);
  return out;
}

/**
 * The data before a PKCS#7 pad, or null when the pad is not valid (length 0 or over 16, or any pad byte
 * different). Every pad byte is looked at whatever the first difference, so the time depends only on the
 * length.
 */
export function pkcs7Unpad(blocks: Uint8Array): Uint8Array | null {
  if (blocks.length === 0 || blocks.length % BLOCK !== 0) return null;
  const pad = blocks[blocks.length - 1];
  let bad = pad === 0 || pad > BLOCK ? 1 : 0;
  for (let i = 1; i <= BLOCK; i++) {
    // Positions inside the claimed pad must equal it; positions before it are not looked at by value.
    const inside = i <= pad ? 1 : 0;
    bad |= inside & (blocks[blocks.length - i] !== pad ? 1 : 0);
  }
  return bad === 0 ? blocks.subarray(0, blocks.length - pad) : null;
}

function aesArgsOk(key: Uint8Array, iv: Uint8Array): boolean {
  return (
    key instanceof Uint8Array &&
    iv instanceof Uint8Array &&
    (key.length === 16 || key.length === 24 || key.length === 32) &&
    iv.length === BLOCK
  );
}

function sha256With(p: CryptoPrimitives, data: Uint8Array): Uint8Array {
  const s = p.sha256Stream();
  s.update(data);
  return s.digest();
}

export function assembleCrypto(p: CryptoPrimitives): Crypto {
  return Object.freeze({
    name: p.name,
    sha256: (data: Uint8Array): Uint8Array => sha256With(p, data),
    sha256Stream: (): Sha256Stream => p.sha256Stream(),
    sign(key: RsaPrivateKey, message: Uint8Array): Uint8Array {
      return signDigest(key, sha256With(p, message));
    },
    verify(key: RsaPublicKey, message: Uint8Array, signature: Uint8Array): boolean {
      try {
        return verifyDigest(key, sha256With(p, message), signature);
      } catch {
        return false;
      }
    },
    rsaEncrypt(key: RsaPublicKey, message: Uint8Array, random: RandomBytes): Uint8Array {
      return encrypt(key, message, random);
    },
    rsaDecrypt(key: RsaPrivateKey, ciphertext: Uint8Array): Uint8Array | null {
      return decrypt(key, ciphertext);
    },
    aesCbcEncrypt(key: Uint8Array, iv: Uint8Array, plaintext: Uint8Array): Uint8Array {
      if (!aesArgsOk(key, iv)) throw new CryptoError('bad_argument', 'AES-CBC takes a 16, 24 or 32-byte key and a 16-byte IV');
      if (!(plaintext instanceof Uint8Array)) throw new CryptoError('bad_argument', 'AES-CBC encrypts a Uint8Array');
      return p.aesCbc.encrypt(key, iv, pkcs7Pad(plaintext));
    },
    aesCbcDecrypt(key: Uint8Array, iv: Uint8Array, ciphertext: Uint8Array): Uint8Array | null {
      if (!aesArgsOk(key, iv) || !(ciphertext instanceof Uint8Array)) return null;
      if (ciphertext.length === 0 || ciphertext.length % BLOCK !== 0) return null;
      let blocks: Uint8Array;
      try {
        blocks = p.aesCbc.decrypt(key, iv, ciphertext);
      } catch {
        return null;
      }
      if (blocks.length !== ciphertext.length) return null;
      const plain = pkcs7Unpad(blocks);
      return plain === null ? null : plain.slice();
    },
  });
}
