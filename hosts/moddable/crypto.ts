/**
 * The agent's crypto on the device: SHA-256 and AES-CBC from the SDK's native `crypt` (C, no JavaScript
 * tables in the XS heap), RSA and PKCS#7 padding from crypto/ (assemble.ts). The SDK's CBC mode is used
 * without its padding (it does not check pad bytes on decrypt, and its padded encrypt writes past its
 * allocation): assemble.ts pads and checks.
 */
import { BlockCipher, Digest, Mode } from 'crypt';
import { assembleCrypto } from '../../crypto/assemble.js';
import type { Crypto } from '../../crypto/types.js';

/** The bytes of `b` as an ArrayBuffer of exactly its length (the SDK's natives take ArrayBuffers). */
function bufferOf(b: Uint8Array): ArrayBuffer {
  return b.byteOffset === 0 && b.byteLength === b.buffer.byteLength ? (b.buffer as ArrayBuffer) : (b.slice().buffer as ArrayBuffer);
}

function cbcMode(key: Uint8Array, iv: Uint8Array): Mode {
  return new Mode('CBC', new BlockCipher('AES', bufferOf(key)), bufferOf(iv), false);
}

export const moddableCrypto: Crypto = assembleCrypto({
  name: 'moddable-crypt',
  sha256Stream() {
    const d = new Digest('SHA256');
    return {
      update(chunk: Uint8Array): void {
        d.write(bufferOf(chunk));
      },
      digest(): Uint8Array {
        return new Uint8Array(d.close());
      },
    };
  },
  aesCbc: {
    encrypt: (key, iv, blocks) => new Uint8Array(cbcMode(key, iv).encrypt(bufferOf(blocks))),
    decrypt: (key, iv, blocks) => new Uint8Array(cbcMode(key, iv).decrypt(bufferOf(blocks))),
  },
});
