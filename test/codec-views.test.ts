/** decode() hands out views into its input, not copies: the fast path the C2 server and the device rely on. */
import { utf8 } from '../modules/srup/bytes.js';
import { decode, encode } from '../modules/srup/codec.js';
import type { Message } from '../modules/srup/schema.js';

test('byte fields of a decoded message are views into the input; ids are read as written', () => {
  const m = {
    type: 'initiate',
    sequenceId: 0xfedcba9876543210n,
    senderId: 0x4a0fn,
    token: utf8('tok'),
    signature: new Uint8Array(256).fill(7),
    fields: { url: utf8('http://h/f\0'), digest: utf8('ab\0') },
  } as Message;
  const input = encode(m);
  const d = decode(input);
  expect(d).toEqual(m);
  for (const b of [d.token, d.signature, (d.fields as { url: Uint8Array }).url]) expect(b.buffer).toBe(input.buffer);
  // A view at an offset decodes the same.
  const padded = new Uint8Array(input.length + 3);
  padded.set(input, 3);
  expect(decode(padded.subarray(3))).toEqual(m);
});
