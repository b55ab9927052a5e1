/**
 * Conformance of the codec and signatures against the reference vectors:
 *   (a) every valid vector decodes to exactly its sidecar values and verifies; header-only vectors are
 *       generic headers that decode() refuses;
 *   (b) re-encoding the sidecar values and re-signing reproduces every .bin byte for byte;
 *   (c) every must-reject vector is rejected, each for the one reason written down below;
 *   (d) every envelope opens with the recipient key to the sidecar plaintext.
 */
import { openEnvelope } from '../../crypto/envelope.js';
import { CryptoError } from '../../crypto/types.js';
import type { Crypto, RsaPrivateKey, RsaPublicKey } from '../../crypto/types.js';
import { concat, toHex } from '../../modules/srup/bytes.js';
import {
  decode,
  decodeGeneric,
  encode,
  encodeGeneric,
  peekHeader,
  signedBytes,
  tryDecode,
} from '../../modules/srup/codec.js';
import { SrupError, SrupErrorReason } from '../../modules/srup/errors.js';
import {
  GENERIC_CODE,
  Message,
  SCHEMA,
  SRUP_VERSION,
  TYPE_NAMES,
  TypeName,
  UnsignedMessage,
} from '../../modules/srup/schema.js';
import { sign, verify } from '../../modules/srup/session.js';
import { Case, bytesEqual, check, deepEqual, equal, fail, show, throwsReason } from './harness.js';
import { KeyRing, keyRing } from './keyring.js';
import {
  Vector,
  VectorSet,
  codeOf,
  headerOf,
  hexBytes,
  messageOf,
  textBytes,
  typeOf,
  unknownSidecarFields,
  unsignedOf,
} from './vectors.js';

/** sign() for a message whose type is only known at run time. */
export function signMessage(crypto: Crypto, key: RsaPrivateKey, m: UnsignedMessage): Message {
  return sign<TypeName>(crypto, key, m as never) as unknown as Message;
}

/** What a receiver concludes about a payload: accepted, or the reason it is rejected. */
export type Outcome = 'accepted' | SrupErrorReason;

/** Decode strictly, then verify with the sender's key: the order a receiver must follow. */
export function receive(crypto: Crypto, key: RsaPublicKey, bytes: Uint8Array): Outcome {
  const r = tryDecode(bytes);
  if (!r.ok) return r.error.reason;
  return verify(crypto, key, r.message) ? 'accepted' : 'bad_signature';
}

interface Rejection {
  readonly outcome: SrupErrorReason;
  /** Why this is the right outcome for this vector. */
  readonly why: string;
  /** Further checks that the rejection is for this reason and no other. */
  readonly also?: (ctx: RejectContext) => void;
}

interface RejectContext {
  readonly v: Vector;
  readonly set: VectorSet;
  readonly crypto: Crypto;
  readonly keys: KeyRing;
  readonly key: RsaPublicKey;
}

function sourceOf(ctx: RejectContext): Vector {
  const from = ctx.v.sidecar.derived_from;
  const src = ctx.set.vectors.find((x) => x.id === from);
  if (src === undefined) fail(`${ctx.v.id}: derived_from ${show(from)} is not in the set`);
  return src;
}

/**
 * The precise outcome for each must-reject vector of the public set. Where the reference itself accepts the
 * message (07, 09, 13), `also` shows that the strict check is the only thing standing in the way.
 */
