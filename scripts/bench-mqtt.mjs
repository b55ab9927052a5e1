// Runs the MQTT benchmark section alone (bench/mqtt.bench.ts): bundles it with esbuild into .tmp/bench/ and runs
// it with this Node, printing its progress and result rows. `npm run bench` runs the same section among the
// others (scripts/bench.mjs finds every bench/*.bench.ts); this script is for running it on its own:
//
//   node scripts/bench-mqtt.mjs            full run (1,000 round trips, 10 s with 200 devices)
//   node scripts/bench-mqtt.mjs --quick    short run (a smoke test, not numbers to quote)
//
// Needs the Debian `mosquitto` and `openssl` binaries (the broker and its TLS certificates are made on the fly).
import { build } from 'esbuild';
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const quick = process.argv.includes('--quick');
const outfile = join(root, '.tmp', 'bench', 'mqtt.mjs');
mkdirSync(dirname(outfile), { recursive: true });
await build({
  absWorkingDir: root,
  entryPoints: ['bench/mqtt.bench.ts'],
  outfile,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
  banner: { js: `globalThis.BENCH_OPTIONS = ${JSON.stringify({ minMs: quick ? 60 : 500 })};` },
  logLevel: 'warning',
});
const child = spawn(process.execPath, [outfile], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
let pending = '';
const rows = [];
child.stdout.on('data', (b) => {
  pending += b.toString('utf8');
  const lines = pending.split('\n');
  pending = lines.pop();
  for (const line of lines) {
    if (line.startsWith('@bench-row ')) {
      const row = JSON.parse(line.slice('@bench-row '.length));
      rows.push(row);
      const target = row.target ? `   target ${row.target}: ${row.met ? 'met' : 'NOT MET'}` : '';
      console.log(`  ${row.name}: ${row.value} ${row.unit}${target}`);
    } else if (line.trim()) console.log(line);
  }
});
child.on('close', (code) => {
  process.exitCode = code ?? 1;
});
