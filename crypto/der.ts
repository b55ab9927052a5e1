/**
 * A small, strict DER reader and writer for the few ASN.1 types RSA keys need: SEQUENCE, INTEGER, OBJECT
 * IDENTIFIER, NULL, BIT STRING and OCTET STRING (plus skipping context-tagged optional fields).
 * Reading accepts only definite, minimally encoded lengths and minimally encoded INTEGERs and OIDs, and checks
 * every length against the end of its enclosing element. Any violation throws CryptoError('bad_der').
 */
import { CryptoError } from './types.js';

export const TAG_INTEGER = 0x02;
export const TAG_BIT_STRING = 0x03;
export const TAG_OCTET_STRING = 0x04;
export const TAG_NULL = 0x05;
export const TAG_OID = 0x06;
export const TAG_SEQUENCE = 0x30;

/** Lengths above this are refused outright: no key or envelope comes near it. */
const MAX_LENGTH = 0x1000000;

function fail(message: string): never {
  throw new CryptoError('bad_der', message);
}

export interface BitString {
  readonly unusedBits: number;
  readonly bytes: Uint8Array;
}

/** Reads consecutive DER elements from bytes[start, end). */
export class DerReader {
  private pos: number;

  constructor(
    private readonly bytes: Uint8Array,
    start = 0,
    private readonly end = bytes.length,
  ) {
    if (start < 0 || end > bytes.length || start > end) fail('bad DER bounds');
    this.pos = start;
  }

  /** True when every element has been read. */
  get done(): boolean {
    return this.pos >= this.end;
  }

  /** The tag of the next element, or -1 at the end. */
  peekTag(): number {
    return this.pos < this.end ? this.bytes[this.pos] : -1;
  }

  /** Throws unless every element has been read. */
  finish(what: string): void {
    if (this.pos !== this.end) fail(`trailing bytes after ${what}`);
  }

  /** Reads one element with tag `tag` and returns the [start, end) of its contents. */
  private element(tag: number, what: string): [number, number] {
    const b = this.bytes;
    if (this.pos >= this.end) fail(`missing ${what}`);
    const t = b[this.pos];
    if (t !== tag) fail(`expected ${what} (tag 0x${tag.toString(16)}), found tag 0x${t.toString(16)}`);
    if ((t & 0x1f) === 0x1f) fail('high tag numbers are not supported');
    let p = this.pos + 1;
    if (p >= this.end) fail(`truncated ${what}`);
    const first = b[p++];
    let len: number;
    if (first < 0x80) {
      len = first;
    } else {
      const n = first & 0x7f;
      if (n === 0) fail('indefinite length');
      if (n > 4) fail('length too large');
      if (p + n > this.end) fail(`truncated length of ${what}`);
      if (b[p] === 0) fail('non-minimal length');
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + b[p++];
      if (len < 0x80) fail('non-minimal length');
      if (len > MAX_LENGTH) fail('length too large');
    }
    if (len > this.end - p) fail(`${what} runs past its container`);
    this.pos = p + len;
    return [p, p + len];
  }

  /** The raw contents of the next element, which must carry `tag`. */
  read(tag: number, what = 'element'): Uint8Array {
    const [s, e] = this.element(tag, what);
    return this.bytes.subarray(s, e);
  }

  /** A reader over the contents of the next SEQUENCE. */
  sequence(what = 'SEQUENCE'): DerReader {
    const [s, e] = this.element(TAG_SEQUENCE, what);
    return new DerReader(this.bytes, s, e);
  }

  /** A minimally encoded INTEGER (two's complement, so it may be negative). */
  integer(what = 'INTEGER'): bigint {
    const c = this.read(TAG_INTEGER, what);
    if (c.length === 0) fail(`empty ${what}`);
    if (c.length > 1 && ((c[0] === 0 && c[1] < 0x80) || (c[0] === 0xff && c[1] >= 0x80))) {
      fail(`non-minimal ${what}`);
    }
    let v = bytesToBigInt(c);
    if (c[0] >= 0x80) v -= 1n << BigInt(8 * c.length);
    return v;
  }

  /** An INTEGER that must lie in [0, 2^31). */
  smallInteger(what = 'INTEGER'): number {
    const v = this.integer(what);
    if (v < 0n || v > 0x7fffffffn) fail(`${what} out of range`);
    return Number(v);
  }

  /** An OBJECT IDENTIFIER in dotted form. */
  oid(what = 'OBJECT IDENTIFIER'): string {
    const c = this.read(TAG_OID, what);
    if (c.length === 0) fail(`empty ${what}`);
    const arcs: bigint[] = [];
    let v = 0n;
    let fresh = true;
    for (let i = 0; i < c.length; i++) {
      if (fresh && c[i] === 0x80) fail(`non-minimal ${what}`);
      v = (v << 7n) | BigInt(c[i] & 0x7f);
      fresh = (c[i] & 0x80) === 0;
      if (fresh) {
        arcs.push(v);
        v = 0n;
      }
    }
    if (!fresh) fail(`truncated ${what}`);
    const first = arcs[0];
    const head = first < 40n ? [0n, first] : first < 80n ? [1n, first - 40n] : [2n, first - 80n];
    return head.concat(arcs.slice(1)).join('.');
  }

  /** A NULL. */
  null(what = 'NULL'): void {
    if (this.read(TAG_NULL, what).length !== 0) fail(`non-empty ${what}`);
  }

