/**
 * The join secret as the challenge functions accept it.
 *
 * A secret is exactly 32 hexadecimal characters (128 bits), which is what pySRUP sends (`uuid4().hex`), given
 * either as a string or as the raw decrypted bytes (32 bytes, each the ASCII code of one character). Digits
 * `0-9` and letters `a-f` in either case are accepted; `A` and `a` mean the same value, so they draw the same
 * picture. Anything else is refused with a `ChallengeError`:
 *   - `bad_type`   neither a string nor a Uint8Array;
 *   - `bad_length` not exactly 32 characters / bytes (16 raw binary bytes are refused too, never guessed at,
 *                  so the device and the console cannot disagree on how a value was read);
 *   - `not_hex`    a character (or byte) outside 0-9, a-f, A-F — including a NUL pad byte.
 * Nothing is trimmed, padded or hashed.
 */
import { ChallengeError } from './errors.js';

/** Characters in a secret. */
export const SECRET_HEX_LENGTH = 32;
/** Bytes (and bits / 8) of information in a secret. */
export const SECRET_BYTES = 16;

const HEX = '0123456789abcdef';

/** Value of one ASCII hex character code, or -1. */
function nibble(c: number): number {
  if (c >= 48 && c <= 57) return c - 48; // 0-9
  if (c >= 97 && c <= 102) return c - 87; // a-f
  if (c >= 65 && c <= 70) return c - 55; // A-F
  return -1;
}

/** The 16 bytes a secret stands for: byte k = the value of hex characters 2k (high nibble) and 2k+1 (low). */
export function parseSecret(secret: string | Uint8Array): Uint8Array {
  const isText = typeof secret === 'string';
  if (!isText && !(secret instanceof Uint8Array)) {
    throw new ChallengeError('bad_type', 'secret must be a string or a Uint8Array');
  }
  if (secret.length !== SECRET_HEX_LENGTH) {
    throw new ChallengeError('bad_length', `secret must be ${SECRET_HEX_LENGTH} hex characters, got ${secret.length}`);
  }
  const out = new Uint8Array(SECRET_BYTES);
  for (let i = 0; i < SECRET_HEX_LENGTH; i++) {
    const code = isText ? (secret as string).charCodeAt(i) : (secret as Uint8Array)[i];
    const v = nibble(code);
    if (v < 0) throw new ChallengeError('not_hex', `secret character ${i} is not a hex digit`);
    out[i >> 1] |= (i & 1) === 0 ? v << 4 : v;
  }
  return out;
}

/** 16 bytes as 32 lowercase hex characters. */
export function bytesToHex(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += HEX[bytes[i] >> 4] + HEX[bytes[i] & 15];
  return s;
}
