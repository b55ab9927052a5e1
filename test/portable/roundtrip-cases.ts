/**
 * Randomized codec properties with a seeded generator (no fast-check, so they run on XS too): for every
 * message type in the schema table, random messages round-trip, signed bytes are the encoding minus the
 * signature field, and damaged encodings are refused with a SrupError - never any other exception.
 */
import { U64_MAX, toHex } from '../../modules/srup/bytes.js';
import { decode, decodeGeneric, encode, encodeGeneric, peekHeader, signedBytes } from '../../modules/srup/codec.js';
import { SrupError, SrupErrorReason } from '../../modules/srup/errors.js';
import { Header, Message, TYPE_NAMES, TypeName, typeInfo } from '../../modules/srup/schema.js';
import { Case, bytesEqual, check, deepEqual, describeError } from './harness.js';
import { Prng } from './prng.js';

/** Every reason decode() may give for malformed input. */
export const DECODE_REASONS: readonly SrupErrorReason[] = [
  'empty',
  'truncated',
  'length_exceeds_input',
  'bad_version',
  'unknown_type',
  'header_only',
  'empty_signature',
  'bad_padding',
  'trailing_bytes',
];

const SPECIAL_U64 = [0n, 1n, 0xffn, 1n << 63n, U64_MAX - 1n, U64_MAX];

function randomU64(rng: Prng): bigint {
  return rng.int(0, 3) === 0 ? rng.pick(SPECIAL_U64) : rng.u64();
}

function randomBytes(rng: Prng, max: number): Uint8Array {
  const r = rng.int(0, 7);
  if (r === 0) return new Uint8Array(0);
  if (r === 1) return rng.bytes(max);
  return rng.bytes(rng.int(0, r < 5 ? 40 : max));
}

function randomHeader(rng: Prng): Header {
  return { sequenceId: randomU64(rng), senderId: randomU64(rng), token: randomBytes(rng, 300) };
}

/** A random signed message of type t: ids with 0 and 2^64-1, byte fields 0..300, signatures 1..512 bytes. */
export function randomMessage(rng: Prng, t: TypeName): Message {
  const fields: Record<string, unknown> = {};
  for (const [name, kind] of typeInfo(t).fields) {
    switch (kind) {
      case 'u8':
        fields[name] = rng.int(0, 2) === 0 ? rng.pick([0, 255]) : rng.int(0, 255);
        break;
      case 'u32':
        fields[name] = rng.int(0, 2) === 0 ? rng.pick([0, 0xffffffff]) : rng.next32();
        break;
      case 'u64':
        fields[name] = randomU64(rng);
        break;
      case 'bytes':
        fields[name] = randomBytes(rng, 300);
        break;
      case 'zero2':
        break;
    }
  }
  const sigLen = rng.int(0, 3) === 0 ? rng.pick([1, 256, 512]) : rng.int(1, 512);
  return { type: t, ...randomHeader(rng), fields, signature: rng.bytes(sigLen) } as Message;
}

/** The encoding with its signature length and signature cut out (SRUP-WIRE.md §4). */
export function withoutSignature(bytes: Uint8Array): Uint8Array {
  const t = (bytes[18] << 8) | bytes[19];
  const s = (bytes[20 + t] << 8) | bytes[21 + t];
  const out = new Uint8Array(bytes.length - 2 - s);
  out.set(bytes.subarray(0, 20 + t), 0);
  out.set(bytes.subarray(22 + t + s), 20 + t);
  return out;
}

/**
 * decode() on arbitrary input either succeeds - and then re-encoding gives the input back exactly, the
 * encoding being canonical - or throws a SrupError with one of DECODE_REASONS. Returns the reason or 'ok'.
 */
export function checkDecodeIsTotal(bytes: Uint8Array, what: string): SrupErrorReason | 'ok' {
  let m: Message;
  try {
    m = decode(bytes);
  } catch (e) {
    check(e instanceof SrupError, () => `${what}: decode threw ${describeError(e)} for <${toHex(bytes)}>`);
    check(DECODE_REASONS.includes(e.reason), () => `${what}: unexpected reason ${e.reason}`);
    return e.reason;
  }
  bytesEqual(encode(m), bytes, `${what}: re-encoding what decoded`);
  return 'ok';
}

/** The positions of every 2-byte length prefix in a valid encoding: token, signature, then byte fields. */
export function lengthFieldOffsets(m: Message): number[] {
  const out = [18, 20 + m.token.length];
  let p = 22 + m.token.length + m.signature.length;
  const fields = m.fields as Record<string, unknown>;
  for (const [name, kind] of typeInfo(m.type).fields) {
    if (kind === 'u8') p += 1;
    else if (kind === 'u32') p += 4;
    else if (kind === 'u64') p += 8;
    else if (kind === 'zero2') p += 2;
    else {
      out.push(p);
      p += 2 + (fields[name] as Uint8Array).length;
    }
  }
  return out;
}