export const EXPECTED_REJECTIONS: Readonly<Record<string, Rejection>> = {
  'invalid-01': {
    outcome: 'bad_signature',
    why: 'well-formed action; one bit of the signature flipped',
  },
  'invalid-02': {
    outcome: 'bad_signature',
    why: 'well-formed join_command; last byte of device_id changed after signing',
    also: (ctx) => {
      const m = decode(ctx.v.bytes);
      const src = decode(sourceOf(ctx).bytes);
      equal(m.type, 'join_command', 'type');
      bytesEqual(m.signature, src.signature, 'the signature (the original one)');
    },
  },
  'invalid-03': {
    outcome: 'bad_signature',
    why: 'well-formed activate; sequence ID changed after signing',
  },
  'invalid-04': {
    outcome: 'length_exceeds_input',
    why: 'data message with its last byte removed: data declares 2 bytes, 1 remains',
    also: (ctx) => {
      const src = sourceOf(ctx).bytes;
      const what = `${ctx.v.id} = ${ctx.v.sidecar.derived_from} minus its last byte`;
      bytesEqual(ctx.v.bytes, src.subarray(0, src.length - 1), what);
    },
  },
  'invalid-05': {
    outcome: 'length_exceeds_input',
    why: 'cut inside the signature: signature declares 256 bytes, fewer remain',
  },
  'invalid-06': { outcome: 'empty', why: 'zero-length payload' },
  'invalid-07': {
    outcome: 'bad_version',
    why: 'version byte 0x04, validly signed over these bytes: only the version check rejects it',
    also: (ctx) => {
      // As a 0x05 message it decodes, and its signature covers the bytes as received (version 0x04).
      const as5 = ctx.v.bytes.slice();
      as5[0] = SRUP_VERSION;
      const m = decode(as5);
      const signed = signedBytes(m);
      signed[0] = 0x04;
      check(ctx.crypto.verify(ctx.key, signed, m.signature), 'the signature verifies over the version-0x04 bytes');
    },
  },
  'invalid-08': {
    outcome: 'length_exceeds_input',
    why: 'token length field 0xFFF0, far beyond the payload',
  },
  'invalid-09': {
    outcome: 'trailing_bytes',
    why: 'a correctly signed action followed by de ad be',
    also: (ctx) => {
      const src = sourceOf(ctx).bytes;
      bytesEqual(ctx.v.bytes, concat(src, Uint8Array.of(0xde, 0xad, 0xbe)), `${ctx.v.id} = source + deadbe`);
      equal(receive(ctx.crypto, ctx.key, src), 'accepted', 'the message without the trailing bytes');
    },
  },
  'invalid-10': {
    outcome: 'bad_signature',
    why: 'well-formed action signed by signer-2 instead of signer-1',
    also: (ctx) => {
      const other = ctx.keys.publicKey('keys/signer-2.public.pem');
      equal(receive(ctx.crypto, other, ctx.v.bytes), 'accepted', 'checked against signer-2 instead');
    },
  },
  'invalid-11': {
    outcome: 'bad_signature',
    why: 'activate relabelled terminate_command (same layout): decodes, the type byte is signed',
    also: (ctx) => equal(decode(ctx.v.bytes).type, 'terminate_command', 'decoded type'),
  },
  'invalid-12': { outcome: 'empty_signature', why: 'signature length 0 and no signature bytes' },
  'invalid-13': {
    outcome: 'bad_padding',
    why: 'syndicated_c2_request without its two 00 padding bytes',
    also: (ctx) => {
      const src = sourceOf(ctx).bytes;
      bytesEqual(concat(ctx.v.bytes, Uint8Array.of(0, 0)), src, `${ctx.v.id} + 0000 = its source`);
      equal(receive(ctx.crypto, ctx.key, src), 'accepted', 'the message with its padding');
    },
  },
};

