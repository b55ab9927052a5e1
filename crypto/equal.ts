/**
 * The one comparison of secret byte strings (signatures' encoded blocks, join secrets, tokens): no early exit
 * on the first difference. Lengths that differ answer false at once: a length is never the secret here.
 */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}