export function roundTripCases(seed: number, perType: number): Case[] {
  const cases: Case[] = [];
  for (const t of TYPE_NAMES) {
    cases.push({
      name: `random ${t}: decode(encode(m)) equals m; signed bytes are the encoding minus the signature (seed ${seed})`,
      run() {
        const rng = new Prng(seed ^ typeInfo(t).code);
        for (let i = 0; i < perType; i++) {
          const m = randomMessage(rng, t);
          const bytes = encode(m);
          deepEqual(decode(bytes), m, `${t} #${i}`);
          bytesEqual(signedBytes(m), withoutSignature(bytes), `${t} #${i} signed bytes`);
          const header = { sequenceId: m.sequenceId, senderId: m.senderId, token: m.token };
          deepEqual(peekHeader(bytes), { ...header, code: typeInfo(t).code }, `${t} #${i} header`);
        }
      },
    });
    cases.push({
      name:
        `damaged ${t}: truncated, extended, bit-flipped and length-edited encodings decode canonically or ` +
        `throw SrupError (seed ${seed})`,
      run() {
        const rng = new Prng((seed * 31) ^ typeInfo(t).code);
        for (let i = 0; i < Math.max(1, perType >> 3); i++) {
          const m = randomMessage(rng, t);
          const bytes = encode(m);
          // Every strict prefix is refused.
          for (let n = 0; n < bytes.length; n += n < 64 ? 1 : rng.int(1, 16)) {
            const r = checkDecodeIsTotal(bytes.subarray(0, n), `${t} #${i} cut to ${n}`);
            check(r !== 'ok', () => `${t} #${i} cut to ${n} bytes decoded`);
            if (n === 0) check(r === 'empty', `${t} #${i}: no bytes gave ${r}`);
          }
          // Anything appended is refused as trailing bytes.
          const extended = new Uint8Array(bytes.length + rng.int(1, 4));
          extended.set(bytes);
          const r = checkDecodeIsTotal(extended, `${t} #${i} extended`);
          check(r === 'trailing_bytes', () => `${t} #${i} extended gave ${r}`);
          // Single bit flips anywhere.
          for (let k = 0; k < 24; k++) {
            const c = bytes.slice();
            c[rng.int(0, c.length - 1)] ^= 1 << rng.int(0, 7);
            checkDecodeIsTotal(c, `${t} #${i} bit flip`);
          }
          // Edits of every length prefix: off by one either way, zero, all ones, random.
          for (const at of lengthFieldOffsets(m)) {
            const len = (bytes[at] << 8) | bytes[at + 1];
            for (const nv of [len - 1, len + 1, 0, 0xffff, rng.int(0, 0xffff)]) {
              if (nv < 0 || nv === len) continue;
              const c = bytes.slice();
              c[at] = nv >> 8;
              c[at + 1] = nv & 0xff;
              checkDecodeIsTotal(c, `${t} #${i} length at ${at} set to ${nv}`);
            }
          }
        }
      },
    });
  }
  cases.push(
    {
      name: `random generic headers: decodeGeneric(encodeGeneric(h)) equals h; decode() refuses them (seed ${seed})`,
      run() {
        const rng = new Prng(seed + 1);
        for (let i = 0; i < perType; i++) {
          const h = randomHeader(rng);
          const bytes = encodeGeneric(h);
          deepEqual(decodeGeneric(bytes), h, `generic #${i}`);
          const r = checkDecodeIsTotal(bytes, `generic #${i}`);
          check(r === 'header_only', () => `generic #${i}: decode gave ${r}`);
        }
      },
    },
    {
      name: `random bytes: decode throws nothing but SrupError (seed ${seed})`,
      run() {
        const rng = new Prng(seed + 2);
        const codes = TYPE_NAMES.map((t) => typeInfo(t).code);
        for (let i = 0; i < perType * 8; i++) {
          const b = rng.bytes(rng.int(0, 600));
          // Mostly well-started inputs, or nearly all of them would stop at the version byte.
          if (b.length > 0 && rng.int(0, 3) !== 0) b[0] = 5;
          if (b.length > 1 && rng.int(0, 3) !== 0) b[1] = rng.pick(codes);
          if (b.length > 19 && rng.bool()) b[18] = 0;
          checkDecodeIsTotal(b, `random input #${i}`);
        }
      },
    },
  );
  return cases;
}
