/**
 * CRC-32 as used by zlib, PNG and Ethernet (IEEE 802.3): reflected polynomial 0xEDB88320, initial value
 * 0xFFFFFFFF, final XOR 0xFFFFFFFF. crc32(ascii "123456789") = 0xCBF43926.
 */

function makeTable(): Uint32Array {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
}

/** Built when the module loads: in the firmware that is at link time, so the 1 KiB table lives in flash (read only). */
const table = makeTable();

/** CRC-32 of bytes[start, end). Pass a previous result as `crc` to continue a running checksum. */
export function crc32(bytes: Uint8Array, start = 0, end = bytes.length, crc = 0): number {
  const t = table;
  let c = (crc ^ 0xffffffff) >>> 0;
  for (let i = start; i < end; i++) c = t[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