  /** A BIT STRING (the unused bits must be zero, as DER requires). */
  bitString(what = 'BIT STRING'): BitString {
    const c = this.read(TAG_BIT_STRING, what);
    if (c.length === 0) fail(`empty ${what}`);
    const unusedBits = c[0];
    if (unusedBits > 7 || (c.length === 1 && unusedBits !== 0)) fail(`bad unused-bit count in ${what}`);
    const bytes = c.subarray(1);
    if (unusedBits > 0 && (bytes[bytes.length - 1] & ((1 << unusedBits) - 1)) !== 0) {
      fail(`non-zero unused bits in ${what}`);
    }
    return { unusedBits, bytes };
  }

  /** An OCTET STRING. */
  octetString(what = 'OCTET STRING'): Uint8Array {
    return this.read(TAG_OCTET_STRING, what);
  }
}

// ---- writing ----

function encodeLength(len: number): Uint8Array {
  if (len < 0x80) return Uint8Array.of(len);
  const out: number[] = [];
  for (let v = len; v > 0; v = Math.floor(v / 256)) out.unshift(v & 255);
  return Uint8Array.from([0x80 | out.length, ...out]);
}

/** One element: tag, minimal definite length, contents. */
export function derElement(tag: number, ...contents: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const c of contents) n += c.length;
  const len = encodeLength(n);
  const out = new Uint8Array(1 + len.length + n);
  out[0] = tag;
  out.set(len, 1);
  let o = 1 + len.length;
  for (const c of contents) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

export function derSequence(...elements: Uint8Array[]): Uint8Array {
  return derElement(TAG_SEQUENCE, ...elements);
}

export function derInteger(v: bigint): Uint8Array {
  let c: Uint8Array;
  if (v >= 0n) {
    const mag = bigIntToBytes(v, 0);
    c = mag.length === 0 || mag[0] >= 0x80 ? Uint8Array.from([0, ...mag]) : mag;
  } else {
    let n = 1;
    while (-(1n << BigInt(8 * n - 1)) > v) n++;
    c = bigIntToBytes((1n << BigInt(8 * n)) + v, n);
  }
  return derElement(TAG_INTEGER, c);
}

export function derOid(dotted: string): Uint8Array {
  const parts = dotted.split('.');
  if (parts.length < 2) throw new CryptoError('bad_argument', 'an OID needs at least two arcs');
  const arcs = parts.map((p) => {
    if (!/^(0|[1-9][0-9]*)$/.test(p)) throw new CryptoError('bad_argument', `bad OID arc ${p}`);
    return BigInt(p);
  });
  if (arcs[0] > 2n || (arcs[0] < 2n && arcs[1] >= 40n)) throw new CryptoError('bad_argument', 'bad OID head');
  const values = [arcs[0] * 40n + arcs[1], ...arcs.slice(2)];
  const out: number[] = [];
  for (const v of values) {
    const group: number[] = [Number(v & 0x7fn)];
    for (let x = v >> 7n; x > 0n; x >>= 7n) group.unshift(Number(x & 0x7fn) | 0x80);
    out.push(...group);
  }
  return derElement(TAG_OID, Uint8Array.from(out));
}

export function derNull(): Uint8Array {
  return Uint8Array.of(TAG_NULL, 0);
}

/** A BIT STRING of whole bytes (no unused bits). */
export function derBitString(bytes: Uint8Array): Uint8Array {
  return derElement(TAG_BIT_STRING, Uint8Array.of(0), bytes);
}

export function derOctetString(bytes: Uint8Array): Uint8Array {
  return derElement(TAG_OCTET_STRING, bytes);
}

// ---- big-endian unsigned integers ----
// These avoid BigInt <-> string conversions, which are slow on XS for key-sized numbers.

/** The unsigned big-endian integer in `bytes` (0n for no bytes). */
export function bytesToBigInt(bytes: Uint8Array): bigint {
  const n = bytes.length;
  let i = n % 4;
  let w = 0;
  for (let j = 0; j < i; j++) w = w * 256 + bytes[j];
  let x = BigInt(w);
  for (; i < n; i += 4) {
    x = (x << 32n) | BigInt(((bytes[i] << 24) | (bytes[i + 1] << 16) | (bytes[i + 2] << 8) | bytes[i + 3]) >>> 0);
  }
  return x;
}

/**
 * `v` (non-negative) as big-endian bytes: exactly `length` bytes when length > 0 (RangeError if it does not
 * fit), otherwise the minimal number of bytes (none for 0n).
 */
export function bigIntToBytes(v: bigint, length: number): Uint8Array {
  if (v < 0n) throw new CryptoError('bad_argument', 'negative integer');
  if (length > 0 && v >> BigInt(8 * length) > 0n) throw new CryptoError('bad_argument', 'integer too large for its length');
  const size = length > 0 ? length : (bitLength(v) + 7) >> 3;
  const out = new Uint8Array(size);
  let x = v;
  let o = size;
  while (x > 0n && o > 0) {
    const w = Number(x & 0xffffffffn);
    x >>= 32n;
    out[--o] = w & 255;
    if (o > 0) out[--o] = (w >>> 8) & 255;
    if (o > 0) out[--o] = (w >>> 16) & 255;
    if (o > 0) out[--o] = w >>> 24;
  }
  return out;
}

/** Bit length of a non-negative integer (0 for 0n and negatives). */
export function bitLength(v: bigint): number {
  if (v <= 0n) return 0;
  let hi = 1;
  while (v >> BigInt(hi) > 0n) hi *= 2;
  if (hi === 1) return 1;
  // v >> lo > 0 and v >> hi == 0: bisect.
  let lo = hi / 2;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (v >> BigInt(mid) > 0n) lo = mid;
    else hi = mid;
  }
  return hi;
}

/** The 32-bit words of a non-negative integer, least significant first (none for 0n). */
export function bigIntToWords(v: bigint): Uint32Array {
  const words: number[] = [];
  for (let x = v; x > 0n; x >>= 32n) words.push(Number(x & 0xffffffffn));
  return Uint32Array.from(words);
}
