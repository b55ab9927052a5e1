/**
 * Typed payloads for data (0x05), syndicated_data (0x25) and syndicated_c2_request (0x2C) messages.
 * The wire carries no type tag (SRUP-WIRE.md §7): integers are little-endian two's complement, floats
 * little-endian IEEE-754, text is UTF-8 without a terminator. pySRUP sends Python int as int32, float as
 * double and str as UTF-8.
 */
import { SrupError, requireBytes } from './errors.js';
import { utf8, utf8DecodeOrNull } from './bytes.js';

export type DataKind =
  | 'uint8'
  | 'int8'
  | 'uint16'
  | 'int16'
  | 'uint32'
  | 'int32'
  | 'uint64'
  | 'int64'
  | 'float'
  | 'double'
  | 'string'
  | 'bytes';

export type DataValue<K extends DataKind> = K extends 'uint64' | 'int64'
  ? bigint
  : K extends 'string'
    ? string
    : K extends 'bytes'
      ? Uint8Array
      : number;

const SIZE: Record<DataKind, number> = {
  uint8: 1,
  int8: 1,
  uint16: 2,
  int16: 2,
  uint32: 4,
  int32: 4,
  uint64: 8,
  int64: 8,
  float: 4,
  double: 8,
  string: -1,
  bytes: -1,
};

export const DATA_KINDS = Object.keys(SIZE) as DataKind[];

export function isDataKind(s: string): s is DataKind {
  return Object.prototype.hasOwnProperty.call(SIZE, s);
}

const RANGE: Partial<Record<DataKind, [number, number]>> = {
  uint8: [0, 0xff],
  int8: [-0x80, 0x7f],
  uint16: [0, 0xffff],
  int16: [-0x8000, 0x7fff],
  uint32: [0, 0xffffffff],
  int32: [-0x80000000, 0x7fffffff],
};

/** Encodes a typed value as the reference's typed setters do. Throws SrupError('bad_data') when it does not fit. */
export function encodeData<K extends DataKind>(kind: K, value: DataValue<K>): Uint8Array {
  const size = SIZE[kind];
  if (kind === 'string') {
    if (typeof value !== 'string') throw new SrupError('bad_data', 'string data must be a string');
    return utf8(value);
  }
  if (kind === 'bytes') {
    return requireBytes(value, 'bytes data').slice();
  }
  const out = new Uint8Array(size);
  const v = new DataView(out.buffer);
  if (kind === 'uint64' || kind === 'int64') {
    if (typeof value !== 'bigint') throw new SrupError('bad_data', `${kind} data must be a bigint`);
    const lo = kind === 'uint64' ? 0n : -(1n << 63n);
    const hi = kind === 'uint64' ? (1n << 64n) - 1n : (1n << 63n) - 1n;
    if (value < lo || value > hi) throw new SrupError('bad_data', `${value} does not fit ${kind}`);
    if (kind === 'uint64') v.setBigUint64(0, value, true);
    else v.setBigInt64(0, value, true);
    return out;
  }
  if (typeof value !== 'number') {
    throw new SrupError('bad_data', `${kind} data must be a number`);
  }
  const n = value as number;
  if (kind === 'float') v.setFloat32(0, n, true);
  else if (kind === 'double') v.setFloat64(0, n, true);
  else {
    const [lo, hi] = RANGE[kind] as [number, number];
    if (!Number.isInteger(n) || n < lo || n > hi) throw new SrupError('bad_data', `${n} does not fit ${kind}`);
    if (kind === 'uint8') v.setUint8(0, n);
    else if (kind === 'int8') v.setInt8(0, n);
    else if (kind === 'uint16') v.setUint16(0, n, true);
    else if (kind === 'int16') v.setInt16(0, n, true);
    else if (kind === 'uint32') v.setUint32(0, n, true);
    else v.setInt32(0, n, true);
  }
  return out;
}

/**
 * Reads a typed value. Numeric kinds need exactly their size in bytes (the reference over-reads a short
 * payload; we refuse it); strings must be valid UTF-8. Throws SrupError('bad_data') otherwise, and
 * SrupError('not_bytes') for an input that is not a Uint8Array.
 */
export function decodeData<K extends DataKind>(kind: K, bytes: Uint8Array): DataValue<K> {
  requireBytes(bytes, 'data');
  const size = SIZE[kind];
  if (kind === 'bytes') return bytes.slice() as DataValue<K>;
  if (kind === 'string') {
    const s = utf8DecodeOrNull(bytes);
    if (s === null) throw new SrupError('bad_data', 'data is not valid UTF-8');
    return s as DataValue<K>;
  }
  if (bytes.length !== size) {
    throw new SrupError('bad_data', `${kind} data must be ${size} bytes, not ${bytes.length}`);
  }
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let out: number | bigint;
  switch (kind) {
    case 'uint8': out = v.getUint8(0); break;
    case 'int8': out = v.getInt8(0); break;
    case 'uint16': out = v.getUint16(0, true); break;
    case 'int16': out = v.getInt16(0, true); break;
    case 'uint32': out = v.getUint32(0, true); break;
    case 'int32': out = v.getInt32(0, true); break;
    case 'uint64': out = v.getBigUint64(0, true); break;
    // Not getBigInt64: XS (13.3) reads 00..00 80 as a negative zero instead of -2^63.
    case 'int64': out = BigInt.asIntN(64, v.getBigUint64(0, true)); break;
    case 'float': out = v.getFloat32(0, true); break;
    default: out = v.getFloat64(0, true); break;
  }
  return out as DataValue<K>;
}
