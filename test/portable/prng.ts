/**
 * A small seeded pseudo-random generator (sfc32) for reproducible randomized tests on any engine. Not for
 * keys or anything secret: tests only.
 */
export class Prng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(readonly seed: number) {
    this.a = 0x9e3779b9;
    this.b = 0x243f6a88;
    this.c = 0xb7e15162;
    this.d = seed >>> 0;
    for (let i = 0; i < 16; i++) this.next32();
  }

  /** Uniform in [0, 2^32). */
  next32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform integer in [lo, hi] (inclusive; the range must be below 2^32). */
  int(lo: number, hi: number): number {
    return lo + (this.next32() % (hi - lo + 1));
  }

  bool(): boolean {
    return (this.next32() & 1) === 1;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(0, items.length - 1)];
  }

  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.next32() & 0xff;
    return out;
  }

  u64(): bigint {
    return (BigInt(this.next32()) << 32n) | BigInt(this.next32());
  }
}

/** Returns a RandomBytes-shaped function drawing from a seeded generator. */
export function seededRandomBytes(seed: number): (n: number) => Uint8Array {
  const p = new Prng(seed);
  return (n) => p.bytes(n);
}
