/** The `--crypto node|pure` choice shared by commands that sign, verify or open envelopes. */
import { pureCrypto } from '../../crypto/pure.js';
import type { Crypto } from '../../crypto/types.js';
import { nodeCrypto } from '../../hosts/node/crypto.js';
import { UsageError, optString, type OptionSpec, type OptionValues } from './cli.js';

export const CRYPTO_OPTION: OptionSpec = {
  type: 'string',
  value: 'node|pure',
  description: 'crypto implementation: node:crypto (default) or the pure TypeScript one that runs on XS',
};

export function selectCrypto(values: OptionValues): Crypto {
  const name = optString(values, 'crypto') ?? 'node';
  if (name === 'node') return nodeCrypto;
  if (name === 'pure') return pureCrypto;
  throw new UsageError(`--crypto must be "node" or "pure", not "${name}"`);
}
