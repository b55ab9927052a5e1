/**
 * The blink code: the join challenge for a device with a single LED.
 *
 * Code: 10 digits, each 1..4, carrying the first 20 bits of the secret, 2 bits per digit, most significant bits
 * first: digit k = (bits 2k, 2k+1 of the secret) + 1, which is the colour index of grid cell k plus one. In hex
 * terms digit 2j+1 = (value(char j) >> 2) + 1 and digit 2j+2 = (value(char j) & 3) + 1 for the first 5 hex
 * characters (which are random in a pySRUP secret). Example: a secret starting "1b" → digits "1234…".
 *
 * Blinks: a digit d is shown as d short flashes (on `onMs`, off `offMs` between them); digits are separated by
 * a dark `digitGapMs`, and the last digit is followed by a dark `repeatGapMs`, after which the code repeats.
 * One repetition is the schedule: it starts with the first flash of the first digit and ends with the repeat
 * gap. Defaults: 250 ms on, 250 ms off, 1000 ms between digits, 3000 ms before repeating.
 *
 * Why base 4 and not decimal: 20 bits need 7 decimal digits (6 give only 19.93 bits), shown as up to 9 (or 10)
 * flashes each: 63 flashes plus gaps do not fit in 30 s at a pace people count reliably, and runs of 7–9 flashes
 * are easy to miscount. Runs of 1–4 are recognised at a glance rather than counted, so 10 of them read more
 * reliably than 7 decimal digits and fit the budget: the worst case (all digits 4) is
 * 10 × (4 × 250 + 3 × 250) + 9 × 1000 + 3000 = 29 500 ms, the best (all 1) 14 500 ms.
 *
 * Timing options are checked: integers 50..10000 ms, digitGapMs ≥ 3 × offMs and repeatGapMs ≥ 2 × digitGapMs (so
 * the pauses stay clearly distinct), and the worst-case repetition must stay within 30 000 ms.
 */
import { ChallengeError } from './errors.js';
import { challengeGrid } from './grid.js';

export const BLINK_DIGITS = 10;
export const BLINK_BITS = 20;
/** The longest one repetition (including the gap before it repeats) may last. */
export const MAX_REPETITION_MS = 30000;

export interface BlinkCode {
  /** 10 characters, each "1".."4". */
  readonly digits: string;
  /** The same digits as numbers 1..4. */
  readonly values: readonly number[];
  /** Bits of the secret the code carries (20). */
  readonly bits: number;
}

export interface BlinkOptions {
  onMs?: number;
  offMs?: number;
  digitGapMs?: number;
  repeatGapMs?: number;
}

export type BlinkTiming = Readonly<Required<BlinkOptions>>;

export const DEFAULT_BLINK_TIMING: BlinkTiming = { onMs: 250, offMs: 250, digitGapMs: 1000, repeatGapMs: 3000 };

export interface BlinkStep {
  readonly on: boolean;
  readonly ms: number;
}

export function blinkCode(secret: string | Uint8Array): BlinkCode {
  const cells = challengeGrid(secret);
  const values: number[] = [];
  for (let k = 0; k < BLINK_DIGITS; k++) values.push(cells[k] + 1);
  return { digits: values.join(''), values, bits: BLINK_BITS };
}

function checkDigits(code: unknown): number[] {
  const digits: unknown =
    typeof code === 'string' ? code : typeof code === 'object' && code !== null ? (code as BlinkCode).digits : null;
  if (typeof digits !== 'string' || digits.length !== BLINK_DIGITS) {
    throw new ChallengeError('bad_code', `a blink code is ${BLINK_DIGITS} digits 1..4`);
  }
  const values: number[] = [];
  for (let i = 0; i < BLINK_DIGITS; i++) {
    const v = digits.charCodeAt(i) - 48;
    if (v < 1 || v > 4) throw new ChallengeError('bad_code', `blink digit ${i} is not 1..4`);
    values.push(v);
  }
  return values;
}

