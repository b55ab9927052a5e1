/**
 * Encode, decode and signed bytes for every SRUP 0x05 message, driven by the table in schema.ts.
 *
 * Wire layout (SRUP-WIRE.md §4):
 *   version(1) type(1) seq(8 LE) sender(8 LE) tokenLen(2 BE) token sigLen(2 BE) signature fields...
 * Signed bytes: the same bytes without the signature length and the signature.
 *
 * Decoding is total: any input gives a Message or throws SrupError — never another exception, never a read
 * past the end. It is stricter than the reference: wrong version, unknown type, trailing bytes, a zero-length
 * signature and missing or non-zero 0x2C padding are all rejected.
 */
import { SrupError, requireBytes } from './errors.js';
import {
  GENERIC_CODE,
  Header,
  Message,
  SRUP_VERSION,
  TYPE_BY_CODE,
  TypeInfo,
  UnsignedMessage,
  typeInfo,
} from './schema.js';
import { U64_MAX } from './bytes.js';

const MAX_LEN = 0xffff;

// ---------------------------------------------------------------------------------------------------------
// Decoding

/**
 * A cursor over the input. Error messages are built only when something fails: decoding a good message makes
 * no strings. Byte fields are views into the input (subarray), not copies: a decoded message shares the input's
 * memory, so a caller that keeps fields after changing or reusing the input copies them (the transports hand
 * every message its own buffer).
 */
class Reader {
  pos = 0;
  private dv: DataView | null = null;
  constructor(readonly buf: Uint8Array) {}

  /** A DataView of the input, made on first use (32-bit fields only; most types have none). */
  private get view(): DataView {
    return this.dv ?? (this.dv = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength));
  }

  need(n: number, what: string): void {
    if (this.buf.length - this.pos < n) throw new SrupError('truncated', `input ends inside ${what}`);
  }
  u8(what: string): number {
    if (this.pos >= this.buf.length) this.need(1, what);
    return this.buf[this.pos++];
  }
  u32(what: string): number {
    if (this.buf.length - this.pos < 4) this.need(4, what);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }
  u64(what: string): bigint {
    const b = this.buf;
    const p = this.pos;
    if (b.length - p < 8) this.need(8, what);
    this.pos = p + 8;
    // Little-endian, as two 32-bit halves: no DataView to make, and one BigInt for ids below 2^32.
    const lo = (b[p] | (b[p + 1] << 8) | (b[p + 2] << 16) | (b[p + 3] << 24)) >>> 0;
    const hi = (b[p + 4] | (b[p + 5] << 8) | (b[p + 6] << 16) | (b[p + 7] << 24)) >>> 0;
    return hi === 0 ? BigInt(lo) : (BigInt(hi) << 32n) | BigInt(lo);
  }
  bytes(what: string): Uint8Array {
    const buf = this.buf;
    let p = this.pos;
    if (buf.length - p < 2) this.need(2, 'the length of ' + what);
    const n = (buf[p] << 8) | buf[p + 1];
    p += 2;
    if (buf.length - p < n) {
      throw new SrupError('length_exceeds_input', `${what} declares ${n} bytes but only ${buf.length - p} remain`);
    }
    this.pos = p + n;
    return buf.subarray(p, p + n);
  }
}

function readPrefix(bytes: Uint8Array): { r: Reader; code: number; header: Header } {
  requireBytes(bytes);
  if (bytes.length === 0) throw new SrupError('empty', 'empty input');
  const r = new Reader(bytes);
  const version = r.u8('the version');
  if (version !== SRUP_VERSION) {
    throw new SrupError('bad_version', `protocol version 0x${hex2(version)} is not 0x05`);
  }
  const code = r.u8('the type');
  if (code !== GENERIC_CODE && TYPE_BY_CODE[code] === undefined) {
    throw new SrupError('unknown_type', `type 0x${hex2(code)} is not a SRUP 0x05 message type`);
  }
  const sequenceId = r.u64('the sequence ID');
  const senderId = r.u64('the sender ID');
  const token = r.bytes('the token');
  return { r, code, header: { sequenceId, senderId, token } };
}

