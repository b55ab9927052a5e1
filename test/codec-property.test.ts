/**
 * Property tests of the codec, with arbitraries built from the schema table: every message type round-trips,
 * signed bytes are exactly the encoding without the signature field, and no input whatsoever makes decode()
 * throw anything but a SrupError with one of the documented reasons.
 */
import fc from 'fast-check';
import { U64_MAX, toHex } from '../modules/srup/bytes.js';
import {
  decode,
  decodeGeneric,
  encode,
  encodeGeneric,
  peekHeader,
  signedBytes,
  tryDecode,
} from '../modules/srup/codec.js';
import { SrupError } from '../modules/srup/errors.js';
import { FieldKind, Header, Message, TYPE_NAMES, TypeName, typeInfo } from '../modules/srup/schema.js';
import {
  DECODE_REASONS,
  checkDecodeIsTotal,
  lengthFieldOffsets,
  withoutSignature,
} from './portable/roundtrip-cases.js';

// ---------------------------------------------------------------------------------------------------------
// Arbitraries

const u64 = fc.oneof(fc.constantFrom(0n, 1n, 1n << 63n, U64_MAX - 1n, U64_MAX), fc.bigInt({ min: 0n, max: U64_MAX }));
const u8 = fc.oneof(fc.constantFrom(0, 255), fc.integer({ min: 0, max: 255 }));
const u32 = fc.oneof(fc.constantFrom(0, 0xffffffff), fc.integer({ min: 0, max: 0xffffffff }));
const bytes0to300 = fc.oneof(
  fc.constant(new Uint8Array(0)),
  fc.uint8Array({ maxLength: 300 }),
  fc.uint8Array({ minLength: 250, maxLength: 300 }),
);
const signature = fc.oneof(
  fc.constantFrom(1, 256, 512).chain((n) => fc.uint8Array({ minLength: n, maxLength: n })),
  fc.uint8Array({ minLength: 1, maxLength: 512 }),
);

const FIELD: Record<Exclude<FieldKind, 'zero2'>, fc.Arbitrary<unknown>> = { u8, u32, u64, bytes: bytes0to300 };

// Plain objects, as the codec builds them (fast-check's records have a null prototype by default).
const plain = { noNullPrototype: true } as const;

const header: fc.Arbitrary<Header> = fc.record({ sequenceId: u64, senderId: u64, token: bytes0to300 }, plain);

/** A signed message of type t with every field drawn from its kind in the schema table. */
function messageOf(t: TypeName): fc.Arbitrary<Message> {
  const fields: Record<string, fc.Arbitrary<unknown>> = {};
  for (const [name, kind] of typeInfo(t).fields) if (kind !== 'zero2') fields[name] = FIELD[kind];
  return fc
    .tuple(header, fc.record(fields, plain), signature)
    .map(([h, f, s]) => ({ type: t, ...h, fields: f, signature: s }) as Message);
}

const anyMessage = fc.oneof(...TYPE_NAMES.map(messageOf));

type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'extend'; extra: Uint8Array }
  | { kind: 'length'; which: number; value: number; delta: boolean };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('extend' as const), extra: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({
    kind: fc.constant('length' as const),
    which: fc.nat(),
    value: fc.oneof(fc.integer({ min: -3, max: 3 }), fc.integer({ min: 0, max: 0xffff })),
    delta: fc.boolean(),
  }),
);

