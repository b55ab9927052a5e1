/**
 * Timers for the test harness on xsnap. xsnap has no setTimeout; it has `setImmediate(fn)` (a timer job due at
 * once, run by its loop after every pending promise job, in the order scheduled; no way to cancel it) and
 * `performance.now()`. Promise jobs all run before the next immediate.
 *
 * This shim keeps its own list of timers and polls it from a chain of immediates that exists only while a
 * timer is pending. The chain busy-waits (xsnap's loop never sleeps), so it is for time limits that normally
 * get cleared, not for delays a test waits out.
 */
import type { Timers } from '../portable/harness.js';

declare function setImmediate(fn: () => void): void;
declare const performance: { now(): number };
declare function print(...args: unknown[]): void;

interface Entry {
  readonly at: number;
  readonly fn: () => void;
}

const pending = new Map<number, Entry>();
let nextId = 1;
let polling = false;

function poll(): void {
  polling = false;
  const now = performance.now();
  const due: [number, Entry][] = [];
  for (const e of pending) if (e[1].at <= now) due.push(e);
  due.sort((a, b) => a[1].at - b[1].at || a[0] - b[0]);
  for (const [id, e] of due) {
    if (!pending.delete(id)) continue; // cleared by an earlier callback
    try {
      e.fn();
    } catch (err) {
      print(`timer callback threw: ${String(err)}`);
    }
  }
  if (pending.size > 0) schedule();
}

function schedule(): void {
  if (polling) return;
  polling = true;
  setImmediate(poll);
}

export const xsTimers: Timers = {
  set(fn, ms) {
    const id = nextId++;
    pending.set(id, { at: performance.now() + Math.max(0, ms), fn });
    schedule();
    return id;
  },
  clear(handle) {
    pending.delete(handle as number);
  },
  now: () => performance.now(),
};

/** Timers pending now (for the end-of-run check that nothing was left behind). */
export function pendingTimers(): number {
  return pending.size;
}
