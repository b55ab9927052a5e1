// Bundles the command-line tool: tools/srup.ts -> dist/srup.mjs (ES module for Node, dependencies left to
// node_modules, with a source map), the device API for Node applications: hosts/node/device.ts ->
// dist/device.mjs (package export `srup-agent/device`, its declarations in dist/types by tsconfig.device.json),
// and the join-challenge functions for the operator console:
// modules/challenge -> dist/console-challenge.js (the same code the device runs, for the browser).
// Run by `npm run build` and by `prepare` on npm install / npm ci.
// Output files are replaced atomically, so a `srup` started during a rebuild never sees half a bundle.
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

let result;
let consoleBundle;
let deviceBundle;
try {
  consoleBundle = await build({
    absWorkingDir: root,
    entryPoints: ['modules/challenge/index.ts'],
    outfile: 'dist/console-challenge.js',
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2020',
    write: false,
    logLevel: 'warning',
  });
  deviceBundle = await build({
    absWorkingDir: root,
    entryPoints: ['hosts/node/device.ts'],
    outfile: 'dist/device.mjs',
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    sourcemap: true,
    write: false,
    logLevel: 'warning',
  });
  result = await build({
    absWorkingDir: root,
    entryPoints: ['tools/srup.ts'],
    outfile: 'dist/srup.mjs',
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    sourcemap: true,
    write: false,
    logLevel: 'warning',
  });
} catch {
  process.exit(1); // esbuild has already printed the errors
}
for (const file of [...result.outputFiles, ...deviceBundle.outputFiles, ...consoleBundle.outputFiles]) {
  mkdirSync(dirname(file.path), { recursive: true });
  const tmp = `${file.path}.${process.pid}.tmp`;
  writeFileSync(tmp, file.contents);
  renameSync(tmp, file.path);
}

// The declarations of `srup-agent/device` (types for TypeScript users of the package).
const tsc = spawnSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.device.json')], { stdio: 'inherit' });
if (tsc.status !== 0) process.exit(1);