function mutate(m: Message, bytes: Uint8Array, mu: Mutation): Uint8Array {
  switch (mu.kind) {
    case 'flip': {
      const c = bytes.slice();
      c[mu.at % c.length] ^= 1 << mu.bit;
      return c;
    }
    case 'truncate':
      return bytes.slice(0, mu.at % bytes.length);
    case 'extend': {
      const c = new Uint8Array(bytes.length + mu.extra.length);
      c.set(bytes);
      c.set(mu.extra, bytes.length);
      return c;
    }
    case 'length': {
      const offsets = lengthFieldOffsets(m);
      const at = offsets[mu.which % offsets.length];
      const old = (bytes[at] << 8) | bytes[at + 1];
      const v = (mu.delta ? old + mu.value : mu.value) & 0xffff;
      const c = bytes.slice();
      c[at] = v >> 8;
      c[at + 1] = v & 0xff;
      return c;
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Properties

describe.each(TYPE_NAMES)('%s', (t) => {
  test('decode(encode(m)) deep-equals m', () => {
    fc.assert(
      fc.property(messageOf(t), (m) => {
        expect(decode(encode(m))).toStrictEqual(m);
      }),
      { numRuns: 250 },
    );
  });

  test('signedBytes(m) is encode(m) without the signature length and signature', () => {
    fc.assert(
      fc.property(messageOf(t), (m) => {
        const bytes = encode(m);
        const at = 20 + m.token.length;
        expect((bytes[at] << 8) | bytes[at + 1]).toBe(m.signature.length);
        // Compared as hex: jest's deep equality is slow on long typed arrays.
        expect(toHex(bytes.subarray(at + 2, at + 2 + m.signature.length))).toBe(toHex(m.signature));
        expect(toHex(signedBytes(m))).toBe(toHex(withoutSignature(bytes)));
        expect(peekHeader(bytes)).toStrictEqual({
          sequenceId: m.sequenceId,
          senderId: m.senderId,
          token: m.token,
          code: typeInfo(t).code,
        });
      }),
      { numRuns: 100 },
    );
  });
});

test('random bytes decode to a message or a SrupError with a known reason, nothing else', () => {
  const codes = [0, 0x07, 0x30, 0xff, ...TYPE_NAMES.map((t) => typeInfo(t).code)];
  const wellStarted = fc
    .tuple(fc.constantFrom(5, 5, 5, 4), fc.constantFrom(...codes), fc.uint8Array({ maxLength: 600 }))
    .map(([v, c, rest]) => Uint8Array.of(v, c, ...rest));
  fc.assert(
    fc.property(fc.oneof(fc.uint8Array({ maxLength: 600 }), wellStarted), (b) => {
      checkDecodeIsTotal(b, 'random input');
      const r = tryDecode(b);
      if (!r.ok) expect(DECODE_REASONS).toContain(r.error.reason);
    }),
    { numRuns: 10000 },
  );
});

test('mutated encodings (bit flips, truncation, extension, length edits) throw nothing but SrupError', () => {
  const seen = new Set<string>();
  fc.assert(
    fc.property(anyMessage, mutation, (m, mu) => {
      const bytes = encode(m);
      const damaged = mutate(m, bytes, mu);
      // A decodable result re-encodes to exactly the damaged bytes (the encoding is canonical).
      const r = checkDecodeIsTotal(damaged, `${m.type} after ${mu.kind}`);
      seen.add(r);
      if (mu.kind === 'truncate') {
        expect(r).not.toBe('ok');
        if (damaged.length === 0) expect(r).toBe('empty');
      }
      if (mu.kind === 'extend') expect(r).toBe('trailing_bytes');
    }),
    { numRuns: 10000 },
  );
  // Not vacuous: some damage goes unnoticed by the structure (the signature catches it), most does not.
  for (const r of ['ok', 'truncated', 'length_exceeds_input', 'trailing_bytes', 'bad_version', 'unknown_type']) {
    expect([r, seen.has(r)]).toEqual([r, true]);
  }
});

test('encodeGeneric/decodeGeneric round trip; decode() refuses generic headers as header_only', () => {
  fc.assert(
    fc.property(header, (h) => {
      const bytes = encodeGeneric(h);
      expect(bytes.length).toBe(20 + h.token.length);
      expect(decodeGeneric(bytes)).toStrictEqual(h);
      expect(peekHeader(bytes)).toStrictEqual({ ...h, code: 0 });
      expect(() => decode(bytes)).toThrow(expect.objectContaining({ reason: 'header_only' }));
    }),
    { numRuns: 1000 },
  );
});

test('encode refuses values that do not fit their field (field_range) and an empty signature', () => {
  const reasonOf = (f: () => unknown): string => {
    try {
      f();
    } catch (e) {
      if (e instanceof SrupError) return e.reason;
      throw e;
    }
    return 'encoded';
  };
  const base = { sequenceId: 1n, senderId: 2n, token: Uint8Array.of(1), signature: Uint8Array.of(9) };
  const big = new Uint8Array(65536);
  const bad: [string, unknown][] = [
    ['action actionId 256', { ...base, type: 'action', fields: { actionId: 256 } }],
    ['action actionId -1', { ...base, type: 'action', fields: { actionId: -1 } }],
    ['action actionId 1.5', { ...base, type: 'action', fields: { actionId: 1.5 } }],
    ['device count 2^32', { ...base, type: 'syndicated_device_count', fields: { count: 2 ** 32 } }],
    ['join_command deviceId 2^64', { ...base, type: 'join_command', fields: { deviceId: 1n << 64n } }],
    ['join_command deviceId -1', { ...base, type: 'join_command', fields: { deviceId: -1n } }],
    ['join_command deviceId as number', { ...base, type: 'join_command', fields: { deviceId: 1 } }],
    ['sequenceId 2^64', { ...base, sequenceId: 1n << 64n, type: 'activate', fields: {} }],
    ['token of 65536 bytes', { ...base, token: big, type: 'activate', fields: {} }],
    ['data of 65536 bytes', { ...base, type: 'data', fields: { dataId: Uint8Array.of(), data: big } }],
    ['unknown type', { ...base, type: 'group_add', fields: {} }],
  ];
  for (const [what, m] of bad) expect([what, reasonOf(() => encode(m as Message))]).toEqual([what, 'field_range']);
  // A byte field that holds no bytes at all (missing, or text) is the boundary check's not_bytes.
  expect(reasonOf(() => encode({ ...base, type: 'initiate', fields: { digest: Uint8Array.of() } } as unknown as Message))).toBe('not_bytes');
  expect(reasonOf(() => encode({ ...base, type: 'initiate', fields: { url: 'http://x', digest: Uint8Array.of() } } as unknown as Message))).toBe('not_bytes');
  expect(reasonOf(() => encode({ ...base, signature: Uint8Array.of(), type: 'activate', fields: {} }))).toBe(
    'empty_signature',
  );
  // The largest values that do fit.
  const max = encode({ ...base, token: new Uint8Array(65535), type: 'activate', fields: {} } as Message);
  expect(decode(max).token.length).toBe(65535);
});
