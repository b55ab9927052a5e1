/**
 * Per-device rate limits for what devices send on their own (data, join requests, leaving): a token bucket per
 * device, `burst` messages at once and `perSecond` after that. Answers (responses) are not limited: the server
 * asked for them. Only accepted messages (signature checked) use up a device's allowance, so forgeries in its
 * name cannot silence it; once a device has used it up, its further messages are dropped before their
 * signature is checked, so a chatty or compromised device costs the server a bounded amount of work and audit
 * space. Buckets exist only for devices that sent an accepted message.
 */
export interface RateLimit {
  /** Messages a device may send at once. */
  readonly burst: number;
  /** Messages a device may send per second, sustained. */
  readonly perSecond: number;
}

export const DEFAULT_DEVICE_RATE: RateLimit = Object.freeze({ burst: 100, perSecond: 10 });

export class DeviceRates {
  private readonly buckets = new Map<bigint, { tokens: number; at: number }>();

  constructor(private readonly limit: RateLimit) {}

  /** Whether `device` may send one more message now. */
  allows(device: bigint, now: number): boolean {
    const b = this.buckets.get(device);
    if (b === undefined) return true;
    this.refill(b, now);
    return b.tokens >= 1;
  }

  /** Counts one accepted message of `device`. */
  take(device: bigint, now: number): void {
    let b = this.buckets.get(device);
    if (b === undefined) {
      b = { tokens: this.limit.burst, at: now };
      this.buckets.set(device, b);
    } else this.refill(b, now);
    b.tokens = Math.max(0, b.tokens - 1);
  }

  private refill(b: { tokens: number; at: number }, now: number): void {
    b.tokens = Math.min(this.limit.burst, b.tokens + (Math.max(0, now - b.at) / 1000) * this.limit.perSecond);
    b.at = now;
  }

  /** Forgets a device (it was removed). */
  forget(device: bigint): void {
    this.buckets.delete(device);
  }
}
