/** Message-path rates on the XS engine (xsnap), with the pure TypeScript crypto the device runs. */
import { pureCrypto } from '../crypto/pure.js';
import { runCodecBench } from './codec.js';

runCodecBench({
  runtime: 'XS',
  fixtureCrypto: pureCrypto,
  setups: [
    {
      label: 'XS pureCrypto',
      crypto: pureCrypto,
      targets: { verify: { maxUs: 1000 }, sign: { maxUs: 10_000 } },
    },
  ],
});
