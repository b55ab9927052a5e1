/**
 * The simulator has no raw flash: the `srup` partition is a file (the `srup-sim.bin` that `srup provision`
 * writes), held in memory with NOR semantics and written back after every change. Its path is the build
 * config's `srupImage` (mcconfig ... srupImage=/path/srup-sim.bin), else `srup-sim.bin` under the file root.
 */
import config from 'mc/config';
import { File } from 'file';
import { MemoryFlash, SRUP_PARTITION_SIZE, type Flash } from '../../../modules/store/flash.js';

export function imagePath(): string {
  const c = config as { srupImage?: string; file?: { root?: string } };
  return c.srupImage ?? (c.file?.root ?? '') + 'srup-sim.bin';
}

export function openFlash(): Flash {
  const path = imagePath();
  let contents: Uint8Array | undefined;
  let size = SRUP_PARTITION_SIZE;
  try {
    const f = new File(path);
    size = f.length;
    contents = new Uint8Array(f.read(ArrayBuffer, f.length) as ArrayBuffer);
    f.close();
  } catch {
    trace(`no partition image at ${path}: run srup provision and pass srupImage=<its srup-sim.bin>\n`);
  }
  const mem = new MemoryFlash(size, 4096, contents);
  const persist = (from: number, length: number): void => {
    const f = new File(path, true);
    f.position = from;
    f.write(mem.bytes.slice(from, from + length).buffer);
    f.close();
  };
  return {
    byteLength: mem.byteLength,
    blockSize: mem.blockSize,
    read: (o, n) => mem.read(o, n),
    write: (o, b) => {
      mem.write(o, b);
      persist(o, b.length);
    },
    eraseBlock: (i) => {
      mem.eraseBlock(i);
      persist(i * mem.blockSize, mem.blockSize);
    },
  };
}
