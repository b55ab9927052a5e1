/**
 * A very small test harness that runs anywhere JavaScript runs: under jest (each case becomes a jest test) and
 * on the bare XS engine (test/xs/entry.ts runs every case and prints the failures). No jest APIs, no Node APIs.
 *
 * A case is a name and a function that throws (or returns a promise that rejects) when the behaviour is wrong.
 * The assertion helpers throw CheckFailure with a message that says what was compared, what was expected and
 * what was found. runCases runs synchronous cases; runCasesAsync runs any case, one after the other, each
 * within a time limit measured with the timers the platform hands in.
 */

/** A synchronous case. */
export interface Case {
  readonly name: string;
  run(): void;
}

/** A case that may return a promise (every Case is one). */
export interface AsyncCase {
  readonly name: string;
  run(): void | Promise<void>;
}

export class CheckFailure extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckFailure';
  }
}

export function fail(message: string): never {
  throw new CheckFailure(message);
}

export function check(condition: boolean, message: string | (() => string)): asserts condition {
  if (!condition) fail(typeof message === 'string' ? message : message());
}

const HEX = '0123456789abcdef';

function hexOf(b: Uint8Array, max = 64): string {
  let s = '';
  const n = Math.min(b.length, max);
  for (let i = 0; i < n; i++) s += HEX[b[i] >> 4] + HEX[b[i] & 15];
  return b.length > max ? `${s}... (${b.length} bytes)` : s;
}

/** A short, unambiguous rendering of a value for failure messages. */
export function show(v: unknown): string {
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'string') return JSON.stringify(v);
  if (Object.is(v, -0)) return '-0';
  if (v instanceof Uint8Array) return `<${hexOf(v)}>`;
  if (v === null || typeof v !== 'object') return String(v);
  if (Array.isArray(v)) return `[${v.map(show).join(', ')}]`;
  return `{${Object.keys(v)
    .map((k) => `${k}: ${show((v as Record<string, unknown>)[k])}`)
    .join(', ')}}`;
}

/** Strict equality of primitives (Object.is, so NaN equals NaN and 0 differs from -0). */
export function equal<T>(actual: T, expected: T, what: string): void {
  if (!Object.is(actual, expected)) fail(`${what}: expected ${show(expected)}, got ${show(actual)}`);
}

export function bytesEqual(actual: Uint8Array, expected: Uint8Array, what: string): void {
  check(actual instanceof Uint8Array, () => `${what}: expected bytes, got ${show(actual)}`);
  if (actual.length === expected.length) {
    let i = 0;
    while (i < actual.length && actual[i] === expected[i]) i++;
    if (i === actual.length) return;
    fail(
      `${what}: first difference at byte ${i} of ${actual.length}: expected ${show(expected[i])}, got ` +
        `${show(actual[i])}\n    expected ${show(expected)}\n    actual   ${show(actual)}`,
    );
  }
  fail(
    `${what}: expected ${expected.length} bytes, got ${actual.length}\n    expected ${show(expected)}\n` +
      `    actual   ${show(actual)}`,
  );
}

function deepDiff(actual: unknown, expected: unknown, path: string): string | null {
  if (expected instanceof Uint8Array || actual instanceof Uint8Array) {
    if (!(expected instanceof Uint8Array && actual instanceof Uint8Array)) {
      return `${path}: expected ${show(expected)}, got ${show(actual)}`;
    }
    if (expected.length !== actual.length) {
      return `${path}: expected ${expected.length} bytes ${show(expected)}, got ${actual.length} bytes ${show(actual)}`;
    }
    for (let i = 0; i < expected.length; i++) {
      if (expected[i] !== actual[i]) {
        return `${path}: differs at byte ${i}: expected ${show(expected)}, got ${show(actual)}`;
      }
    }
    return null;
  }
  if (expected === null || actual === null || typeof expected !== 'object' || typeof actual !== 'object') {
    return Object.is(actual, expected) ? null : `${path}: expected ${show(expected)}, got ${show(actual)}`;
  }
  if (Array.isArray(expected) !== Array.isArray(actual)) {
    return `${path}: expected ${show(expected)}, got ${show(actual)}`;
  }
  const e = expected as Record<string, unknown>;
  const a = actual as Record<string, unknown>;
  const ek = Object.keys(e).sort();
  const ak = Object.keys(a).sort();
  for (const k of ek) {
    if (!Object.prototype.hasOwnProperty.call(a, k)) return `${path}.${k}: missing (expected ${show(e[k])})`;
  }
  for (const k of ak) {
    if (!Object.prototype.hasOwnProperty.call(e, k)) return `${path}.${k}: unexpected ${show(a[k])}`;
  }
  for (const k of ek) {
    const d = deepDiff(a[k], e[k], `${path}.${k}`);
    if (d !== null) return d;
  }
  return null;
}