function validCases(v: Vector, set: VectorSet, crypto: Crypto, keys: KeyRing): Case[] {
  const sc = v.sidecar;
  const cases: Case[] = [
    {
      name: `${v.id}: decodes to exactly its sidecar values and verifies`,
      run() {
        const type = typeOf(sc);
        equal(v.bytes.length, sc.length, 'length of the .bin');
        equal(toHex(crypto.sha256(v.bytes)), sc.sha256, 'SHA-256 of the .bin');
        equal(sc.version, SRUP_VERSION, 'sidecar version');
        equal(sc.type_code, codeOf(type), `type_code of ${type}`);
        deepEqual(unknownSidecarFields(sc), [], 'sidecar fields the schema does not know');

        const m = decode(v.bytes);
        deepEqual(m, messageOf(sc), 'decoded');
        if (sc.token?.text !== undefined) bytesEqual(m.token, textBytes(sc.token.text), 'token (as its text)');

        const h = peekHeader(v.bytes);
        deepEqual(h, { ...headerOf(sc), code: codeOf(type) }, 'peekHeader');

        bytesEqual(signedBytes(m), hexBytes(sc.signed_bytes_hex ?? '', 'signed_bytes_hex'), 'signed bytes');
        const key = keys.publicKey(sc.public_key_file);
        if (sc.public_key_pem !== undefined) equal(sc.public_key_pem, set.pem(sc.public_key_file), 'public_key_pem');
        check(verify(crypto, key, m), `the signature does not verify with ${sc.public_key_file}`);
        equal(receive(crypto, key, v.bytes), 'accepted', 'receiver outcome');
      },
    },
    {
      name: `${v.id}: re-encoding and re-signing reproduces the .bin byte for byte`,
      run() {
        check(sc.private_key_file !== undefined, 'no private_key_file');
        const unsigned = unsignedOf(sc);
        const expected = hexBytes(sc.signed_bytes_hex ?? '', 'signed_bytes_hex');
        bytesEqual(signedBytes(unsigned), expected, 'signed bytes of the sidecar values');
        const signed = signMessage(crypto, keys.privateKey(sc.private_key_file), unsigned);
        bytesEqual(signed.signature, hexBytes(sc.signature?.hex ?? '', 'signature.hex'), 'signature');
        bytesEqual(encode(signed), v.bytes, 'encoded message');
      },
    },
  ];
  const enc = sc.encrypted;
  if (enc !== undefined) {
    cases.push({
      name:
        enc.envelope_len === 0
          ? `${v.id}: the empty envelope is carried as-is and does not open`
          : `${v.id}: the envelope opens with the recipient key to the sidecar plaintext`,
      run() {
        const env = hexBytes(enc.envelope_hex, 'envelope_hex');
        equal(env.length, enc.envelope_len, 'envelope_len');
        const m = decode(v.bytes);
        bytesEqual((m.fields as { encrypted: Uint8Array }).encrypted, env, 'decoded envelope');
        if (enc.envelope_len === 0) {
          equal(enc.plaintext, null, 'plaintext of an empty envelope');
          check(enc.recipient_private_key_file === undefined, 'an empty envelope names no recipient');
          const anyKey = keys.privateKey('keys/recipient-1.private.pem');
          throwsReason(() => openEnvelope(crypto, anyKey, env), CryptoError, 'bad_envelope', 'opening it');
          return;
        }
        check(enc.recipient_private_key_file !== undefined, 'no recipient_private_key_file');
        check(enc.plaintext !== null, 'no plaintext');
        // The layout the sidecar spells out (SRUP-WIRE.md §6, integers little-endian).
        const dv = new DataView(env.buffer, env.byteOffset, env.byteLength);
        const k = dv.getUint32(0, true);
        equal(k, enc.wrapped_key_len, 'wrapped key length');
        equal(toHex(env.subarray(4 + k, 20 + k)), enc.iv_hex, 'IV');
        equal(dv.getUint32(20 + k, true), enc.ciphertext_len, 'ciphertext length');
        equal(dv.getUint32(24 + k, true), enc.plaintext_len, 'plaintext length');
        const key = keys.privateKey(enc.recipient_private_key_file);
        const pt = openEnvelope(crypto, key, env);
        equal(toHex(pt), enc.plaintext.hex, 'plaintext');
        equal(pt.length, enc.plaintext_len, 'plaintext_len');
        // An envelope one byte short must not open.
        const damaged = env.slice(0, env.length - 1);
        throwsReason(() => openEnvelope(crypto, key, damaged), CryptoError, 'bad_envelope', 'a truncated envelope');
      },
    });
  }
  return cases;
}

function headerOnlyCase(v: Vector): Case {
  const sc = v.sidecar;
  return {
    name: `${v.id}: decodes as a generic header only; decode() refuses it (header_only)`,
    run() {
      equal(sc.type, 'generic', 'sidecar type');
      equal(sc.type_code, GENERIC_CODE, 'sidecar type_code');
      equal(v.bytes.length, sc.length, 'length of the .bin');
      deepEqual(Object.keys(sc.fields ?? {}), [], 'sidecar fields');
      const h = decodeGeneric(v.bytes);
      deepEqual(h, headerOf(sc), 'decodeGeneric');
      deepEqual(peekHeader(v.bytes), { ...headerOf(sc), code: GENERIC_CODE }, 'peekHeader');
      bytesEqual(encodeGeneric(h), v.bytes, 'encodeGeneric');
      throwsReason(() => decode(v.bytes), SrupError, 'header_only', 'decode');
    },
  };
}

