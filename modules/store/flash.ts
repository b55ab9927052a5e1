/**
 * The flash the stores live on: one partition, addressed from 0, in erase blocks of `blockSize` bytes.
 * NOR semantics: `eraseBlock` sets a block to 0xFF; `write` can only clear bits (1 → 0), so a byte is written
 * once between erases. Hosts: hosts/moddable (ESP32 partition `srup`, simulator file), tests (MemoryFlash).
 */
import { StoreError } from './errors.js';

export interface Flash {
  readonly byteLength: number;
  /** 4096 on every supported part. */
  readonly blockSize: number;
  read(offset: number, length: number): Uint8Array;
  /** Programs bytes (AND with what is there). Durable on return. */
  write(offset: number, bytes: Uint8Array): void;
  /** Sets block `index` (bytes index*blockSize ... +blockSize) to 0xFF. Durable on return. */
  eraseBlock(index: number): void;
}

export const BLOCK_SIZE = 4096;

/** Where the two stores live inside the partition: key-store slots first, then the counter log. */
export interface StoreLayout {
  /** Erase blocks per key-store slot (two slots, A then B, starting at block 0). */
  readonly recordSlotBlocks: number;
  /** First block of the counter log, and how many blocks it rotates through (at least 2). */
  readonly logFirstBlock: number;
  readonly logBlocks: number;
}

/**
 * The `srup` partition as partitions.csv declares it: 56 KiB = 14 blocks; blocks 0 and 1 are the record
 * slots A and B, blocks 2..13 the counter log.
 */
export const SRUP_PARTITION_SIZE = 0xe000;
export const DEFAULT_LAYOUT: StoreLayout = { recordSlotBlocks: 1, logFirstBlock: 2, logBlocks: 12 };

export function layoutFor(flash: Flash, layout: StoreLayout = DEFAULT_LAYOUT): StoreLayout {
  if (flash.blockSize !== BLOCK_SIZE) throw new StoreError('bad_layout', `block size ${flash.blockSize}, expected ${BLOCK_SIZE}`);
  const blocks = Math.floor(flash.byteLength / flash.blockSize);
  if (layout.recordSlotBlocks < 1 || layout.logBlocks < 2 || layout.logFirstBlock < 2 * layout.recordSlotBlocks)
    throw new StoreError('bad_layout', 'layout needs two record slots and at least two log blocks');
  if (layout.logFirstBlock + layout.logBlocks > blocks)
    throw new StoreError('bad_layout', `layout needs ${layout.logFirstBlock + layout.logBlocks} blocks, partition has ${blocks}`);
  return layout;
}

/** True when every byte of bytes[start, end) is 0xFF (erased). */
export function isErased(bytes: Uint8Array, start = 0, end = bytes.length): boolean {
  for (let i = start; i < end; i++) if (bytes[i] !== 0xff) return false;
  return true;
}

/**
 * A flash held in memory, with the semantics above. The simulator host persists `bytes` to a file; the tests
 * wrap it to cut the power.
 */
export class MemoryFlash implements Flash {
  readonly bytes: Uint8Array;
  readonly blockSize: number;
  /** Counters for benchmarks and tests. */
  erases = 0;
  writes = 0;
  bytesWritten = 0;

  constructor(byteLength: number, blockSize = BLOCK_SIZE, contents?: Uint8Array) {
    if (byteLength % blockSize !== 0) throw new StoreError('bad_layout', 'length is not a whole number of blocks');
    this.blockSize = blockSize;
    this.bytes = new Uint8Array(byteLength).fill(0xff);
    if (contents) this.bytes.set(contents.subarray(0, byteLength));
  }

  get byteLength(): number {
    return this.bytes.length;
  }

  read(offset: number, length: number): Uint8Array {
    this.check(offset, length);
    return this.bytes.slice(offset, offset + length);
  }

  write(offset: number, bytes: Uint8Array): void {
    this.check(offset, bytes.length);
    for (let i = 0; i < bytes.length; i++) this.bytes[offset + i] &= bytes[i];
    this.writes++;
    this.bytesWritten += bytes.length;
  }

  eraseBlock(index: number): void {
    this.check(index * this.blockSize, this.blockSize);
    this.bytes.fill(0xff, index * this.blockSize, (index + 1) * this.blockSize);
    this.erases++;
  }

  private check(offset: number, length: number): void {
    if (!(offset >= 0 && length >= 0 && offset + length <= this.bytes.length) || offset % 1 !== 0 || length % 1 !== 0)
      throw new StoreError('out_of_range', `flash access ${offset}+${length} outside ${this.bytes.length}`);
  }
}