function hex2(n: number): string {
  return (n < 16 ? '0' : '') + n.toString(16);
}

function readFields(r: Reader, info: TypeInfo): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  for (const [name, kind] of info.fields) {
    switch (kind) {
      case 'u8':
        fields[name] = r.u8(name);
        break;
      case 'u32':
        fields[name] = r.u32(name);
        break;
      case 'u64':
        fields[name] = r.u64(name);
        break;
      case 'bytes':
        fields[name] = r.bytes(name);
        break;
      case 'zero2':
        if (r.buf.length - r.pos < 2 || r.buf[r.pos] !== 0 || r.buf[r.pos + 1] !== 0) {
          throw new SrupError('bad_padding', 'syndicated_c2_request must end with the two padding bytes 00 00');
        }
        r.pos += 2;
        break;
    }
  }
  return fields;
}

/** Decodes a signed message. Throws SrupError (and nothing else) on any malformed input. */
export function decode(bytes: Uint8Array): Message {
  const { r, code, header } = readPrefix(bytes);
  if (code === GENERIC_CODE) {
    throw new SrupError('header_only', 'a generic (0x00) message carries no signature and is never acted on');
  }
  const info = TYPE_BY_CODE[code] as TypeInfo;
  const signature = r.bytes('the signature');
  if (signature.length === 0) throw new SrupError('empty_signature', 'the signature is empty');
  const fields = readFields(r, info);
  if (r.pos !== bytes.length) {
    throw new SrupError('trailing_bytes', `${bytes.length - r.pos} bytes follow the last field`);
  }
  return {
    type: info.name,
    sequenceId: header.sequenceId,
    senderId: header.senderId,
    token: header.token,
    signature,
    fields,
  } as Message;
}

/** Like decode, but returns the error instead of throwing it. */
export function tryDecode(bytes: Uint8Array): { ok: true; message: Message } | { ok: false; error: SrupError } {
  try {
    return { ok: true, message: decode(bytes) };
  } catch (e) {
    if (e instanceof SrupError) return { ok: false, error: e };
    // Decoding is total; anything else is a bug in this module and must surface as one.
    throw e;
  }
}

/** Decodes a generic (0x00) header-only message: version, type, sequence ID, sender ID, token. */
export function decodeGeneric(bytes: Uint8Array): Header {
  const { r, code, header } = readPrefix(bytes);
  if (code !== GENERIC_CODE) throw new SrupError('unknown_type', 'not a generic (0x00) message');
  if (r.pos !== bytes.length) {
    throw new SrupError('trailing_bytes', `${bytes.length - r.pos} bytes follow the token`);
  }
  return header;
}

/**
 * Reads only the common header of any message (for routing and logging); type is the type byte. Does not
 * validate the rest. Throws SrupError on a malformed header.
 */
export function peekHeader(bytes: Uint8Array): Header & { code: number } {
  const { code, header } = readPrefix(bytes);
  return { ...header, code };
}

// ---------------------------------------------------------------------------------------------------------
// Encoding

function checkBytes(v: unknown, what: string): Uint8Array {
  // requireBytes's rule (errors.ts), written inline: sealing is on the device's deepest call path, and one more
  // frame here costs the firmware 3 slots of its 512-slot XS stack (npm run test:heap).
  if (!(v instanceof Uint8Array)) throw new SrupError('not_bytes', `${what} is not a byte array`);
  const b = v;
  if (b.length > MAX_LEN) throw new SrupError('field_range', `${what} is ${b.length} bytes; at most 65535 fit`);
  return b;
}

function checkInt(v: unknown, max: number, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) {
    throw new SrupError('field_range', `${what} must be an integer from 0 to ${max}`);
  }
  return v;
}

