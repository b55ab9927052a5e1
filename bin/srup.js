#!/usr/bin/env node
// Starts the bundled CLI (dist/srup.mjs, built from tools/srup.ts by `npm run build`).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const bundle = new URL('../dist/srup.mjs', import.meta.url);
if (!existsSync(fileURLToPath(bundle))) {
  process.stderr.write("srup: dist/srup.mjs is missing; run 'npm run build' in the srup-agent project first\n");
  process.exit(2);
}
process.setSourceMapsEnabled?.(true);
const { main } = await import(bundle.href);
try {
  process.exitCode = await main(process.argv.slice(2));
} catch (e) {
  process.stderr.write(`srup: internal error: ${e && e.stack ? e.stack : e}\n`);
  process.exitCode = 70;
}
