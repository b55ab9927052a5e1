/**
 * SRUP messages as JSON, in the conventions of the test-vector sidecars (test/data/srup-vectors/README.md):
 *
 *   sequence_id, sender_id, 64-bit fields   {"dec": "…", "hex": "16 lowercase hex digits"}
 *   token, byte-string fields               {"len", "hex", "text"?}   (text only when printable UTF-8)
 *   8- and 32-bit fields                    plain numbers
 *   field names                             snake_case of the schema's names (actionId → action_id)
 *   syndicated_c2_request padding           "padding_hex": "0000"
 *   the envelope of the encrypted types     under a top-level "encrypted", not under "fields"
 *
 * Both directions are driven by the schema table: there is no per-type code here. Output is used by
 * `srup decode`, input by `srup encode`; anything else that shows or reads messages as JSON should use these
 * too. No Node APIs: callers supply hashing and envelope sealing.
 */
import { SrupError } from '../../modules/srup/errors.js';
import {
  SRUP_VERSION,
  TYPE_NAMES,
  isTypeName,
  typeInfo,
  type FieldKind,
  type Message,
  type TypeName,
  type UnsignedMessage,
} from '../../modules/srup/schema.js';
import { U64_MAX, equal, fromHexOrNull, idHex16, toHex, utf8, utf8DecodeOrNull } from '../../modules/srup/bytes.js';
import { DATA_KINDS, decodeData, encodeData, isDataKind, type DataKind } from '../../modules/srup/data.js';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

/** The schema field that holds the encrypted envelope; shown under the top-level "encrypted". */
export const ENVELOPE_FIELD = 'encrypted';
/** The schema field that holds an untyped data payload (data, syndicated_data, syndicated_c2_request). */
export const DATA_FIELD = 'data';

export const SIGNATURE_SCHEME = 'RSASSA-PKCS1-v1_5';
export const SIGNATURE_HASH = 'SHA-256';

/** actionId → action_id */
export function snakeName(name: string): string {
  return name.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase());
}

/** The JSON key of a schema field: its snake_case name, or `<name>_hex` for the fixed padding bytes. */
export function jsonFieldName(name: string, kind: FieldKind): string {
  return kind === 'zero2' ? snakeName(name) + '_hex' : snakeName(name);
}

/** The type-specific JSON field names of a message type, in wire order (the envelope excluded). */
export function jsonFieldNames(type: TypeName): string[] {
  return typeInfo(type)
    .fields.filter(([name]) => name !== ENVELOPE_FIELD)
    .map(([name, kind]) => jsonFieldName(name, kind));
}

export function hasEnvelope(type: TypeName): boolean {
  return typeInfo(type).fields.some(([name]) => name === ENVELOPE_FIELD);
}

// ---------------------------------------------------------------------------------------------------------
// Message → JSON

// Python's str.isprintable(): no "Other" (C*) or "Separator" (Z*) characters, except the ASCII space.
const PRINTABLE = /^(?:[^\p{C}\p{Z}]| )*$/u;

/** The text of `bytes` when they are printable UTF-8, else undefined. */
export function printableText(bytes: Uint8Array): string | undefined {
  const s = utf8DecodeOrNull(bytes);
  return s !== null && PRINTABLE.test(s) ? s : undefined;
}

export function bytesJson(bytes: Uint8Array): JsonObject {
  const out: JsonObject = { len: bytes.length, hex: toHex(bytes) };
  const text = printableText(bytes);
  if (text !== undefined) out.text = text;
  return out;
}

export function idJson(id: bigint): JsonObject {
  return { dec: id.toString(10), hex: idHex16(id) };
}

/** A typed reading of a data payload, as the sidecars' `interpretation`. Throws SrupError('bad_data'). */
export function interpretationJson(kind: DataKind, bytes: Uint8Array): JsonObject {
  if (kind === 'bytes') return { type: kind, hex: toHex(bytes) };
  const value = decodeData(kind, bytes);
  return { type: kind, value: typeof value === 'bigint' ? value.toString(10) : (value as number | string) };
}

export interface FieldsJsonOptions {
  /** Adds `interpretation` to the data payload, read as this kind. */
  dataAs?: DataKind;
}

