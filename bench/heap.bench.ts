/**
 * The ESP32 memory gate's figure as a benchmark row: the agent's share of the XS heap at its peak, in the
 * ESP32's 32-bit KiB (slots × 16 + chunk bytes above the baseline of the loaded bundle), through a boot from a
 * provisioned partition, a human join, 20 commands and a 1 MiB streamed update with restart (RSA-2048). The
 * measurement is scripts/xs-heap.mjs, the same run as the gate in `npm test`; this section only reports it
 * (`npm run bench -- --only heap`). Runs on Node: it starts the XS heap host as a child process.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { emit, progress } from './lib.js';

const BUDGET_KIB = 48;

// scripts/bench.mjs runs every section from the project's root.
const r = spawnSync(process.execPath, [join(process.cwd(), 'scripts', 'xs-heap.mjs'), '--json', '--budget', String(BUDGET_KIB)], {
  encoding: 'utf8',
  maxBuffer: 16 * 1024 * 1024,
});
const line = r.stdout.split('\n').find((l) => l.startsWith('{'));
if (line === undefined) {
  process.stderr.write(`xs-heap.mjs gave no result (exit ${r.status}):\n${r.stdout}${r.stderr}`);
  process.exit(1);
}
const m = JSON.parse(line) as {
  ok: boolean;
  why?: string;
  kib: number;
  slots: number;
  chunks: number;
  stackPeak: number;
};
if (!m.ok) {
  process.stderr.write(`the flows did not run to the end: ${m.why}\n`);
  process.exit(1);
}
progress(`agent ${m.slots} slots + ${m.chunks} chunk bytes above the baseline; XS stack peak ${m.stackPeak} slots`);
emit({
  section: 'heap',
  name: "esp32 heap peak (agent's share, 32-bit)",
  value: m.kib,
  unit: 'KiB',
  target: `≤ ${BUDGET_KIB} KiB`,
  met: m.kib <= BUDGET_KIB,
});
