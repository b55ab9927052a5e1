/** Reading inputs for the CLI: files, JSON arguments and PEM keys, each failure a one-line CliError (exit 2). */
import { readFileSync } from 'node:fs';
import { parsePrivateKeyPem, parsePublicKeyPem } from '../../crypto/keys.js';
import type { RsaPrivateKey, RsaPublicKey } from '../../crypto/types.js';
import { CliError } from './cli.js';

function reason(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  if (err && err.code === 'ENOENT') return 'no such file';
  if (err && err.code === 'EACCES') return 'permission denied';
  if (err && err.code === 'EISDIR') return 'is a directory';
  return err instanceof Error ? err.message : String(e);
}

export function readBytes(path: string, what = 'file'): Uint8Array {
  try {
    const b = readFileSync(path);
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  } catch (e) {
    throw new CliError(`cannot read ${what} ${path}: ${reason(e)}`, 2);
  }
}

export function readText(path: string, what = 'file'): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new CliError(`cannot read ${what} ${path}: ${reason(e)}`, 2);
  }
}

/** A JSON argument given inline, as `@FILE`, or as `-` for standard input. */
export function readJsonArg(arg: string, option: string): unknown {
  let text: string;
  let from: string;
  if (arg === '-') {
    text = readText('/dev/stdin', 'standard input');
    from = 'standard input';
  } else if (arg.startsWith('@')) {
    text = readText(arg.slice(1), `${option} file`);
    from = arg.slice(1);
  } else {
    text = arg;
    from = option;
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new CliError(`${from} is not valid JSON: ${e instanceof Error ? e.message : String(e)}`, 2);
  }
}

export function loadPublicKey(path: string, option: string): RsaPublicKey {
  const pem = readText(path, `${option} key`);
  try {
    return parsePublicKeyPem(pem);
  } catch (e) {
    throw new CliError(`${option} ${path} is not a usable RSA public key: ${e instanceof Error ? e.message : String(e)}`, 2);
  }
}

export function loadPrivateKey(path: string, option: string): RsaPrivateKey {
  const pem = readText(path, `${option} key`);
  try {
    return parsePrivateKeyPem(pem);
  } catch (e) {
    throw new CliError(`${option} ${path} is not a usable RSA private key: ${e instanceof Error ? e.message : String(e)}`, 2);
  }
}
