/**
 * Durable, atomic file replacement: after `writeFileDurable` returns, the file holds the new contents and
 * survives power loss; if the process dies at any point before, the file holds the old contents, complete.
 * (Write a temp file in the same directory, fsync it, rename it over the old one, fsync the directory.) `mode` is
 * the file's permissions (default 0o600, owner only). A write that fails removes its temp file.
 */
import fs from 'node:fs';
import path from 'node:path';
import { idHex16, parseIdHex } from '../../modules/srup/bytes.js';

export function writeFileDurable(file: string, data: string | Uint8Array, mode = 0o600): void {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.tmp`);
  try {
    const fd = fs.openSync(tmp, 'w', mode);
    try {
      fs.fchmodSync(fd, mode); // a temp file left by an earlier crash keeps its old mode otherwise
      const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
      let off = 0;
      while (off < bytes.byteLength) off += fs.writeSync(fd, bytes, off, bytes.byteLength - off);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (e) {
    try {
      fs.rmSync(tmp, { force: true }); // e.g. a full disk: leave no half-written temp file behind
    } catch {
      // the original error is the one to report
    }
    throw e;
  }
  fsyncDir(dir);
}

/**
 * Creates `dir` and any missing parents, one at a time (mode for the ones it creates). Node's own recursive
 * mkdir loops for minutes under /proc and similar file systems; this fails at once with the error of the first
 * directory that cannot be made.
 */
export function makeDirs(dir: string, mode = 0o777): void {
  const missing: string[] = [];
  let d = path.resolve(dir);
  for (;;) {
    let st: fs.Stats | null = null;
    try {
      st = fs.statSync(d);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    if (st !== null) {
      if (!st.isDirectory()) {
        const e = new Error(`${d} is not a directory`) as NodeJS.ErrnoException;
        e.code = 'ENOTDIR';
        throw e;
      }
      break;
    }
    missing.push(d);
    const up = path.dirname(d);
    if (up === d) break;
    d = up;
  }
  for (const m of missing.reverse()) {
    try {
      fs.mkdirSync(m, { mode });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
}

/** Makes a directory entry change (create, rename, unlink) durable. */
export function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** The file's text, or null if it does not exist. */
export function readTextIfExists(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/** A 64-bit id as 16 lowercase hex digits (the JSON and log form). */
export function idToHex(id: bigint): string {
  return idHex16(id);
}

/** Reads 1..16 hex digits as a u64 id; null if it is not that. */
export function hexToId(text: unknown): bigint | null {
  return parseIdHex(text, false);
}

/** A file of ours that is missing, unreadable or malformed; `field` names the bad JSON field, if one. */
export class HostFileError extends Error {
  readonly reason = 'bad_file';
  readonly file: string;
  readonly field: string | null;
  constructor(file: string, field: string | null, problem: string) {
    super(`${file}${field ? `: field "${field}"` : ''}: ${problem}`);
    this.name = 'HostFileError';
    this.file = file;
    this.field = field;
  }
}

/** Parses a JSON object file, or throws HostFileError naming it. */
export function readJsonObject(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new HostFileError(file, null, code === 'ENOENT' ? 'missing' : `cannot read (${code ?? String(e)})`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new HostFileError(file, null, `not valid JSON (${(e as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new HostFileError(file, null, 'must hold a JSON object');
  }
  return value as Record<string, unknown>;
}
