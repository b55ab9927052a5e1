/** Clock and log on Moddable: `timer`, `Time.ticks`, and `trace` (serial / xsbug; stdout in the simulator). */
import Time from 'time';
import Timer from 'timer';
import type { Clock, Log } from '../../modules/agent/host.js';

/**
 * Time.ticks is a u32 millisecond count handed over as an int32: negative after 2^31 ms (24.8 days) up, and
 * back to 0 after 2^32. now() undoes both, so that it keeps counting up (it is read far more often than that).
 */
let wraps = 0;
let last = 0;
function now(): number {
  const t = Time.ticks >>> 0;
  if (t < last) wraps++;
  last = t;
  return wraps * 0x100000000 + t;
}

export const moddableClock: Clock = {
  now,
  setTimeout: (fn, ms) => Timer.set(() => fn(), ms),
  clearTimeout: (h) => Timer.clear(h as Timer),
};

/** One line per event: `level event key=value ...`. */
export const traceLog: Log = (level, event, detail) => {
  let line = `${level} ${event}`;
  if (detail) for (const k in detail) line += ` ${k}=${String(detail[k])}`;
  trace(line + '\n');
};
