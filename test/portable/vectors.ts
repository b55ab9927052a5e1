/**
 * The SRUP test vectors (test/data/srup-vectors, see its README) as plain data, independent of where they
 * come from: the jest wrapper reads them from disk, the XS bundle carries them embedded.
 *
 * Also the one translation from a sidecar to the values our codec speaks: the schema's camelCase field
 * names map to the sidecar's snake_case names (actionId <-> action_id), 64-bit ids are {dec, hex}, byte
 * strings {len, hex}, and the envelope of the encrypted-value types lives in `encrypted.envelope_hex`.
 */
import {
  FieldKind,
  Header,
  Message,
  SCHEMA,
  TypeName,
  UnsignedMessage,
  isTypeName,
  typeInfo,
} from '../../modules/srup/schema.js';
import { check, fail, show } from './harness.js';

export type Expect = 'valid' | 'header-only' | 'invalid';

export interface U64Json {
  dec: string;
  hex: string;
}

export interface DataInterpretationJson {
  type: string;
  value?: number | string;
  hex?: string;
}

export interface BytesJson {
  len: number;
  hex: string;
  text?: string;
  interpretation?: DataInterpretationJson;
}

export interface EncryptedJson {
  envelope_hex: string;
  envelope_len: number;
  wrapped_key_len?: number;
  iv_hex?: string;
  ciphertext_len?: number;
  plaintext_len?: number;
  plaintext: BytesJson | null;
  recipient_private_key_file?: string;
  recipient_public_key_file?: string;
}

export interface Sidecar {
  id: string;
  file: string;
  expect: Expect;
  description: string;
  length: number;
  sha256: string;
  public_key_file: string;
  public_key_pem?: string;
  // valid and header-only
  type?: string;
  type_code?: number;
  type_code_hex?: string;
  version?: number;
  sequence_id?: U64Json;
  sender_id?: U64Json;
  token?: BytesJson;
  fields?: Record<string, unknown>;
  signature?: { scheme: string; hash: string; len: number; hex: string };
  signed_bytes_hex?: string;
  private_key_file?: string;
  encrypted?: EncryptedJson;
  // invalid
  must_reject?: boolean;
  reject_reason?: string;
  derived_from?: string;
  mutation?: string;
  notes?: string[];
  reference_result?: Record<string, unknown>;
}

export interface IndexJson {
  count: number;
  vectors: { id: string; type: string; expect: Expect; file: string }[];
}

export interface Vector {
  readonly id: string;
  readonly expect: Expect;
  /** The message type named in the index ("invalid" for the must-reject vectors). */
  readonly type: string;
  readonly sidecar: Sidecar;
  /** The .bin file: the message exactly as it travels as an MQTT payload. */
  readonly bytes: Uint8Array;
}

export interface VectorSet {
  readonly index: IndexJson;
  readonly vectors: readonly Vector[];
  /** A key file's PEM text by its path relative to the set (as sidecars name it: "keys/signer-1.public.pem"). */
  pem(file: string): string;
}

