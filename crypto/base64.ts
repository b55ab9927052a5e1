/** Standard base64 (RFC 4648 §4) without platform helpers, so it runs on XS as it is. */

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

const DECODE: Int16Array = (() => {
  const t = new Int16Array(128).fill(-1);
  for (let i = 0; i < ALPHABET.length; i++) t[ALPHABET.charCodeAt(i)] = i;
  return t;
})();

/** Encodes `bytes` with `=` padding; with `lineLength` > 0 inserts `\n` every `lineLength` characters. */
export function base64Encode(bytes: Uint8Array, lineLength = 0): string {
  let s = '';
  let i = 0;
  for (; i + 3 <= bytes.length; i += 3) {
    const v = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    s += ALPHABET[v >> 18] + ALPHABET[(v >> 12) & 63] + ALPHABET[(v >> 6) & 63] + ALPHABET[v & 63];
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const v = bytes[i] << 16;
    s += ALPHABET[v >> 18] + ALPHABET[(v >> 12) & 63] + '==';
  } else if (rest === 2) {
    const v = (bytes[i] << 16) | (bytes[i + 1] << 8);
    s += ALPHABET[v >> 18] + ALPHABET[(v >> 12) & 63] + ALPHABET[(v >> 6) & 63] + '=';
  }
  if (lineLength <= 0 || s.length <= lineLength) return s;
  const lines: string[] = [];
  for (let o = 0; o < s.length; o += lineLength) lines.push(s.slice(o, o + lineLength));
  return lines.join('\n');
}

/**
 * Decodes canonical base64: length a multiple of 4, `=` only as the last one or two characters, unused bits
 * zero, no whitespace or other characters. Returns null for anything else.
 */
export function base64Decode(text: string): Uint8Array | null {
  const len = text.length;
  if (len % 4 !== 0) return null;
  let pad = 0;
  if (len > 0 && text.charCodeAt(len - 1) === 61) pad = text.charCodeAt(len - 2) === 61 ? 2 : 1;
  const out = new Uint8Array((len / 4) * 3 - pad);
  let o = 0;
  for (let i = 0; i < len; i += 4) {
    const last = i + 4 === len;
    let v = 0;
    for (let j = 0; j < 4; j++) {
      const c = text.charCodeAt(i + j);
      if (last && j >= 4 - pad) {
        if (c !== 61) return null;
        v <<= 6;
        continue;
      }
      const d = c < 128 ? DECODE[c] : -1;
      if (d < 0) return null;
      v = (v << 6) | d;
    }
    if (last && pad === 2) {
      if ((v & 0xffff) !== 0) return null;
      out[o++] = v >> 16;
    } else if (last && pad === 1) {
      if ((v & 0xff) !== 0) return null;
      out[o++] = v >> 16;
      out[o++] = (v >> 8) & 255;
    } else {
      out[o++] = v >> 16;
      out[o++] = (v >> 8) & 255;
      out[o++] = v & 255;
    }
  }
  return out;
}
