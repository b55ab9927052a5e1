/**
 * The simulator has no raw flash: the `srup` partition is a file (the `srup-sim.bin` that `srup provision`
 * writes). Like the ESP32's partition it is read per request, never held whole in the XS heap, and written with
 * NOR semantics (a write can only clear bits; an erase sets a 4 KiB block to 0xFF). Its path is the build
 * config's `srupImage` (mcconfig ... srupImage=/path/srup-sim.bin), else `srup-sim.bin` under the file root.
 */
import config from 'mc/config';
import { File } from 'file';
import { SRUP_PARTITION_SIZE, type Flash } from '../../../modules/store/flash.js';

const BLOCK = 4096;

export function imagePath(): string {
  const c = config as { srupImage?: string; file?: { root?: string } };
  return c.srupImage ?? (c.file?.root ?? '') + 'srup-sim.bin';
}

function readAt(path: string, offset: number, length: number): Uint8Array {
  const f = new File(path);
  try {
    f.position = offset;
    return new Uint8Array(f.read(ArrayBuffer, length) as ArrayBuffer);
  } finally {
    f.close();
  }
}

function writeAt(path: string, offset: number, bytes: Uint8Array): void {
  const f = new File(path, true);
  try {
    f.position = offset;
    f.write(bytes.buffer.byteLength === bytes.length && bytes.byteOffset === 0 ? bytes.buffer : bytes.slice().buffer);
  } finally {
    f.close();
  }
}

export function openFlash(): Flash {
  const path = imagePath();
  let size = SRUP_PARTITION_SIZE;
  try {
    const f = new File(path);
    size = f.length;
    f.close();
  } catch {
    trace(`no partition image at ${path}: run srup provision and pass srupImage=<its srup-sim.bin>\n`);
    // Reads as an erased partition, so that the key store reports "not provisioned"; nothing is created.
    const refuse = (): never => {
      throw new Error(`no partition image at ${path}`);
    };
    return { byteLength: size, blockSize: BLOCK, read: (_o, n) => new Uint8Array(n).fill(0xff), write: refuse, eraseBlock: refuse };
  }
  const inRange = (offset: number, length: number): void => {
    if (!(offset >= 0 && length >= 0 && offset + length <= size)) throw new RangeError(`flash access ${offset}+${length} outside 0..${size}`);
  };
  return {
    byteLength: size,
    blockSize: BLOCK,
    read(offset, length) {
      inRange(offset, length);
      return readAt(path, offset, length);
    },
    write(offset, bytes) {
      inRange(offset, bytes.length);
      const merged = readAt(path, offset, bytes.length);
      for (let i = 0; i < merged.length; i++) merged[i] &= bytes[i];
      writeAt(path, offset, merged);
    },
    eraseBlock(index) {
      inRange(index * BLOCK, BLOCK);
      writeAt(path, index * BLOCK, new Uint8Array(BLOCK).fill(0xff));
    },
  };
}
