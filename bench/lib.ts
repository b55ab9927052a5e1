/**
 * What every benchmark section uses. Sections are scripts (bench/<id>.bench.ts on Node,
 * bench/<id>.xs.bench.ts on XS) that scripts/bench.mjs bundles and runs in a fresh engine each; they report
 * through stdout, one line per result row, so the same protocol serves Node and XS.
 *
 * No Node APIs here: this runs on XS too (xsnap gives `print` and `performance.now`).
 */

export interface Row {
  /** The section's name, e.g. "codec". */
  section: string;
  /** What was measured and where, e.g. "verify · XS pureCrypto". */
  name: string;
  value: number;
  /** "ops/s" rows also get a per-operation time in the table. */
  unit: string;
  /** Human-readable goal, e.g. "≤ 1 ms/op". */
  target?: string;
  /** Whether `value` meets `target`. */
  met?: boolean;
  /** The slowest and fastest of the samples `value` is the median of, in the same unit. */
  spread?: { min: number; max: number };
}

/** Prefix of the stdout lines that carry a row; every other line is progress text. */
export const ROW_PREFIX = '@bench-row ';

interface BenchOptions {
  /** How long each measurement runs, at least. */
  minMs: number;
}

declare const print: ((s: string) => void) | undefined;

const options: BenchOptions = {
  minMs: 500,
  ...((globalThis as { BENCH_OPTIONS?: Partial<BenchOptions> }).BENCH_OPTIONS ?? {}),
};

function write(line: string): void {
  if (typeof print === 'function') print(line);
  else console.log(line);
}

export function emit(row: Row): void {
  write(ROW_PREFIX + JSON.stringify(row));
}

export function progress(message: string): void {
  write(message);
}

export function now(): number {
  return performance.now();
}

export interface Rate {
  opsPerSec: number;
  usPerOp: number;
  runs: number;
  /** The slowest and the fastest sample, in ops/s: a wide spread means a busy machine, not a figure to quote. */
  minOpsPerSec: number;
  maxOpsPerSec: number;
}

/** Anything the measured function returns goes here, so that no engine can skip the work. */
export let sink: unknown;

/** Samples per measurement; the reported time is their median, which shrugs off a busy machine's hiccups. */
export const SAMPLES = 10;

/**
 * Times `fn`: doubles a batch size until one batch takes a tenth of the budget (this is also the warm-up),
 * then times SAMPLES batches of that size and reports the median time per call.
 */
export function measure(fn: () => unknown): Rate {
  const sampleMs = options.minMs / SAMPLES;
  let batch = 1;
  let runs = 0;
  for (;;) {
    const t0 = now();
    for (let i = 0; i < batch; i++) sink = fn();
    runs += batch;
    if (now() - t0 >= sampleMs) break;
    batch *= 2;
  }
  const perOp: number[] = [];
  for (let s = 0; s < SAMPLES; s++) {
    const t0 = now();
    for (let i = 0; i < batch; i++) sink = fn();
    perOp.push(((now() - t0) * 1000) / batch);
    runs += batch;
  }
  perOp.sort((a, b) => a - b);
  const usPerOp = (perOp[(SAMPLES >> 1) - 1] + perOp[SAMPLES >> 1]) / 2;
  return { opsPerSec: 1e6 / usPerOp, usPerOp, runs, minOpsPerSec: 1e6 / perOp[SAMPLES - 1], maxOpsPerSec: 1e6 / perOp[0] };
}

export interface RateTarget {
  /** The rate must be at least this many ops/s ... */
  minOpsPerSec?: number;
  /** ... or one operation must take at most this many µs. */
  maxUs?: number;
}

function formatTarget(t: RateTarget): string {
  if (t.minOpsPerSec !== undefined) return `≥ ${t.minOpsPerSec.toLocaleString('en-US')} ops/s`;
  const us = t.maxUs as number;
  return us >= 1000 ? `≤ ${us / 1000} ms/op` : `≤ ${us} µs/op`;
}

/** Measures `fn` and emits its rate as a row (with the target and whether it is met, when given). */
export function rate(section: string, name: string, fn: () => unknown, target?: RateTarget): Rate {
  progress(`  ${section}: ${name} ...`);
  const r = measure(fn);
  const row: Row = { section, name, value: r.opsPerSec, unit: 'ops/s', spread: { min: r.minOpsPerSec, max: r.maxOpsPerSec } };
  if (target) {
    row.target = formatTarget(target);
    row.met = (target.minOpsPerSec === undefined || r.opsPerSec >= target.minOpsPerSec) && (target.maxUs === undefined || r.usPerOp <= target.maxUs);
  }
  emit(row);
  return r;
}