/** Assembles a VectorSet; throws when the index names a vector whose sidecar or .bin is missing. */
export function makeVectorSet(
  index: IndexJson,
  sidecars: Readonly<Record<string, Sidecar>>,
  bins: Readonly<Record<string, Uint8Array>>,
  pems: Readonly<Record<string, string>>,
): VectorSet {
  const vectors: Vector[] = index.vectors.map((entry) => {
    const sidecar = sidecars[entry.id];
    const bytes = bins[entry.id];
    if (sidecar === undefined) throw new Error(`vector ${entry.id}: no sidecar`);
    if (bytes === undefined) throw new Error(`vector ${entry.id}: no .bin`);
    return { id: entry.id, expect: entry.expect, type: entry.type, sidecar, bytes };
  });
  return {
    index,
    vectors,
    pem(file: string): string {
      const p = pems[file];
      if (p === undefined) throw new Error(`no key file ${file} in the vector set`);
      return p;
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// Sidecar -> codec values

/** actionId -> action_id */
export function snakeName(camel: string): string {
  return camel.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase());
}

function nibble(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/**
 * Sidecar hex to bytes. One pass with the string iterator: on XS, strings are UTF-8 inside and
 * `charCodeAt(i)` costs O(i), so an indexed loop is quadratic - minutes for the 64 KiB token of action-04.
 */
export function hexBytes(hex: string, what: string): Uint8Array {
  check(typeof hex === 'string' && hex.length % 2 === 0, () => `${what}: sidecar hex ${show(hex)} is not hex`);
  const out = new Uint8Array(hex.length / 2);
  let o = 0;
  let hi = -1;
  for (const ch of hex) {
    const v = nibble(ch.charCodeAt(0));
    if (v < 0) fail(`${what}: sidecar hex has the non-hex character ${show(ch)}`);
    if (hi < 0) hi = v;
    else {
      out[o++] = (hi << 4) | v;
      hi = -1;
    }
  }
  return out;
}

/** UTF-8 of a sidecar text, in one pass (see hexBytes). */
export function textBytes(text: string): Uint8Array {
  const out: number[] = [];
  for (const ch of text) {
    const c = ch.codePointAt(0) as number;
    if (c < 0x80) out.push(c);
    else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
    else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
  }
  return Uint8Array.from(out);
}

/** A 64-bit value from its {dec, hex} form; the two spellings must agree. */
export function u64Of(j: unknown, what: string): bigint {
  const v = j as U64Json;
  check(
    v !== null && typeof v === 'object' && typeof v.dec === 'string' && typeof v.hex === 'string',
    () => `${what}: sidecar value ${show(j)} is not {dec, hex}`,
  );
  check(/^[0-9]+$/.test(v.dec) && /^[0-9a-f]{16}$/.test(v.hex), () => `${what}: malformed ${show(j)}`);
  const n = BigInt(v.dec);
  check(n === BigInt('0x' + v.hex), () => `${what}: dec ${v.dec} and hex ${v.hex} disagree`);
  return n;
}

/** A byte string from its {len, hex, text?} form; len must match and text, when present, must be the bytes. */
export function bytesOf(j: unknown, what: string): Uint8Array {
  const v = j as BytesJson;
  check(v !== null && typeof v === 'object' && typeof v.hex === 'string', () => `${what}: not {len, hex}`);
  const b = hexBytes(v.hex, what);
  check(b.length === v.len, () => `${what}: len ${v.len} but hex holds ${b.length} bytes`);
  return b;
}

function numberOf(j: unknown, max: number, what: string): number {
  check(
    typeof j === 'number' && Number.isInteger(j) && j >= 0 && j <= max,
    () => `${what}: sidecar value ${show(j)} is not an integer from 0 to ${max}`,
  );
  return j;
}

export function headerOf(sc: Sidecar): Header {
  return {
    sequenceId: u64Of(sc.sequence_id, `${sc.id} sequence_id`),
    senderId: u64Of(sc.sender_id, `${sc.id} sender_id`),
    token: bytesOf(sc.token, `${sc.id} token`),
  };
}

export function typeOf(sc: Sidecar): TypeName {
  const t = sc.type;
  check(typeof t === 'string' && isTypeName(t), () => `${sc.id}: sidecar type ${show(t)} is not a message type`);
  return t;
}

/** The sidecar key a schema field is described under. */
function sidecarKey(name: string, kind: FieldKind): string {
  return kind === 'zero2' ? 'padding_hex' : snakeName(name);
}

/**
 * The sidecar keys of `fields` the schema does not account for (should be none): a vector that describes a
 * field our table lacks is a schema bug, not something to skip silently.
 */
export function unknownSidecarFields(sc: Sidecar): string[] {
  const t = typeOf(sc);
  const known = new Set<string>(typeInfo(t).fields.map(([n, k]) => sidecarKey(n, k)));
  // The envelope is described under `encrypted`, not under `fields`.
  known.delete('encrypted');
  return Object.keys(sc.fields ?? {}).filter((k) => !known.has(k));
}

/** The unsigned message a valid sidecar describes, in the codec's shape. */
export function unsignedOf(sc: Sidecar): UnsignedMessage {
  const type = typeOf(sc);
  const given = sc.fields ?? {};
  const fields: Record<string, unknown> = {};
  for (const [name, kind] of typeInfo(type).fields) {
    const key = sidecarKey(name, kind);
    const what = `${sc.id} fields.${key}`;
    if (name === 'encrypted' && kind === 'bytes') {
      check(sc.encrypted !== undefined, () => `${sc.id}: no encrypted.envelope_hex`);
      const env = hexBytes(sc.encrypted.envelope_hex, `${sc.id} encrypted.envelope_hex`);
      check(env.length === sc.encrypted.envelope_len, () => `${sc.id}: envelope_len disagrees with the hex`);
      fields[name] = env;
      continue;
    }
    const v = given[key];
    check(v !== undefined, () => `${what}: missing from the sidecar`);
    switch (kind) {
      case 'u8':
        fields[name] = numberOf(v, 0xff, what);
        break;
      case 'u32':
        fields[name] = numberOf(v, 0xffffffff, what);
        break;
      case 'u64':
        fields[name] = u64Of(v, what);
        break;
      case 'bytes':
        fields[name] = bytesOf(v, what);
        break;
      case 'zero2':
        // Not a value: the two padding bytes are always 00 00 (SRUP-WIRE.md §4).
        check(v === '0000', () => `${what}: expected "0000", got ${show(v)}`);
        break;
    }
  }
  return { type, ...headerOf(sc), fields } as UnsignedMessage;
}

/** The signed message a valid sidecar describes. */
export function messageOf(sc: Sidecar): Message {
  check(sc.signature !== undefined, () => `${sc.id}: no signature in the sidecar`);
  const signature = hexBytes(sc.signature.hex, `${sc.id} signature.hex`);
  check(signature.length === sc.signature.len, () => `${sc.id}: signature.len disagrees with its hex`);
  return { ...unsignedOf(sc), signature } as Message;
}

export function codeOf(t: TypeName): number {
  return SCHEMA[t].code;
}
