/**
 * The C2 server's identity, created on first start and kept in its data directory:
 *
 *   DIR/               mode 0700
 *   DIR/server.json    {"id": "<16 hex>"}                          (0600)
 *   DIR/private.pem    the server's RSA private key (PKCS#8)       (0600)
 *   DIR/public.pem     its public key (SPKI), for provisioning devices (0644)
 *
 * The id is made as the reference KeyEx client makes identities: the top 64 bits of a random version-4 UUID,
 * so its 13th hex digit is always 4.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parsePrivateKeyPem, publicKeyToPem } from '../../crypto/keys.js';
import type { RsaPrivateKey, RsaPublicKey } from '../../crypto/types.js';
import { generateRsaKeyPair, randomBytes } from '../../hosts/node/crypto.js';
import { hexToId, idToHex, makeDirs, writeFileDurable } from '../../hosts/node/durable.js';

export const SERVER_FILE = 'server.json';
export const PRIVATE_FILE = 'private.pem';
export const PUBLIC_FILE = 'public.pem';

export interface ServerIdentity {
  readonly id: bigint;
  readonly privateKey: RsaPrivateKey;
  readonly publicKey: RsaPublicKey;
  readonly publicPem: string;
}

/** A fresh 64-bit identity: uuid4() >> 64. */
export function newIdentityId(): bigint {
  const b = randomBytes(8);
  b[6] = (b[6] & 0x0f) | 0x40;
  let v = 0n;
  for (const x of b) v = (v << 8n) | BigInt(x);
  return v;
}

/** Creates the directory (0700) if needed and makes sure nobody else can read it. */
export function ensurePrivateDir(dir: string): void {
  makeDirs(dir, 0o700);
  fs.chmodSync(dir, 0o700);
}

function writePrivate(file: string, text: string, mode: number): void {
  writeFileDurable(file, text);
  fs.chmodSync(file, mode);
}

/** Loads the identity in `dir`, creating it (and the directory) on first use. */
export function loadOrCreateIdentity(dir: string): { identity: ServerIdentity; created: boolean } {
  ensurePrivateDir(dir);
  const serverFile = path.join(dir, SERVER_FILE);
  const privateFile = path.join(dir, PRIVATE_FILE);
  const publicFile = path.join(dir, PUBLIC_FILE);
  if (!fs.existsSync(serverFile)) {
    const pair = generateRsaKeyPair(2048);
    const id = newIdentityId();
    // The key first: a server.json without its key would be an identity that cannot sign.
    writePrivate(privateFile, pair.privatePem, 0o600);
    writePrivate(publicFile, pair.publicPem, 0o644);
    writePrivate(serverFile, JSON.stringify({ id: idToHex(id) }, null, 2) + '\n', 0o600);
    return { identity: { id, privateKey: pair.privateKey, publicKey: pair.publicKey, publicPem: pair.publicPem }, created: true };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(serverFile, 'utf8'));
  } catch (e) {
    throw new Error(`${serverFile}: not valid JSON (${(e as Error).message})`);
  }
  const id = hexToId((parsed as { id?: unknown } | null)?.id);
  if (id === null) throw new Error(`${serverFile}: field "id" must be 16 hex digits`);
  let privateKey: RsaPrivateKey;
  try {
    privateKey = parsePrivateKeyPem(fs.readFileSync(privateFile, 'utf8'));
  } catch (e) {
    throw new Error(`${privateFile}: ${(e as Error).message}`);
  }
  const publicPem = publicKeyToPem(privateKey.publicKey);
  return { identity: { id, privateKey, publicKey: privateKey.publicKey, publicPem }, created: false };
}
