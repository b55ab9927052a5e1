/** `srup keygen --out DIR`: a fresh RSA key pair as DIR/private.pem (PKCS#8, 0600) and DIR/public.pem (SPKI). */
import { chmodSync, existsSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { makeDirs } from '../../hosts/node/durable.js';
import { join } from 'node:path';
import { generateRsaKeyPair } from '../../hosts/node/crypto.js';
import { CliError, UsageError, optBoolean, optString, requireString, type Command } from '../lib/cli.js';

export const PRIVATE_KEY_FILE = 'private.pem';
export const PUBLIC_KEY_FILE = 'public.pem';
const BITS = [2048, 3072, 4096];

/** Writes `text` to `path` through a temporary file, so that `path` never exists with other contents or mode. */
function writeAtomic(path: string, text: string, mode: number): void {
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, text, { mode, flag: 'wx' });
    chmodSync(tmp, mode); // whatever the umask
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new CliError(`cannot write ${path}: ${e instanceof Error ? e.message : String(e)}`, 2);
  }
}

export const keygenCommand: Command = {
  name: 'keygen',
  summary: 'Generate an RSA key pair for a device or a C2 server.',
  synopsis: '--out DIR [--force]',
  positionals: { min: 0, max: 0 },
  options: {
    out: { type: 'string', value: 'DIR', description: 'directory for private.pem and public.pem (created if missing)' },
    force: { type: 'boolean', description: 'replace existing key files' },
    bits: { type: 'string', value: 'N', description: `modulus size: ${BITS.join(', ')} (default 2048)` },
  },
  details: `Writes DIR/${PRIVATE_KEY_FILE} (PKCS#8 "BEGIN PRIVATE KEY", mode 0600) and DIR/${PUBLIC_KEY_FILE}
(SubjectPublicKeyInfo "BEGIN PUBLIC KEY") and prints their paths.

Exit status: 0 written, 1 a key file exists and --force was not given, 2 usage error or unwritable directory.`,

  run({ values }, { stdout }) {
    const dir = requireString(values, 'out');
    const bits = Number(optString(values, 'bits') ?? '2048');
    if (!BITS.includes(bits)) throw new UsageError(`--bits must be one of ${BITS.join(', ')}`);
    const privatePath = join(dir, PRIVATE_KEY_FILE);
    const publicPath = join(dir, PUBLIC_KEY_FILE);
    if (!optBoolean(values, 'force')) {
      for (const p of [privatePath, publicPath]) {
        if (existsSync(p)) throw new CliError(`${p} already exists; use --force to replace it`, 1);
      }
    }
    try {
      makeDirs(dir);
    } catch (e) {
      throw new CliError(`cannot create ${dir}: ${e instanceof Error ? e.message : String(e)}`, 2);
    }
    const pair = generateRsaKeyPair(bits);
    writeAtomic(privatePath, pair.privatePem, 0o600);
    writeAtomic(publicPath, pair.publicPem, 0o644);
    stdout.write(`private key: ${privatePath}\npublic key:  ${publicPath}\n`);
    return 0;
  },
};
