/** Message-path rates on Node, with node:crypto and with the pure TypeScript crypto. */
import { pureCrypto } from '../crypto/pure.js';
import { nodeCrypto } from '../hosts/node/crypto.js';
import { runCodecBench } from './codec.js';

runCodecBench({
  runtime: 'Node',
  fixtureCrypto: nodeCrypto,
  targets: { decode: { minOpsPerSec: 2_000_000 } },
  setups: [
    { label: 'Node nodeCrypto', crypto: nodeCrypto },
    { label: 'Node pureCrypto', crypto: pureCrypto },
  ],
});
