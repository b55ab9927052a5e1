import fc from 'fast-check';
import { fromHexOrNull, idHex16, idTopicHex, parseIdHex, toHex, utf8, utf8DecodeOrNull } from '../modules/srup/bytes.js';

test('utf8 encodes every string exactly as TextEncoder does (lone surrogates become U+FFFD)', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary' }), (s) => {
      expect(Array.from(utf8(s))).toEqual(Array.from(new TextEncoder().encode(s)));
    }),
    { numRuns: 3000 },
  );
  expect(Array.from(utf8('\ud800x'))).toEqual([0xef, 0xbf, 0xbd, 0x78]);
});

test('utf8DecodeOrNull accepts exactly what a fatal TextDecoder accepts', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 40 }), (b) => {
      let ref: string | null;
      try {
        ref = new TextDecoder('utf-8', { fatal: true }).decode(b);
      } catch {
        ref = null;
      }
      expect(utf8DecodeOrNull(b)).toBe(ref);
    }),
    { numRuns: 20000 },
  );
  expect(utf8DecodeOrNull(new Uint8Array([0xc0, 0x80]))).toBeNull(); // overlong NUL
  expect(utf8DecodeOrNull(new Uint8Array([0xed, 0xa0, 0x80]))).toBeNull(); // surrogate
});

test('hex round trip, case-insensitive parsing, and refusal of anything else', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 40 }), (b) => {
      expect(toHex(b)).toBe(Buffer.from(b).toString('hex'));
      expect(fromHexOrNull(toHex(b))).toEqual(b);
    }),
  );
  expect(fromHexOrNull('AbCd')).toEqual(new Uint8Array([0xab, 0xcd]));
  expect(fromHexOrNull('0g')).toBeNull();
  expect(fromHexOrNull('abc')).toBeNull();
  expect(fromHexOrNull('é0')).toBeNull();
});

test('ids: topic form without leading zeros, 16-digit form for JSON, parsing', () => {
  expect(idTopicHex(0x004a0fn)).toBe('4a0f');
  expect(idTopicHex(0n)).toBe('0');
  expect(idHex16(0x4a0fn)).toBe('0000000000004a0f');
  expect(parseIdHex('0x00FF')).toBe(255n);
  expect(parseIdHex('ffffffffffffffff')).toBe((1n << 64n) - 1n);
  expect(parseIdHex('1ffffffffffffffff')).toBeNull();
  expect(parseIdHex('')).toBeNull();
  expect(parseIdHex('12z')).toBeNull();
});
