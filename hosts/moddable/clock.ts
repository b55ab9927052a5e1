/** Clock and log on Moddable: `timer`, `Time.ticks`, and `trace` (serial / xsbug; stdout in the simulator). */
import Time from 'time';
import Timer from 'timer';
import type { Clock, Log } from '../../modules/agent/host.js';

export const moddableClock: Clock = {
  now: () => Time.ticks,
  setTimeout: (fn, ms) => Timer.set(() => fn(), ms),
  clearTimeout: (h) => Timer.clear(h as Timer),
};

/** One line per event: `level event key=value ...`. */
export const traceLog: Log = (level, event, detail) => {
  let line = `${level} ${event}`;
  if (detail) for (const k in detail) line += ` ${k}=${String(detail[k])}`;
  trace(line + '\n');
};
