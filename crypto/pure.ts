/** The pure TypeScript Crypto: RSA over native BigInt, SHA-256 from @noble/hashes, AES-CBC from @noble/ciphers. */
import { cbc } from '@noble/ciphers/aes.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { decrypt, encrypt, signDigest, verifyDigest } from './rsa.js';
import type { Crypto, RsaPrivateKey, RsaPublicKey, RandomBytes, Sha256Stream } from './types.js';

function checkAesArgs(key: Uint8Array, iv: Uint8Array): boolean {
  return (
    key instanceof Uint8Array &&
    iv instanceof Uint8Array &&
    (key.length === 16 || key.length === 24 || key.length === 32) &&
    iv.length === 16
  );
}

export const pureCrypto: Crypto = Object.freeze({
  name: 'pure',
  sha256(data: Uint8Array): Uint8Array {
    return sha256(data);
  },
  sha256Stream(): Sha256Stream {
    const h = sha256.create();
    return {
      update(chunk: Uint8Array): void {
        h.update(chunk);
      },
      digest(): Uint8Array {
        return h.digest();
      },
    };
  },
  sign(key: RsaPrivateKey, message: Uint8Array): Uint8Array {
    return signDigest(key, sha256(message));
  },
  verify(key: RsaPublicKey, message: Uint8Array, signature: Uint8Array): boolean {
    try {
      return verifyDigest(key, sha256(message), signature);
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
    if (!checkAesArgs(key, iv)) throw new RangeError('AES-CBC takes a 16, 24 or 32-byte key and a 16-byte IV');
    return cbc(key, iv).encrypt(plaintext);
  },
  aesCbcDecrypt(key: Uint8Array, iv: Uint8Array, ciphertext: Uint8Array): Uint8Array | null {
    if (!checkAesArgs(key, iv) || !(ciphertext instanceof Uint8Array)) return null;
    if (ciphertext.length === 0 || ciphertext.length % 16 !== 0) return null;
    try {
      return cbc(key, iv).decrypt(ciphertext);
    } catch {
      return null;
    }
  },
});