/** The `fields` object of a message: every type-specific field but the envelope. */
export function fieldsJson(m: UnsignedMessage, opts: FieldsJsonOptions = {}): JsonObject {
  const values = m.fields as Record<string, unknown>;
  const out: JsonObject = {};
  for (const [name, kind] of typeInfo(m.type).fields) {
    if (name === ENVELOPE_FIELD) continue;
    const key = jsonFieldName(name, kind);
    const v = values[name];
    switch (kind) {
      case 'u8':
      case 'u32':
        out[key] = v as number;
        break;
      case 'u64':
        out[key] = idJson(v as bigint);
        break;
      case 'bytes': {
        const b = bytesJson(v as Uint8Array);
        if (name === DATA_FIELD && opts.dataAs) b.interpretation = interpretationJson(opts.dataAs, v as Uint8Array);
        out[key] = b;
        break;
      }
      case 'zero2':
        out[key] = '0000';
        break;
    }
  }
  return out;
}

export interface EnvelopeParts {
  wrappedKeyLen: number;
  iv: Uint8Array;
  ciphertextLen: number;
  plaintextLen: number;
}

/**
 * The visible structure of an envelope (SRUP-WIRE.md §6): wrapped-key length (u32 LE), wrapped key, 16-byte
 * IV, ciphertext length (u32 LE), plaintext length (u32 LE), ciphertext. Null when the bytes do not have
 * exactly that shape. For display only: opening the envelope is crypto/envelope.ts's job.
 */
export function envelopeParts(env: Uint8Array): EnvelopeParts | null {
  if (env.length < 4) return null;
  const view = new DataView(env.buffer, env.byteOffset, env.byteLength);
  const wrappedKeyLen = view.getUint32(0, true);
  const ivAt = 4 + wrappedKeyLen;
  if (env.length < ivAt + 16 + 8) return null;
  const ciphertextLen = view.getUint32(ivAt + 16, true);
  const plaintextLen = view.getUint32(ivAt + 20, true);
  if (env.length !== ivAt + 24 + ciphertextLen) return null;
  return { wrappedKeyLen, iv: env.slice(ivAt, ivAt + 16), ciphertextLen, plaintextLen };
}

/**
 * The `encrypted` object. `plaintext` is undefined when the envelope was not opened, null when there was
 * nothing to open (an empty envelope), else the opened plaintext.
 */
export function envelopeJson(env: Uint8Array, plaintext?: Uint8Array | null): JsonObject {
  const out: JsonObject = { envelope_hex: toHex(env), envelope_len: env.length };
  const parts = envelopeParts(env);
  if (parts) {
    out.wrapped_key_len = parts.wrappedKeyLen;
    out.iv_hex = toHex(parts.iv);
    out.ciphertext_len = parts.ciphertextLen;
    out.plaintext_len = parts.plaintextLen;
  }
  if (plaintext === null) {
    out.plaintext_hex = null;
    out.plaintext = null;
  } else if (plaintext !== undefined) {
    out.plaintext_hex = toHex(plaintext);
    out.plaintext = bytesJson(plaintext);
  }
  return out;
}

export interface MessageJsonOptions extends FieldsJsonOptions {
  /** SHA-256 of the whole message, shown as `sha256` when given. */
  sha256?: Uint8Array;
  /** The exact bytes the signature covers. */
  signedBytes?: Uint8Array;
  /** The opened envelope (see envelopeJson). */
  plaintext?: Uint8Array | null;
  /** Shown as `verified` when given. */
  verified?: boolean;
}