function rejectCase(v: Vector, set: VectorSet, crypto: Crypto, keys: KeyRing): Case {
  const expected = EXPECTED_REJECTIONS[v.id];
  return {
    name: `${v.id}: rejected with ${expected ? expected.outcome : '(no expected outcome written down)'}`,
    run() {
      check(expected !== undefined, `${v.id} (${v.sidecar.description}) has no entry in EXPECTED_REJECTIONS`);
      check(v.sidecar.must_reject === true, 'sidecar must_reject');
      equal(v.bytes.length, v.sidecar.length, 'length of the .bin');
      const key = keys.publicKey(v.sidecar.public_key_file);
      const got = receive(crypto, key, v.bytes);
      check(
        got === expected.outcome,
        () =>
          `${v.id} (${v.sidecar.description}): expected ${expected.outcome} (${expected.why}), got ${got}` +
          (got === 'accepted' ? ' - the message was ACCEPTED' : ''),
      );
      if (expected.outcome !== 'bad_signature') {
        throwsReason(() => decode(v.bytes), SrupError, expected.outcome, 'decode');
      }
      if (expected.also) expected.also({ v, set, crypto, keys, key });
    },
  };
}

function setCases(set: VectorSet, crypto: Crypto): Case[] {
  return [
    {
      name: 'vector set: every .bin has the length and SHA-256 its sidecar gives',
      run() {
        for (const v of set.vectors) {
          equal(v.bytes.length, v.sidecar.length, `${v.id} length`);
          equal(toHex(crypto.sha256(v.bytes)), v.sidecar.sha256, `${v.id} SHA-256`);
        }
      },
    },
    {
      name: 'vector set: index, sidecars and .bin files agree',
      run() {
        equal(set.index.count, set.index.vectors.length, 'index count');
        equal(set.vectors.length, set.index.count, 'vectors loaded');
        const ids = new Set<string>();
        for (const v of set.vectors) {
          check(!ids.has(v.id), `duplicate id ${v.id}`);
          ids.add(v.id);
          equal(v.sidecar.id, v.id, `${v.id} sidecar id`);
          equal(v.sidecar.expect, v.expect, `${v.id} sidecar expect`);
          equal(v.sidecar.file, `vectors/${v.id}.bin`, `${v.id} sidecar file`);
          if (v.expect !== 'invalid') equal(v.sidecar.type, v.type, `${v.id} sidecar type`);
        }
      },
    },
    {
      name: 'vector set: every message type has a valid vector, and generic a header-only one',
      run() {
        for (const t of TYPE_NAMES) {
          check(
            set.vectors.some((v) => v.expect === 'valid' && v.type === t),
            `no valid vector of type ${t} (0x${SCHEMA[t].code.toString(16)})`,
          );
        }
        check(set.vectors.some((v) => v.expect === 'header-only'), 'no header-only vector');
      },
    },
    {
      name: 'vector set: every must-reject vector has an expected outcome, and every outcome a vector',
      run() {
        const invalid = set.vectors.filter((v) => v.expect === 'invalid').map((v) => v.id);
        for (const id of invalid) check(EXPECTED_REJECTIONS[id] !== undefined, `no expected outcome for ${id}`);
        for (const id of Object.keys(EXPECTED_REJECTIONS)) {
          check(invalid.includes(id), `EXPECTED_REJECTIONS names ${id}, which is not an invalid vector here`);
        }
      },
    },
  ];
}

/** Every codec conformance case for this vector set, with this crypto implementation. */
export function codecCases(set: VectorSet, crypto: Crypto): Case[] {
  const keys = keyRing(set);
  const cases = setCases(set, crypto);
  for (const v of set.vectors) {
    if (v.expect === 'valid') cases.push(...validCases(v, set, crypto, keys));
    else if (v.expect === 'header-only') cases.push(headerOnlyCase(v));
    else cases.push(rejectCase(v, set, crypto, keys));
  }
  return cases;
}
