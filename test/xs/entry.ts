/**
 * The conformance suite on the XS engine: scripts/xs-test.mjs bundles this file (with the vector set
 * embedded) and runs it on xsnap. Every portable case runs with the pure crypto, the one a device uses. Prints
 * each failure, then a last line "N passed, N failed".
 */
import embedded from 'srup-vectors:embedded';
import { pureCrypto } from '../../crypto/pure.js';
import { codecCases } from '../portable/codec-cases.js';
import { cryptoCases } from '../portable/crypto-cases.js';
import { dataCases } from '../portable/data-cases.js';
import { Case, runCases } from '../portable/harness.js';
import { roundTripCases } from '../portable/roundtrip-cases.js';
import { IndexJson, Sidecar, makeVectorSet } from '../portable/vectors.js';
import { base64ToBytes } from './base64.js';

// xsnap's output function.
declare function print(...args: unknown[]): void;

const bins: Record<string, Uint8Array> = {};
for (const id of Object.keys(embedded.bins)) bins[id] = base64ToBytes(embedded.bins[id]);
const set = makeVectorSet(
  embedded.index as IndexJson,
  embedded.sidecars as Record<string, Sidecar>,
  bins,
  embedded.pems,
);

const groups: [string, Case[]][] = [
  ['vectors', codecCases(set, pureCrypto)],
  ['crypto', cryptoCases(set, pureCrypto)],
  ['data', dataCases(set)],
  ['round trips', roundTripCases(0x5eed, 200)],
];

let passed = 0;
let failed = 0;
const timings: string[] = [];
for (const [group, cases] of groups) {
  const t0 = Date.now();
  const r = runCases(cases, (f) => print(`FAIL ${f.name}\n    ${f.message.split('\n').join('\n    ')}`));
  passed += r.passed;
  failed += r.failures.length;
  timings.push(`${group} ${cases.length} cases ${Date.now() - t0} ms`);
}
print(`XS ${pureCrypto.name} crypto: ${timings.join(', ')}`);
print(`${passed} passed, ${failed} failed`);