/** A decoded message as one sidecar-style JSON object. `bytes` is the message as received. */
export function messageJson(bytes: Uint8Array, m: Message, opts: MessageJsonOptions = {}): JsonObject {
  const info = typeInfo(m.type);
  const out: JsonObject = {
    type: m.type,
    type_code: info.code,
    type_code_hex: '0x' + info.code.toString(16).padStart(2, '0'),
    version: bytes[0],
    length: bytes.length,
  };
  if (opts.sha256) out.sha256 = toHex(opts.sha256);
  out.sequence_id = idJson(m.sequenceId);
  out.sender_id = idJson(m.senderId);
  out.token = bytesJson(m.token);
  out.fields = fieldsJson(m, opts);
  out.signature = { scheme: SIGNATURE_SCHEME, hash: SIGNATURE_HASH, len: m.signature.length, hex: toHex(m.signature) };
  if (opts.signedBytes) out.signed_bytes_hex = toHex(opts.signedBytes);
  const env = (m.fields as Record<string, unknown>)[ENVELOPE_FIELD];
  if (env instanceof Uint8Array) out.encrypted = envelopeJson(env, opts.plaintext);
  if (opts.verified !== undefined) out.verified = opts.verified;
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// JSON → message

/** Seals `plaintext` to the public key in the PEM file `recipientKey`; supplied by the caller. */
export type SealFn = (plaintext: Uint8Array, recipientKey: string, path: string) => Uint8Array;

export interface ParseOptions {
  /** The message type, when not given (or to check the one given) in the JSON's `type`. */
  type?: string;
  /** Needed only to seal an envelope from `encrypted.plaintext_*` + `recipient_key`. */
  seal?: SealFn;
}

/** A message description (the CLI's JSON form) that does not fit the schema; `reason` 'bad_json'. */
export class JsonFormError extends Error {
  readonly reason = 'bad_json';
  constructor(message: string) {
    super(message);
    this.name = 'JsonFormError';
  }
}

function fail(path: string, msg: string): never {
  throw new JsonFormError(`${path}: ${msg}`);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v);
  if (typeof v === 'bigint') return v.toString();
  if (Array.isArray(v)) return 'an array';
  if (v === null) return 'null';
  if (typeof v === 'object') return 'an object';
  return String(v);
}

function checkKeys(obj: Record<string, unknown>, allowed: readonly string[], path: string): void {
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) fail(path ? `${path}.${k}` : k, `unknown member (expected one of: ${allowed.join(', ')})`);
  }
}

/** An unsigned integer from a number, a decimal string or a 0x-hex string. */
function parseUint(v: unknown, max: bigint, path: string): bigint {
  let n: bigint | null = null;
  if (typeof v === 'bigint') n = v;
  else if (typeof v === 'number' && Number.isSafeInteger(v)) n = BigInt(v);
  else if (typeof v === 'string') {
    if (/^[0-9]+$/.test(v)) n = BigInt(v);
    else if (/^0[xX][0-9a-fA-F]+$/.test(v)) n = BigInt(v);
  }
  if (n === null) fail(path, `expected an unsigned integer (number, decimal string or 0x-hex string), got ${describe(v)}`);
  if (n < 0n || n > max) fail(path, `${n} is out of range (0 to ${max})`);
  return n;
}

/** A 64-bit id: anything parseUint takes, or the sidecar form {"dec", "hex"} (either or both; they must agree). */
export function parseU64(v: unknown, path: string): bigint {
  if (!isObject(v)) return parseUint(v, U64_MAX, path);
  checkKeys(v, ['dec', 'hex'], path);
  let fromDec: bigint | undefined;
  let fromHex: bigint | undefined;
  if (v.dec !== undefined) {
    if (typeof v.dec !== 'string' || !/^[0-9]+$/.test(v.dec)) fail(`${path}.dec`, `expected a decimal string, got ${describe(v.dec)}`);
    fromDec = parseUint(v.dec, U64_MAX, `${path}.dec`);
  }
  if (v.hex !== undefined) {
    if (typeof v.hex !== 'string' || !/^(0[xX])?[0-9a-fA-F]{1,16}$/.test(v.hex)) {
      fail(`${path}.hex`, `expected 1 to 16 hex digits, got ${describe(v.hex)}`);
    }
    fromHex = BigInt(v.hex.startsWith('0x') || v.hex.startsWith('0X') ? v.hex : '0x' + v.hex);
  }
  if (fromDec === undefined && fromHex === undefined) fail(path, 'give "dec" or "hex"');
  if (fromDec !== undefined && fromHex !== undefined && fromDec !== fromHex) {
    fail(path, `"dec" (${fromDec}) and "hex" (0x${fromHex.toString(16)}) disagree`);
  }
  return (fromHex ?? fromDec) as bigint;
}

function parseHex(v: unknown, path: string): Uint8Array {
  const b = typeof v === 'string' ? fromHexOrNull(v.startsWith('0x') ? v.slice(2) : v) : null;
  if (b === null) fail(path, `expected an even number of hex digits, got ${describe(v)}`);
  return b;
}

