/** One helper per job: ids as hex, the constant-time comparison and conversation tokens exist once. */
import { constantTimeEqual as fromCrypto } from '../crypto/equal.js';
import { constantTimeEqual as fromRsa } from '../crypto/rsa.js';
import { constantTimeEqual as fromAgent } from '../modules/agent/context.js';
import { equal, idHex16, parseIdHex } from '../modules/srup/bytes.js';
import { conversationToken } from '../modules/srup/session.js';
import { hexToId, idToHex } from '../hosts/node/durable.js';
import { nodeCrypto } from '../hosts/node/crypto.js';
import { pureCrypto } from '../crypto/pure.js';
import { tryDecode } from '../modules/srup/codec.js';

test('one constant-time comparison, with one rule for different lengths', () => {
  expect(new Set([fromCrypto, fromRsa, fromAgent, equal]).size).toBe(1);
  expect(equal(Uint8Array.of(1, 2), Uint8Array.of(1, 2, 0))).toBe(false);
  expect(equal(Uint8Array.of(1, 2, 0), Uint8Array.of(1, 2))).toBe(false);
});

test('ids: one writer and one reader, the same rules everywhere', () => {
  expect([idHex16(0x4a0fn), idToHex(0x4a0fn)]).toEqual(['0000000000004a0f', '0000000000004a0f']);
  for (const bad of [-1n, 1n << 64n]) {
    expect(() => idHex16(bad)).toThrow(expect.objectContaining({ name: 'SrupError', reason: 'field_range' }));
    expect(() => idToHex(bad)).toThrow(expect.objectContaining({ name: 'SrupError', reason: 'field_range' }));
  }
  expect([parseIdHex('0x4A0F'), parseIdHex('0x4A0F', false), hexToId('0x4A0F'), hexToId('4A0F'), parseIdHex(17), hexToId(17)])
    .toEqual([0x4a0fn, null, null, 0x4a0fn, null, null]);
  expect([parseIdHex('ffffffffffffffff'), parseIdHex('1ffffffffffffffff')]).toEqual([(1n << 64n) - 1n, null]);
});

test('one conversation token maker for device and server: uuid4 text from 16 random bytes', () => {
  const t = conversationToken(() => new Uint8Array(16).fill(0xff));
  expect(new TextDecoder().decode(t)).toBe('ffffffff-ffff-4fff-bfff-ffffffffffff');
  expect(() => conversationToken(() => new Uint8Array(15))).toThrow(expect.objectContaining({ name: 'CryptoError', reason: 'bad_random' }));
});

test('typed reasons at the boundaries: a non-byte input is not_bytes, crypto misuse is a CryptoError', () => {
  for (const bad of [null, undefined, 'abc', [5, 1], new ArrayBuffer(4)]) {
    expect(tryDecode(bad as never)).toMatchObject({ ok: false, error: { reason: 'not_bytes' } });
  }
  expect(tryDecode(new Uint8Array(0))).toMatchObject({ ok: false, error: { reason: 'empty' } });
  for (const c of [pureCrypto, nodeCrypto]) {
    expect(() => c.aesCbcEncrypt(new Uint8Array(3), new Uint8Array(16), new Uint8Array(1))).toThrow(expect.objectContaining({ name: 'CryptoError', reason: 'bad_argument' }));
  }
});
