/** Tokens and one-time secrets made from host randomness (never Math.random). */
import { CryptoError } from '../../crypto/types.js';
import type { RandomBytes } from '../../crypto/types.js';
import { toHex } from '../srup/bytes.js';
import { C2Error } from './errors.js';

function random16(random: RandomBytes): Uint8Array {
  const b = random(16);
  if (!(b instanceof Uint8Array) || b.length !== 16) throw new CryptoError('bad_random', 'host randomness returned other than 16 bytes');
  return b;
}

/**
 * A one-time join secret: 32 lowercase hex characters from 16 random bytes (the form of pySRUP's
 * `uuid4().hex`, but with all 128 bits random: no fixed version or variant digits).
 */
export function joinSecret(random: RandomBytes): string {
  return toHex(random16(random));
}

/** ASCII text to bytes (tokens and secrets are ASCII). */
export function ascii(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0x7f) throw new C2Error('bad_argument', 'not ASCII');
    out[i] = c;
  }
  return out;
}
