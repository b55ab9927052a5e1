// `npm start`: the whole SRUP system on this machine (embedded MQTT broker, C2 server and console, virtual
// devices), i.e. `srup demo` with the arguments given after `npm start --`. Builds dist/srup.mjs first when it
// is missing or older than the sources.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bundle = join(root, 'dist', 'srup.mjs');

function newestSource(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

const sources = ['tools', 'modules', 'crypto', join('hosts', 'node')].map((d) => join(root, d)).filter(existsSync);
const stale = !existsSync(bundle) || Math.max(...sources.map(newestSource)) > statSync(bundle).mtimeMs;
if (stale) {
  process.stdout.write('Building dist/srup.mjs…\n');
  const r = spawnSync(process.execPath, [join(root, 'scripts', 'build.mjs')], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

process.setSourceMapsEnabled?.(true);
const { main } = await import(pathToFileURL(bundle).href);
const args = process.argv.slice(2);
process.exitCode = await main(args[0] === '--help' || args[0] === '-h' ? ['demo', '--help'] : ['demo', ...args]);
