/** Timeouts keyed by what they guard (a device's pending join, an update's token), over the host clock. */
import type { Clock } from './host.js';

/**
 * At most one timeout per key. Arming a key again replaces its timeout; a replaced or disarmed timeout never
 * fires, even if the clock had already queued it.
 */
export class KeyedTimers<K> {
  private readonly timers = new Map<K, unknown>();

  constructor(private readonly clock: Clock) {}

  arm(key: K, ms: number, fire: () => void): void {
    this.disarm(key);
    const t = this.clock.setTimeout(() => {
      if (this.timers.get(key) !== t) return;
      this.timers.delete(key);
      fire();
    }, ms);
    this.timers.set(key, t);
  }

  disarm(key: K): void {
    const t = this.timers.get(key);
    if (t !== undefined) {
      this.clock.clearTimeout(t);
      this.timers.delete(key);
    }
  }

  disarmAll(): void {
    for (const key of [...this.timers.keys()]) this.disarm(key);
  }
}
