/**
 * The pure TypeScript Crypto: RSA over native BigInt (rsa.ts), SHA-256 from @noble/hashes and raw AES-CBC
 * from @noble/ciphers, put together by assemble.ts (which does the PKCS#7 padding). Runs anywhere, XS
 * included; the firmware uses the SDK's native primitives instead (hosts/moddable/crypto.ts).
 */
import { cbc } from '@noble/ciphers/aes.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { assembleCrypto } from './assemble.js';
import type { Crypto } from './types.js';

export const pureCrypto: Crypto = assembleCrypto({
  name: 'pure',
  sha256Stream() {
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
  aesCbc: {
    encrypt: (key, iv, blocks) => cbc(key, iv, { disablePadding: true }).encrypt(blocks),
    decrypt: (key, iv, blocks) => cbc(key, iv, { disablePadding: true }).decrypt(blocks),
  },
});
