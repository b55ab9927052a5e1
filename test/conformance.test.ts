/**
 * The portable conformance cases (test/portable) under jest: the SRUP vectors are read from
 * test/data/srup-vectors, and every case that involves crypto runs with both implementations, the pure one
 * (what the device runs) and node:crypto. The same cases run on the XS engine through scripts/xs-test.mjs.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pureCrypto } from '../crypto/pure.js';
import { nodeCrypto } from '../hosts/node/crypto.js';
import { codecCases } from './portable/codec-cases.js';
import { cryptoCases } from './portable/crypto-cases.js';
import { dataCases } from './portable/data-cases.js';
import type { Case } from './portable/harness.js';
import { roundTripCases } from './portable/roundtrip-cases.js';
import { IndexJson, Sidecar, VectorSet, makeVectorSet } from './portable/vectors.js';

const VECTORS = resolve(__dirname, 'data', 'srup-vectors');

function loadVectorSet(dir: string): VectorSet {
  const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as IndexJson;
  const sidecars: Record<string, Sidecar> = {};
  const bins: Record<string, Uint8Array> = {};
  for (const v of index.vectors) {
    sidecars[v.id] = JSON.parse(readFileSync(join(dir, v.file.replace(/\.bin$/, '.json')), 'utf8')) as Sidecar;
    bins[v.id] = new Uint8Array(readFileSync(join(dir, v.file)));
  }
  const pems: Record<string, string> = {};
  for (const f of readdirSync(join(dir, 'keys'))) {
    if (f.endsWith('.pem')) pems[`keys/${f}`] = readFileSync(join(dir, 'keys', f), 'utf8');
  }
  return makeVectorSet(index, sidecars, bins, pems);
}

const set = loadVectorSet(VECTORS);

function register(cases: readonly Case[]): void {
  for (const c of cases) test(c.name, () => c.run());
}

test('the vector folder holds exactly the files the index lists', () => {
  const onDisk = readdirSync(join(VECTORS, 'vectors')).sort();
  const listed = set.vectors.flatMap((v) => [`${v.id}.bin`, `${v.id}.json`]).sort();
  expect(onDisk).toEqual(listed);
});

describe('typed data payloads', () => register(dataCases(set)));

describe('seeded randomized codec round trips', () => register(roundTripCases(0x5eed, 200)));

for (const crypto of [pureCrypto, nodeCrypto]) {
  describe(`vectors with ${crypto.name} crypto`, () => register(codecCases(set, crypto)));
  describe(`${crypto.name} crypto`, () => register(cryptoCases(set, crypto)));
}
