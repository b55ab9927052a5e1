/**
 * Small byte helpers shared by the pure layers, and the one place for hex text and ids: every layer (hosts and
 * tools too) writes and reads ids with idHex16 / parseIdHex. No platform APIs: these run on XS as they are.
 */
import { constantTimeEqual } from '../../crypto/equal.js';
import { SrupError } from './errors.js';

export const EMPTY = new Uint8Array(0);

// XS stores strings as UTF-8, so indexing into a long string (charCodeAt(i), s[i]) costs more the further in it
// reads. These helpers walk strings with iterators and build them with join, never by index or repeated +=.
const BYTE_HEX: string[] = [];
for (let i = 0; i < 256; i++) BYTE_HEX.push((i < 16 ? '0' : '') + i.toString(16));

export function toHex(bytes: Uint8Array): string {
  const parts = new Array<string>(bytes.length);
  for (let i = 0; i < bytes.length; i++) parts[i] = BYTE_HEX[bytes[i]];
  return parts.join('');
}

function nibble(c: number): number {
  if (c >= 48 && c <= 57) return c - 48; // 0-9
  if (c >= 97 && c <= 102) return c - 87; // a-f
  if (c >= 65 && c <= 70) return c - 55; // A-F
  return -1;
}

/** Parses hex text (either case, even length). Returns null for anything else. */
export function fromHexOrNull(hex: string): Uint8Array | null {
  if (hex.length % 2 !== 0) return null;
  const out = new Uint8Array(hex.length / 2);
  let i = 0;
  let hi = -1;
  for (const ch of hex) {
    const v = nibble(ch.charCodeAt(0));
    if (v < 0) return null;
    if (hi < 0) hi = v;
    else {
      out[i++] = (hi << 4) | v;
      hi = -1;
    }
  }
  return i === out.length ? out : null;
}

export function fromHex(hex: string): Uint8Array {
  const out = fromHexOrNull(hex);
  if (out === null) throw new SrupError('bad_hex', 'not an even-length hex string');
  return out;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Byte strings equal, without an early exit (crypto/equal.ts: the one comparison). */
export const equal = constantTimeEqual;

/** UTF-8 encoding of a JS string (lone surrogates become U+FFFD, as TextEncoder does). */
export function utf8(s: string): Uint8Array {
  const out: number[] = [];
  for (const ch of s) {
    let c = ch.codePointAt(0) as number;
    if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd; // a lone surrogate: the iterator yields it alone
    if (c < 0x80) out.push(c);
    else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
    else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
  }
  return Uint8Array.from(out);
}

/** Strict UTF-8 decoding: returns null on any malformed, overlong or surrogate sequence. */
export function utf8DecodeOrNull(b: Uint8Array): string | null {
  const parts: string[] = [];
  for (let i = 0; i < b.length; ) {
    const c = b[i];
    let cp: number;
    let n: number;
    if (c < 0x80) {
      cp = c;
      n = 0;
    } else if (c >= 0xc2 && c <= 0xdf) {
      cp = c & 0x1f;
      n = 1;
    } else if (c >= 0xe0 && c <= 0xef) {
      cp = c & 0x0f;
      n = 2;
    } else if (c >= 0xf0 && c <= 0xf4) {
      cp = c & 0x07;
      n = 3;
    } else return null;
    for (let k = 1; k <= n; k++) {
      const d = b[i + k];
      if (d === undefined || (d & 0xc0) !== 0x80) return null;
      cp = (cp << 6) | (d & 0x3f);
    }
    if ((n === 2 && cp < 0x800) || (n === 3 && (cp < 0x10000 || cp > 0x10ffff))) return null;
    if (cp >= 0xd800 && cp <= 0xdfff) return null;
    parts.push(String.fromCodePoint(cp));
    i += n + 1;
  }
  return parts.join("");
}

/** Lowercase hex without leading zeros: how the reference writes ids in MQTT topics ("0" for zero). */
export function idTopicHex(id: bigint): string {
  return id.toString(16);
}

/** 16 lowercase hex digits: how ids appear in JSON and logs. SrupError('field_range') for a value that is not a u64. */
export function idHex16(id: bigint): string {
  if (id < 0n || id > U64_MAX) throw new SrupError('field_range', `not a u64 id: ${id}`);
  return id.toString(16).padStart(16, '0');
}

export const U64_MAX = (1n << 64n) - 1n;

/**
 * Parses an id written as 1-16 hex digits, any case; with `prefix` (the default, for people typing ids) a
 * leading 0x is allowed too, without it (files, URLs, the registry) it is not. Null for anything else, also for
 * a value that is not a string.
 */
export function parseIdHex(s: unknown, prefix = true): bigint | null {
  if (typeof s !== 'string') return null;
  const t = prefix && (s.startsWith('0x') || s.startsWith('0X')) ? s.slice(2) : s;
  if (!/^[0-9a-fA-F]{1,16}$/.test(t)) return null;
  return BigInt('0x' + t);
}