/** Checks timing options (see the file comment) and fills in the defaults. */
export function blinkTiming(options: BlinkOptions = {}): BlinkTiming {
  if (typeof options !== 'object' || options === null) throw new ChallengeError('bad_options', 'options must be an object');
  const t: BlinkTiming = { ...DEFAULT_BLINK_TIMING, ...definedOnly(options) };
  for (const key of ['onMs', 'offMs', 'digitGapMs', 'repeatGapMs'] as const) {
    const v: unknown = t[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 50 || v > 10000) {
      throw new ChallengeError('bad_options', `${key} must be an integer number of ms in 50..10000`);
    }
  }
  if (t.digitGapMs < 3 * t.offMs) throw new ChallengeError('bad_options', 'digitGapMs must be at least 3 × offMs');
  if (t.repeatGapMs < 2 * t.digitGapMs) throw new ChallengeError('bad_options', 'repeatGapMs must be at least 2 × digitGapMs');
  if (worstCase(t) > MAX_REPETITION_MS) {
    throw new ChallengeError('bad_options', `the longest code would take ${worstCase(t)} ms, over ${MAX_REPETITION_MS}`);
  }
  return t;
}

function definedOnly(o: BlinkOptions): BlinkOptions {
  const out: BlinkOptions = {};
  if (o.onMs !== undefined) out.onMs = o.onMs;
  if (o.offMs !== undefined) out.offMs = o.offMs;
  if (o.digitGapMs !== undefined) out.digitGapMs = o.digitGapMs;
  if (o.repeatGapMs !== undefined) out.repeatGapMs = o.repeatGapMs;
  return out;
}

function worstCase(t: BlinkTiming): number {
  return BLINK_DIGITS * (4 * t.onMs + 3 * t.offMs) + (BLINK_DIGITS - 1) * t.digitGapMs + t.repeatGapMs;
}

/** Duration of one repetition of the longest code (every digit 4) with these timings. */
export function worstCaseBlinkMs(options: BlinkOptions = {}): number {
  return worstCase(blinkTiming(options));
}

/** One repetition of the code as alternating on/off steps, starting with the first flash. */
export function blinkSchedule(code: BlinkCode | string, options: BlinkOptions = {}): BlinkStep[] {
  const values = checkDigits(code);
  const t = blinkTiming(options);
  const steps: BlinkStep[] = [];
  for (let i = 0; i < values.length; i++) {
    for (let k = 1; k <= values[i]; k++) {
      steps.push({ on: true, ms: t.onMs });
      const off = k < values[i] ? t.offMs : i < values.length - 1 ? t.digitGapMs : t.repeatGapMs;
      steps.push({ on: false, ms: off });
    }
  }
  return steps;
}

function checkSchedule(schedule: unknown): asserts schedule is readonly BlinkStep[] {
  if (!Array.isArray(schedule) || schedule.length === 0) {
    throw new ChallengeError('bad_schedule', 'a schedule is a non-empty array of steps');
  }
  for (let i = 0; i < schedule.length; i++) {
    const s: unknown = schedule[i];
    const o = (typeof s === 'object' && s !== null ? s : {}) as { on?: unknown; ms?: unknown };
    if (typeof o.on !== 'boolean' || typeof o.ms !== 'number' || !Number.isFinite(o.ms) || o.ms <= 0) {
      throw new ChallengeError('bad_schedule', `schedule step ${i} is not { on: boolean, ms > 0 }`);
    }
  }
}

/** Total duration of one repetition of a schedule, in ms. */
export function scheduleDuration(schedule: readonly BlinkStep[]): number {
  checkSchedule(schedule);
  let total = 0;
  for (const s of schedule) total += s.ms;
  return total;
}

/**
 * Whether the LED is lit `tMs` after the schedule started, repeating it forever. A step covers the half-open
 * interval [its start, its start + ms), so at tMs = 0 the first step applies.
 */
export function blinkAt(schedule: readonly BlinkStep[], tMs: number): boolean {
  const total = scheduleDuration(schedule);
  if (typeof tMs !== 'number' || !Number.isFinite(tMs) || tMs < 0) {
    throw new ChallengeError('bad_time', 'time must be a finite number of ms ≥ 0');
  }
  let t = tMs % total;
  for (const s of schedule) {
    if (t < s.ms) return s.on;
    t -= s.ms;
  }
  return schedule[schedule.length - 1].on; // only reachable through rounding of fractional ms
}