/**
 * Structural equality of plain data: objects with the same own keys, arrays, Uint8Array by content, bigint,
 * number (Object.is), string, boolean, null, undefined. The message names the first differing path.
 */
export function deepEqual(actual: unknown, expected: unknown, what: string): void {
  const d = deepDiff(actual, expected, what);
  if (d !== null) fail(d);
}

/** Runs fn, which must throw; returns what it threw. */
export function throws(fn: () => unknown, what: string): unknown {
  let result: unknown;
  try {
    result = fn();
  } catch (e) {
    return e;
  }
  return fail(`${what}: expected an exception, but it returned ${show(result)}`);
}

/** Runs fn, which must throw an error of class `type` whose `reason` is `reason`. */
export function throwsReason(
  fn: () => unknown,
  type: abstract new (...args: never[]) => Error,
  reason: string,
  what: string,
): void {
  const e = throws(fn, what);
  check(e instanceof type, () => `${what}: expected a ${type.name}, got ${describeError(e)}`);
  const got = (e as Error & { reason?: unknown }).reason;
  check(got === reason, () => `${what}: expected reason ${show(reason)}, got ${show(got)} (${describeError(e)})`);
}

export function describeError(e: unknown): string {
  if (e instanceof Error) {
    const reason = (e as Error & { reason?: unknown }).reason;
    return `${e.name}${reason !== undefined ? `(${String(reason)})` : ''}: ${e.message}`;
  }
  return `thrown value ${show(e)}`;
}

export interface Failure {
  readonly name: string;
  readonly message: string;
}

export interface RunResult {
  passed: number;
  failures: Failure[];
}

function failureOf(name: string, e: unknown): Failure {
  return { name, message: e instanceof CheckFailure ? e.message : describeError(e) };
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

/**
 * Runs every case synchronously; a case fails when it throws. A case that returns a promise fails too (it
 * belongs in runCasesAsync). onFailure is called as each failure happens.
 */
export function runCases(cases: readonly Case[], onFailure?: (f: Failure) => void): RunResult {
  const result: RunResult = { passed: 0, failures: [] };
  for (const c of cases) {
    try {
      const r: unknown = c.run();
      if (isThenable(r)) {
        Promise.resolve(r).catch(() => undefined);
        fail('the case is asynchronous: run it with runCasesAsync');
      }
      result.passed++;
    } catch (e) {
      const f = failureOf(c.name, e);
      result.failures.push(f);
      if (onFailure) onFailure(f);
    }
  }
  return result;
}

/** The timers runCasesAsync measures its time limit with (the platform's, or a shim over them). */
export interface Timers {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
  /** Milliseconds from any fixed origin. */
  now(): number;
}

export interface AsyncRunOptions {
  readonly timers: Timers;
  /** Time limit of one case (default 30 000 ms). */
  readonly timeoutMs?: number;
  onFailure?(f: Failure): void;
  /** Called after each case with its outcome and duration. */
  onCase?(name: string, ok: boolean, ms: number): void;
}

/**
 * Runs the cases one after the other, synchronous or not: a case fails when it throws, when its promise rejects,
 * or when its promise has not settled within the time limit (it is then left behind, and the next case starts).
 * A synchronous computation cannot be interrupted: a case that overruns without yielding is reported once it
 * returns.
 */
export async function runCasesAsync(cases: readonly AsyncCase[], options: AsyncRunOptions): Promise<RunResult> {
  const result: RunResult = { passed: 0, failures: [] };
  const limit = options.timeoutMs ?? 30_000;
  const { timers } = options;
  for (const c of cases) {
    const t0 = timers.now();
    let handle: unknown = null;
    let error: unknown = null;
    let failed = false;
    try {
      const r = c.run();
      if (isThenable(r)) {
        const timeout = new Promise<never>((_, reject) => {
          handle = timers.set(() => reject(new CheckFailure(`timed out: not settled after ${limit} ms`)), limit);
        });
        const run = Promise.resolve(r);
        run.catch(() => undefined); // a case left behind after its time limit may still reject
        await Promise.race([run, timeout]);
      }
    } catch (e) {
      failed = true;
      error = e;
    } finally {
      if (handle !== null) timers.clear(handle);
    }
    const ms = timers.now() - t0;
    if (!failed && ms > limit) {
      failed = true;
      error = new CheckFailure(`overran its time limit: ${Math.round(ms)} ms > ${limit} ms`);
    }
    if (failed) {
      const f = failureOf(c.name, error);
      result.failures.push(f);
      if (options.onFailure) options.onFailure(f);
    } else result.passed++;
    if (options.onCase) options.onCase(c.name, !failed, ms);
  }
  return result;
}
