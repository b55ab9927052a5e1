/** The `srup` data partition through the SDK's `flash` module (ESP-IDF esp_partition_*), as a store Flash. */
import Flash from 'flash';
import type { Flash as StoreFlash } from '../../../modules/store/flash.js';

export function openFlash(): StoreFlash {
  const f = new Flash('srup');
  return {
    byteLength: f.byteLength,
    blockSize: f.blockSize,
    read: (offset, length) => new Uint8Array(f.read(offset, length) as ArrayBuffer),
    write: (offset, bytes) => f.write(offset, bytes.length, bytes.slice().buffer as ArrayBuffer),
    eraseBlock: (index) => f.erase(index),
  };
}
