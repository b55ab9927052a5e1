/** The agent's crypto on Moddable: SHA-256 from the SDK's native `crypt` Digest, RSA and AES from crypto/pure.ts. */
import { Digest } from 'crypt';
import { pureCrypto } from '../../crypto/pure.js';
import type { Crypto, Sha256Stream } from '../../crypto/types.js';

function bufferOf(b: Uint8Array): ArrayBuffer {
  return b.byteOffset === 0 && b.byteLength === b.buffer.byteLength ? (b.buffer as ArrayBuffer) : (b.slice().buffer as ArrayBuffer);
}

function sha256Stream(): Sha256Stream {
  const d = new Digest('SHA256');
  return {
    update(chunk: Uint8Array): void {
      d.write(bufferOf(chunk));
    },
    digest(): Uint8Array {
      return new Uint8Array(d.close());
    },
  };
}

export const moddableCrypto: Crypto = Object.freeze({
  ...pureCrypto,
  name: 'moddable-crypt+pure',
  sha256(data: Uint8Array): Uint8Array {
    const s = sha256Stream();
    s.update(data);
    return s.digest();
  },
  sha256Stream,
});
