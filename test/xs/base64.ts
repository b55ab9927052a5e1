/**
 * Standard base64 (RFC 4648, with padding) to bytes; xsnap has no atob. Throws on anything malformed.
 * One pass with the string iterator: indexing a long string with charCodeAt(i) is O(i) on XS.
 */
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const VALUE: Record<string, number> = {};
for (let i = 0; i < ALPHABET.length; i++) VALUE[ALPHABET[i]] = i;

export function base64ToBytes(s: string): Uint8Array {
  if (s.length % 4 !== 0) throw new Error('base64 length is not a multiple of 4');
  const pad = s.endsWith('==') ? 2 : s.endsWith('=') ? 1 : 0;
  const out = new Uint8Array((s.length / 4) * 3 - pad);
  let o = 0;
  let n = 0;
  let k = 0;
  let seen = 0;
  for (const ch of s) {
    seen++;
    const v = ch === '=' && seen > s.length - pad ? 0 : VALUE[ch];
    if (v === undefined) throw new Error(`bad base64 character ${JSON.stringify(ch)}`);
    n = (n << 6) | v;
    if (++k === 4) {
      if (o < out.length) out[o++] = (n >> 16) & 255;
      if (o < out.length) out[o++] = (n >> 8) & 255;
      if (o < out.length) out[o++] = n & 255;
      n = 0;
      k = 0;
    }
  }
  return out;
}
