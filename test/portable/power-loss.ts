/**
 * Power cut at a flash operation, on any engine: the flash model for the power-loss tests of the stores
 * (test/portable/store-cases.ts on XS and jest, test/store-powerloss.test.ts exhaustively on jest), and the
 * counter-log operations their workloads are made of.
 */
import type { CounterLog } from '../../modules/store/counter-log.js';
import type { Flash, MemoryFlash } from '../../modules/store/flash.js';
import { fail } from './harness.js';
import { Prng } from './prng.js';

/** Thrown by CutFlash at the cut: the device lost power. */
export class PowerLoss extends Error {}

/**
 * How much of the interrupted operation lands: a write keeps none, one byte, half or all but one byte of its
 * bytes; an erase leaves the block as it was ('none'), half erased, or as noise.
 */
export type Tear = 'none' | 'half' | 'one-byte' | 'all-but-one' | 'noise';
export const WRITE_TEARS: Tear[] = ['none', 'one-byte', 'half', 'all-but-one'];
export const ERASE_TEARS: Tear[] = ['none', 'half', 'noise'];

/**
 * A MemoryFlash that loses power at operation `cutAt` (0-based over writes and erases; -1: never), leaving that
 * operation partly done as `tear` says. It also fails any write that programs a byte that is not erased.
 * `noise(n)` fills a block torn as 'noise' (default: a Prng seeded with cutAt + 1).
 */
export class CutFlash implements Flash {
  ops = 0;
  readonly kinds: ('write' | 'erase')[] = [];
  private readonly noise: (n: number) => Uint8Array;

  constructor(
    readonly inner: MemoryFlash,
    private readonly cutAt: number,
    private readonly tear: Tear,
    noise?: (n: number) => Uint8Array,
  ) {
    if (noise === undefined) {
      const prng = new Prng(cutAt + 1);
      this.noise = (n) => prng.bytes(n);
    } else this.noise = noise;
  }

  get byteLength(): number {
    return this.inner.byteLength;
  }

  get blockSize(): number {
    return this.inner.blockSize;
  }

  read(offset: number, length: number): Uint8Array {
    return this.inner.read(offset, length);
  }

  write(offset: number, bytes: Uint8Array): void {
    const mem = this.inner.bytes;
    for (let i = 0; i < bytes.length; i++) {
      if (bytes[i] !== 0xff && mem[offset + i] !== 0xff) fail(`programmed a non-erased byte at ${offset + i}`);
    }
    this.kinds.push('write');
    if (this.ops++ === this.cutAt) {
      const n =
        this.tear === 'none' ? 0 : this.tear === 'one-byte' ? 1 : this.tear === 'half' ? bytes.length >> 1 : bytes.length - 1;
      this.inner.write(offset, bytes.subarray(0, n));
      throw new PowerLoss();
    }
    this.inner.write(offset, bytes);
  }

  eraseBlock(index: number): void {
    this.kinds.push('erase');
    if (this.ops++ === this.cutAt) {
      const base = index * this.blockSize;
      if (this.tear === 'half') this.inner.bytes.fill(0xff, base, base + this.blockSize / 2);
      if (this.tear === 'noise') this.inner.bytes.set(this.noise(this.blockSize), base);
      throw new PowerLoss();
    }
    this.inner.eraseBlock(index);
  }
}

/** One change to a counter log, as a workload lists them. */
export type CounterOp =
  | { kind: 'accepted' | 'sent'; peer: bigint; seq: bigint }
  | { kind: 'forget'; peer: bigint }
  | { kind: 'pending'; p: { server: bigint; token: Uint8Array; state: 'staged' | 'activating' } | null }
  /** A command accepted with its answer owed; the answer sent with its status; the answer delivered. */
  | { kind: 'owe'; peer: bigint; seq: bigint; actionId: number; token: Uint8Array }
  | { kind: 'answer'; peer: bigint; seq: bigint; commandSeq: bigint; status: number }
  | { kind: 'settle'; peer: bigint; commandSeq: bigint };

/** The three peers of the workloads. */
export const PEERS = [1n, 2n, 3n].map((k) => k * 0x1111111111111111n);

export function applyOp(log: CounterLog, op: CounterOp): void {
  if (op.kind === 'accepted') log.setAccepted(op.peer, op.seq);
  else if (op.kind === 'sent') log.setSent(op.peer, op.seq);
  else if (op.kind === 'forget') log.forget(op.peer);
  else if (op.kind === 'pending') log.setPending(op.p);
  else if (op.kind === 'owe') log.acceptOwing(op.peer, op.seq, 'action', op.actionId, op.token);
  else if (op.kind === 'answer') log.sentAnswering(op.peer, op.seq, op.commandSeq, op.status);
  else if (op.kind === 'settle') log.settle(op.peer, op.commandSeq);
}
