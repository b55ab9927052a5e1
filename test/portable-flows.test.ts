/**
 * The portable flow cases (test/portable) under jest: the device agent against the C2 engine, the flash-store
 * formats and the challenge pictures, with the pure crypto the device runs. scripts/xs-test.mjs runs the same
 * cases on the XS engine.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { agentCases } from './portable/agent-cases.js';
import { challengeCases } from './portable/challenge-cases.js';
import { flowKeys1024, flowKeys2048, type FlowKeys } from './portable/flow-world.js';
import type { AsyncCase } from './portable/harness.js';
import { storeCases } from './portable/store-cases.js';
import { powerCutCases } from './portable/power-cut-cases.js';
import { deviceCases } from './portable/device-cases.js';

const VECTORS = join(__dirname, 'data', 'srup-vectors');

let keys2048: FlowKeys | null = null;
function vectorKeys(): FlowKeys {
  if (keys2048 === null) keys2048 = flowKeys2048((file) => readFileSync(join(VECTORS, file), 'utf8'));
  return keys2048;
}

function register(cases: readonly AsyncCase[]): void {
  for (const c of cases) test(c.name, async () => {
    await c.run();
  });
}

describe('device agent against the C2 engine, RSA-1024 test keys', () => register(agentCases(flowKeys1024, 'RSA-1024')));
describe('device agent against the C2 engine, RSA-2048 vector keys', () => register(agentCases(vectorKeys, 'RSA-2048')));
describe('device API against the C2 engine', () => register(deviceCases(flowKeys1024, 'RSA-1024')));
describe('flash stores', () => register(storeCases()));
describe('every answer delivered across power cuts, flash stores', () => register(powerCutCases(flowKeys1024, 'RSA-1024')));
describe('challenge pictures and matrix', () => register(challengeCases()));