function parseInterpretation(v: unknown, path: string): Uint8Array {
  if (!isObject(v)) fail(path, `expected {"type": …, "value": …}, got ${describe(v)}`);
  checkKeys(v, ['type', 'value', 'hex'], path);
  const kind = v.type;
  if (typeof kind !== 'string' || !isDataKind(kind)) {
    fail(`${path}.type`, `expected one of ${DATA_KINDS.join(', ')}, got ${describe(kind)}`);
  }
  if (kind === 'bytes') return parseHex(v.hex ?? v.value, `${path}.${v.hex !== undefined ? 'hex' : 'value'}`);
  const value = v.value;
  const at = `${path}.value`;
  try {
    if (kind === 'uint64' || kind === 'int64') {
      if (!(typeof value === 'string' && /^-?[0-9]+$/.test(value)) && !(typeof value === 'number' && Number.isSafeInteger(value))) {
        fail(at, `expected a decimal string for ${kind}, got ${describe(value)}`);
      }
      return encodeData(kind, BigInt(value));
    }
    if (kind === 'string') {
      if (typeof value !== 'string') fail(at, `expected a string, got ${describe(value)}`);
      return encodeData(kind, value);
    }
    if (typeof value !== 'number') fail(at, `expected a number for ${kind}, got ${describe(value)}`);
    return encodeData(kind, value);
  } catch (e) {
    if (e instanceof SrupError && e.reason === 'bad_data') fail(at, e.message);
    throw e;
  }
}

/**
 * A byte string: a plain string (its UTF-8), or {"hex"} / {"text"} / (data payloads) {"interpretation"} or
 * {"type", "value"}. With "hex", that is the value and "len"/"text", when also given, must agree with it
 * ("interpretation" is then only descriptive, as in the sidecars).
 */
export function parseBytes(v: unknown, path: string, allowTyped = false): Uint8Array {
  if (typeof v === 'string') return utf8(v);
  if (!isObject(v)) fail(path, `expected {"hex": …} or {"text": …}, got ${describe(v)}`);
  if (allowTyped && v.type !== undefined && v.hex === undefined && v.text === undefined) {
    return parseInterpretation(v, path);
  }
  checkKeys(v, allowTyped ? ['len', 'hex', 'text', 'interpretation'] : ['len', 'hex', 'text'], path);
  let out: Uint8Array | undefined;
  if (v.hex !== undefined) out = parseHex(v.hex, `${path}.hex`);
  if (v.text !== undefined) {
    if (typeof v.text !== 'string') fail(`${path}.text`, `expected a string, got ${describe(v.text)}`);
    const t = utf8(v.text);
    if (out && !equal(out, t)) fail(path, '"text" and "hex" disagree');
    out ??= t;
  }
  if (out === undefined && v.interpretation !== undefined) out = parseInterpretation(v.interpretation, `${path}.interpretation`);
  if (out === undefined) fail(path, allowTyped ? 'give "hex", "text" or "interpretation"' : 'give "hex" or "text"');
  if (v.len !== undefined && v.len !== out.length) fail(`${path}.len`, `is ${describe(v.len)} but the value has ${out.length} bytes`);
  if (out.length > 0xffff) fail(path, `${out.length} bytes; at most 65535 fit`);
  return out;
}

const ENCRYPTED_KEYS = ['envelope_hex', 'envelope_len', 'plaintext_hex', 'plaintext_text', 'plaintext', 'recipient_key'];
// Descriptive members of the sidecars' and `srup decode`'s "encrypted", accepted and ignored.
const ENCRYPTED_INFO = ['wrapped_key_len', 'iv_hex', 'ciphertext_len', 'plaintext_len', 'recipient_private_key_file', 'recipient_public_key_file'];

function parseEnvelope(v: unknown, path: string, seal: SealFn | undefined): Uint8Array {
  if (!isObject(v)) fail(path, `expected an object, got ${describe(v)}`);
  checkKeys(v, [...ENCRYPTED_KEYS, ...ENCRYPTED_INFO], path);
  if (v.envelope_hex !== undefined) {
    const env = parseHex(v.envelope_hex, `${path}.envelope_hex`);
    if (v.envelope_len !== undefined && v.envelope_len !== env.length) {
      fail(`${path}.envelope_len`, `is ${describe(v.envelope_len)} but envelope_hex has ${env.length} bytes`);
    }
    if (v.recipient_key !== undefined) fail(path, 'give either "envelope_hex" or a plaintext with "recipient_key", not both');
    return env;
  }
  let plaintext: Uint8Array;
  if (v.plaintext_hex !== undefined) plaintext = parseHex(v.plaintext_hex, `${path}.plaintext_hex`);
  else if (v.plaintext_text !== undefined) {
    if (typeof v.plaintext_text !== 'string') fail(`${path}.plaintext_text`, `expected a string, got ${describe(v.plaintext_text)}`);
    plaintext = utf8(v.plaintext_text);
  } else if (v.plaintext !== undefined && v.plaintext !== null) plaintext = parseBytes(v.plaintext, `${path}.plaintext`);
  else fail(path, 'give "envelope_hex", or "plaintext_text"/"plaintext_hex" with "recipient_key"');
  if (typeof v.recipient_key !== 'string' || v.recipient_key === '') {
    fail(`${path}.recipient_key`, 'the recipient public key (PEM file) is needed to seal the plaintext');
  }
  if (!seal) fail(path, 'sealing an envelope is not available here');
  return seal(plaintext, v.recipient_key, `${path}.recipient_key`);
}

