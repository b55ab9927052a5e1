/** The vector set's keys, parsed once on first use (parsing is not free on a microcontroller-class engine). */
import { parsePrivateKeyPem, parsePublicKeyPem } from '../../crypto/keys.js';
import type { RsaPrivateKey, RsaPublicKey } from '../../crypto/types.js';
import type { VectorSet } from './vectors.js';

export interface KeyRing {
  publicKey(file: string): RsaPublicKey;
  privateKey(file: string): RsaPrivateKey;
}

export function keyRing(set: VectorSet): KeyRing {
  const pub = new Map<string, RsaPublicKey>();
  const priv = new Map<string, RsaPrivateKey>();
  return {
    publicKey(file) {
      let k = pub.get(file);
      if (k === undefined) pub.set(file, (k = parsePublicKeyPem(set.pem(file))));
      return k;
    },
    privateKey(file) {
      let k = priv.get(file);
      if (k === undefined) priv.set(file, (k = parsePrivateKeyPem(set.pem(file))));
      return k;
    },
  };
}
