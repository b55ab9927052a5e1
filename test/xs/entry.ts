/**
 * The portable suite on the XS engine: scripts/xs-test.mjs bundles this file (with the vector set embedded)
 * and runs it on xsnap. Every case runs with the pure crypto, the one a device uses: the conformance cases
 * (codec, crypto, data, round trips), then the flows (device agent against the C2 engine on a portable
 * broker), the flash stores and the challenge pictures. Cases run one after the other, each within a time
 * limit (timers.ts); prints each failure, one timing line, then a last line "N passed, N failed".
 */
import embedded from 'srup-vectors:embedded';
import { pureCrypto } from '../../crypto/pure.js';
import { agentCases } from '../portable/agent-cases.js';
import { challengeCases } from '../portable/challenge-cases.js';
import { codecCases } from '../portable/codec-cases.js';
import { cryptoCases } from '../portable/crypto-cases.js';
import { dataCases } from '../portable/data-cases.js';
import { flowKeys1024, flowKeys2048, type FlowKeys } from '../portable/flow-world.js';
import { AsyncCase, runCasesAsync } from '../portable/harness.js';
import { roundTripCases } from '../portable/roundtrip-cases.js';
import { storeCases } from '../portable/store-cases.js';
import { powerCutCases } from '../portable/power-cut-cases.js';
import { deviceCases } from '../portable/device-cases.js';
import { IndexJson, Sidecar, makeVectorSet } from '../portable/vectors.js';
import { base64ToBytes } from './base64.js';
import { pendingTimers, xsTimers } from './timers.js';

// xsnap's output function.
declare function print(...args: unknown[]): void;

/** Time limit of one case on XS (the slowest, the counter-log power-loss case, takes a few seconds). */
const CASE_TIMEOUT_MS = 30_000;

const bins: Record<string, Uint8Array> = {};
for (const id of Object.keys(embedded.bins)) bins[id] = base64ToBytes(embedded.bins[id]);
const set = makeVectorSet(
  embedded.index as IndexJson,
  embedded.sidecars as Record<string, Sidecar>,
  bins,
  embedded.pems,
);

let keys2048: FlowKeys | null = null;
function vectorKeys(): FlowKeys {
  if (keys2048 === null) keys2048 = flowKeys2048((file) => set.pem(file));
  return keys2048;
}

const groups: [string, AsyncCase[]][] = [
  ['vectors', codecCases(set, pureCrypto)],
  ['crypto', cryptoCases(set, pureCrypto)],
  ['data', dataCases(set)],
  ['round trips', roundTripCases(0x5eed, 200)],
  ['flows RSA-1024', agentCases(flowKeys1024, 'RSA-1024')],
  ['flows RSA-2048', agentCases(vectorKeys, 'RSA-2048')],
  ['stores', storeCases()],
  ['device API', deviceCases(flowKeys1024, 'RSA-1024')],
  ['power cuts', powerCutCases(flowKeys1024, 'RSA-1024', [1])],
  ['challenge', challengeCases()],
];

async function main(): Promise<void> {
  let passed = 0;
  let failed = 0;
  const timings: string[] = [];
  const slow: string[] = [];
  for (const [group, cases] of groups) {
    const t0 = xsTimers.now();
    const r = await runCasesAsync(cases, {
      timers: xsTimers,
      timeoutMs: CASE_TIMEOUT_MS,
      onFailure: (f) => print(`FAIL ${f.name}\n    ${f.message.split('\n').join('\n    ')}`),
      onCase: (name, _ok, ms) => {
        if (ms >= 1000) slow.push(`${(ms / 1000).toFixed(1)} s ${name}`);
      },
    });
    passed += r.passed;
    failed += r.failures.length;
    timings.push(`${group} ${cases.length} cases ${Math.round(xsTimers.now() - t0)} ms`);
  }
  if (pendingTimers() !== 0) {
    print(`FAIL timers left pending after the run: ${pendingTimers()}`);
    failed++;
  }
  print(`XS ${pureCrypto.name} crypto: ${timings.join(', ')}`);
  for (const s of slow) print(`  slow: ${s}`);
  print(`${passed} passed, ${failed} failed`);
}

main().catch((e: unknown) => print(`XS run aborted: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`));