function checkU64(v: unknown, what: string): bigint {
  if (typeof v !== 'bigint' || v < 0n || v > U64_MAX) {
    throw new SrupError('field_range', `${what} must be a bigint from 0 to 2^64-1`);
  }
  return v;
}

function layoutSize(info: TypeInfo, fields: Record<string, unknown>): number {
  let n = 0;
  for (const [name, kind] of info.fields) {
    switch (kind) {
      case 'u8':
        checkInt(fields[name], 0xff, name);
        n += 1;
        break;
      case 'u32':
        checkInt(fields[name], 0xffffffff, name);
        n += 4;
        break;
      case 'u64':
        checkU64(fields[name], name);
        n += 8;
        break;
      case 'bytes':
        n += 2 + checkBytes(fields[name], name).length;
        break;
      case 'zero2':
        n += 2;
        break;
    }
  }
  return n;
}

function writeAll(m: UnsignedMessage, info: TypeInfo, signature: Uint8Array | null): Uint8Array {
  const fields = m.fields as Record<string, unknown>;
  const token = checkBytes(m.token, 'token');
  checkU64(m.sequenceId, 'sequenceId');
  checkU64(m.senderId, 'senderId');
  const size = 20 + token.length + (signature ? 2 + signature.length : 0) + layoutSize(info, fields);
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  out[0] = SRUP_VERSION;
  out[1] = info.code;
  view.setBigUint64(2, m.sequenceId, true);
  view.setBigUint64(10, m.senderId, true);
  let p = 18;
  const putBytes = (b: Uint8Array) => {
    out[p] = b.length >> 8;
    out[p + 1] = b.length & 0xff;
    out.set(b, p + 2);
    p += 2 + b.length;
  };
  putBytes(token);
  if (signature) putBytes(signature);
  for (const [name, kind] of info.fields) {
    const v = fields[name];
    switch (kind) {
      case 'u8':
        out[p++] = v as number;
        break;
      case 'u32':
        view.setUint32(p, v as number, true);
        p += 4;
        break;
      case 'u64':
        view.setBigUint64(p, v as bigint, true);
        p += 8;
        break;
      case 'bytes':
        putBytes(v as Uint8Array);
        break;
      case 'zero2':
        p += 2; // already zero
        break;
    }
  }
  return out;
}

function infoOf(m: { type: unknown }): TypeInfo {
  if (typeof m.type !== 'string' || !Object.prototype.hasOwnProperty.call(TYPE_NAMES_SET, m.type)) {
    throw new SrupError('field_range', `unknown message type ${String(m.type)}`);
  }
  return typeInfo(m.type as Message['type']);
}
const TYPE_NAMES_SET: Record<string, true> = Object.create(null);
for (const t of TYPE_BY_CODE) if (t) TYPE_NAMES_SET[t.name] = true;

/** The exact bytes the sender signs: everything but the signature length and the signature. */
export function signedBytes(m: UnsignedMessage): Uint8Array {
  return writeAll(m, infoOf(m), null);
}

/** Encodes a signed message to its wire form. Throws SrupError('field_range') when a value does not fit. */
export function encode(m: Message): Uint8Array {
  const sig = checkBytes(m.signature, 'signature');
  if (sig.length === 0) throw new SrupError('empty_signature', 'cannot encode a message without a signature');
  return writeAll(m, infoOf(m), sig);
}

/** Encodes a generic (0x00) header-only message. */
export function encodeGeneric(h: Header): Uint8Array {
  const token = checkBytes(h.token, 'token');
  checkU64(h.sequenceId, 'sequenceId');
  checkU64(h.senderId, 'senderId');
  const out = new Uint8Array(20 + token.length);
  const view = new DataView(out.buffer);
  out[0] = SRUP_VERSION;
  out[1] = GENERIC_CODE;
  view.setBigUint64(2, h.sequenceId, true);
  view.setBigUint64(10, h.senderId, true);
  out[18] = token.length >> 8;
  out[19] = token.length & 0xff;
  out.set(token, 20);
  return out;
}