const TOP_KEYS = ['type', 'version', 'sequence_id', 'sender_id', 'token', 'fields', 'encrypted'];
// Members of a sidecar or of `srup decode` output that describe rather than define the message: ignored.
const TOP_INFO = [
  'id', 'file', 'expect', 'description', 'type_code', 'type_code_hex', 'length', 'sha256', 'signature',
  'signed_bytes_hex', 'public_key_file', 'public_key_pem', 'private_key_file', 'reference_result', 'notes',
  'verified',
];

/**
 * Builds an unsigned message from its JSON description (sidecar conventions; see the module comment).
 * Throws JsonFormError (reason 'bad_json') whose message starts with the path of the offending member.
 */
export function parseMessageJson(input: unknown, opts: ParseOptions = {}): UnsignedMessage {
  if (!isObject(input)) fail('(top level)', `expected an object, got ${describe(input)}`);
  checkKeys(input, [...TOP_KEYS, ...TOP_INFO], '');
  const typeName = opts.type ?? input.type;
  if (typeof typeName !== 'string' || !isTypeName(typeName)) {
    fail('type', `unknown message type ${describe(typeName)} (known: ${TYPE_NAMES.join(', ')})`);
  }
  if (input.type !== undefined && input.type !== typeName) {
    fail('type', `the JSON says ${describe(input.type)} but the message type is "${typeName}"`);
  }
  if (input.version !== undefined && input.version !== SRUP_VERSION) fail('version', `only version ${SRUP_VERSION} can be encoded`);
  if (input.sequence_id === undefined) fail('sequence_id', 'missing');
  if (input.sender_id === undefined) fail('sender_id', 'missing');
  if (input.token === undefined) fail('token', 'missing');
  const sequenceId = parseU64(input.sequence_id, 'sequence_id');
  const senderId = parseU64(input.sender_id, 'sender_id');
  const token = parseBytes(input.token, 'token');

  const given = input.fields ?? {};
  if (!isObject(given)) fail('fields', `expected an object, got ${describe(given)}`);
  const names = jsonFieldNames(typeName);
  for (const k of Object.keys(given)) {
    if (!names.includes(k)) {
      fail(`fields.${k}`, names.length ? `not a field of ${typeName} (its fields: ${names.join(', ')})` : `${typeName} has no fields`);
    }
  }
  const fields: Record<string, unknown> = {};
  for (const [name, kind] of typeInfo(typeName).fields) {
    if (name === ENVELOPE_FIELD) {
      if (input.encrypted === undefined) fail('encrypted', `missing: ${typeName} carries an encrypted envelope`);
      fields[name] = parseEnvelope(input.encrypted, 'encrypted', opts.seal);
      continue;
    }
    const key = jsonFieldName(name, kind);
    const path = `fields.${key}`;
    const v = given[key];
    if (kind === 'zero2') {
      if (v !== undefined && v !== '0000') fail(path, 'the padding is always "0000"');
      continue;
    }
    if (v === undefined) fail(path, 'missing');
    switch (kind) {
      case 'u8':
        fields[name] = Number(parseUint(v, 0xffn, path));
        break;
      case 'u32':
        fields[name] = Number(parseUint(v, 0xffffffffn, path));
        break;
      case 'u64':
        fields[name] = parseU64(v, path);
        break;
      case 'bytes':
        fields[name] = parseBytes(v, path, name === DATA_FIELD);
        break;
    }
  }
  if (input.encrypted !== undefined && !hasEnvelope(typeName)) fail('encrypted', `${typeName} carries no encrypted envelope`);
  return { type: typeName, sequenceId, senderId, token, fields } as UnsignedMessage;
}
