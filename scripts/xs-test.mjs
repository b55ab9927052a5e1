// The portable suite on a real XS engine: bundles test/xs/entry.ts with esbuild (IIFE, es2022), with the
// SRUP vector set embedded as a virtual module (xsnap has no file system), runs it on xsnap, prints every
// failure and ends with the XS run's own line "N passed, N failed". The suite: the conformance cases (codec,
// crypto, data, round trips), the device agent against the C2 engine (asynchronous flows, run one after the
// other with a time limit each), the flash stores and the challenge pictures. Exits non-zero when a case
// failed or XS crashed (no summary line, a non-zero exit status, or a signal).
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';
import { ensureXsnap, projectRoot, runBundle } from './xs.mjs';

const VECTORS = join(projectRoot, 'test', 'data', 'srup-vectors');
const ENTRY = join(projectRoot, 'test', 'xs', 'entry.ts');
const OUT_DIR = join(projectRoot, '.tmp', 'xs');
const OUT = join(OUT_DIR, 'portable.js');
const SUMMARY = /^(\d+) passed, (\d+) failed$/;

/** The vector set as one JS module: index, sidecars and key PEMs as data, .bin files as base64. */
function embeddedVectorsSource() {
  const index = JSON.parse(readFileSync(join(VECTORS, 'index.json'), 'utf8'));
  const sidecars = {};
  const bins = {};
  for (const v of index.vectors) {
    sidecars[v.id] = JSON.parse(readFileSync(join(VECTORS, v.file.replace(/\.bin$/, '.json')), 'utf8'));
    bins[v.id] = readFileSync(join(VECTORS, v.file)).toString('base64');
  }
  const pems = {};
  for (const f of readdirSync(join(VECTORS, 'keys'))) {
    if (f.endsWith('.pem')) pems[`keys/${f}`] = readFileSync(join(VECTORS, 'keys', f), 'utf8');
  }
  return `export default ${JSON.stringify({ index, sidecars, bins, pems })};\n`;
}

const embeddedVectors = {
  name: 'srup-vectors-embedded',
  setup(b) {
    b.onResolve({ filter: /^srup-vectors:embedded$/ }, (args) => ({ path: args.path, namespace: 'srup-vectors' }));
    b.onLoad({ filter: /.*/, namespace: 'srup-vectors' }, () => ({ contents: embeddedVectorsSource(), loader: 'js' }));
  },
};

async function main() {
  ensureXsnap();
  const t0 = Date.now();
  mkdirSync(OUT_DIR, { recursive: true });
  const result = await build({
    entryPoints: [ENTRY],
    bundle: true,
    format: 'iife',
    target: 'es2022',
    platform: 'neutral',
    mainFields: ['module', 'main'],
    conditions: ['import', 'default'],
    outfile: OUT,
    write: false,
    logLevel: 'silent',
    plugins: [embeddedVectors],
  });
  const js = result.outputFiles[0].contents;
  writeFileSync(OUT, js);
  const built = Date.now() - t0;

  const run = await runBundle(OUT);
  console.log(
    `xs-test: bundle ${(js.length / 1024).toFixed(0)} KiB built in ${built} ms, XS run ${run.ms} ms ` +
      `(${(built + run.ms) / 1000} s)`,
  );
  const lines = run.stdout.split('\n').filter((l) => l !== '');
  const last = lines.length > 0 ? lines[lines.length - 1] : '';
  const m = SUMMARY.exec(last);
  if (run.code !== 0 || run.signal !== null || m === null) {
    for (const l of lines) console.log(l);
    if (run.stderr.trim() !== '') console.log(run.stderr.trimEnd());
    console.log(
      `XS crashed: xsnap ${run.signal !== null ? `killed by ${run.signal}` : `exited with ${run.code}`}` +
        `${m === null ? ' without its summary line' : ''}`,
    );
    process.exitCode = 1;
    return;
  }
  for (const l of lines) console.log(l);
  if (Number(m[2]) > 0) process.exitCode = 1;
}

main().catch((e) => {
  console.error(e instanceof Error ? e.stack ?? e.message : e);
  process.exitCode = 1;
});
