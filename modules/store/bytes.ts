/** Little-endian field helpers for the flash formats (all multi-byte numbers on flash are little-endian). */

export function putU16(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
}

export function putU32(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
  b[o + 2] = (v >>> 16) & 0xff;
  b[o + 3] = (v >>> 24) & 0xff;
}

export function putU64(b: Uint8Array, o: number, v: bigint): void {
  putU32(b, o, Number(v & 0xffffffffn));
  putU32(b, o + 4, Number((v >> 32n) & 0xffffffffn));
}

export function getU16(b: Uint8Array, o: number): number {
  return b[o] | (b[o + 1] << 8);
}

export function getU32(b: Uint8Array, o: number): number {
  return (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;
}

export function getU64(b: Uint8Array, o: number): bigint {
  return BigInt(getU32(b, o)) | (BigInt(getU32(b, o + 4)) << 32n);
}

export const U64_MASK = (1n << 64n) - 1n;

export function align4(n: number): number {
  return (n + 3) & ~3;
}
