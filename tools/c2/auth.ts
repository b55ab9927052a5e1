/**
 * Operator authentication for the C2 console and its HTTP API.
 *
 * - The operator token: made on first start, printed once, stored only as an scrypt hash (meta 'operator_token').
 *   The console's login form exchanges it for a session.
 * - The CLI token: made on first start, written to DIR/cli-token (0600) for `srup c2 <command>` on the same
 *   machine, stored as an scrypt hash too (meta 'cli_token'). Sent as "Authorization: Bearer <token>".
 * - Sessions: a random 256-bit cookie value (HttpOnly, SameSite=Strict, Max-Age), stored as its SHA-256 with an
 *   expiry and a per-session CSRF token that every state-changing request must echo in X-CSRF-Token.
 */
import { createHash, randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { C2Store, SessionRecord } from './store.js';
import { writeFileDurable } from '../../hosts/node/durable.js';

export const CLI_TOKEN_FILE = 'cli-token';
export const SESSION_COOKIE = 'srup_c2_session';
export const DEFAULT_SESSION_TTL_MS = 12 * 60 * 60 * 1000;

const SCRYPT = { N: 16384, r: 8, p: 1, keylen: 32 };

export function newToken(): string {
  return randomBytes(24).toString('base64url');
}

export function sha256Hex(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

/** "scrypt$N$r$p$<salt b64>$<hash b64>" */
export function hashSecret(secret: string): string {
  const salt = randomBytes(16);
  const hash = scryptSync(secret, salt, SCRYPT.keylen, { N: SCRYPT.N, r: SCRYPT.r, p: SCRYPT.p });
  return ['scrypt', SCRYPT.N, SCRYPT.r, SCRYPT.p, salt.toString('base64'), hash.toString('base64')].join('$');
}

export function verifySecret(secret: string, stored: string): boolean {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [N, r, p] = parts.slice(1, 4).map(Number);
  const salt = Buffer.from(parts[4], 'base64');
  const want = Buffer.from(parts[5], 'base64');
  const got = scryptSync(secret, salt, want.length, { N, r, p, maxmem: 256 * N * r + 1024 * 1024 });
  return timingSafeEqual(got, want);
}

export function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export interface AuthOptions {
  sessionTtlMs?: number;
  now?: () => number;
}

export class Auth {
  private readonly registry: C2Store;
  private readonly dir: string;
  private readonly ttl: number;
  private readonly now: () => number;
  /** SHA-256 of bearer tokens already verified with scrypt (scrypt is deliberately slow). */
  private readonly verifiedBearer = new Set<string>();

  constructor(registry: C2Store, dir: string, options: AuthOptions = {}) {
    this.registry = registry;
    this.dir = dir;
    this.ttl = options.sessionTtlMs ?? DEFAULT_SESSION_TTL_MS;
    this.now = options.now ?? Date.now;
  }

  get sessionTtlMs(): number {
    return this.ttl;
  }

  /**
   * First start: makes the operator token (returned, to be printed once) and the CLI token file. Later starts
   * return null, unless `reset` asks for a new operator token (every session ends then).
   */
  setup(reset = false): { operatorToken: string | null } {
    let operatorToken: string | null = null;
    if (reset || this.registry.meta('operator_token') === null) {
      operatorToken = newToken();
      this.registry.setMeta('operator_token', hashSecret(operatorToken));
      if (reset) this.registry.purgeSessions(Number.MAX_SAFE_INTEGER);
    }
    const cliFile = path.join(this.dir, CLI_TOKEN_FILE);
    if (reset || this.registry.meta('cli_token') === null || !fs.existsSync(cliFile)) {
      const cli = newToken();
      writeFileDurable(cliFile, cli + '\n');
      fs.chmodSync(cliFile, 0o600);
      this.registry.setMeta('cli_token', hashSecret(cli));
      this.verifiedBearer.clear();
    }
    return { operatorToken };
  }

  checkOperatorToken(token: string): boolean {
    const stored = this.registry.meta('operator_token');
    return stored !== null && typeof token === 'string' && token.length > 0 && token.length < 256 && verifySecret(token, stored);
  }

  checkBearer(token: string): boolean {
    if (token.length === 0 || token.length > 256) return false;
    const key = sha256Hex(token);
    if (this.verifiedBearer.has(key)) return true;
    const stored = this.registry.meta('cli_token');
    if (stored === null || !verifySecret(token, stored)) return false;
    this.verifiedBearer.add(key);
    return true;
  }

  /** A new session: returns the cookie value (never stored) and the record. */
  createSession(): { cookie: string; session: SessionRecord } {
    const now = this.now();
    this.registry.purgeSessions(now);
    const cookie = randomBytes(32).toString('base64url');
    const session: SessionRecord = { id: sha256Hex(cookie), csrf: randomBytes(24).toString('base64url'), createdAt: now, expiresAt: now + this.ttl };
    this.registry.addSession(session);
    return { cookie, session };
  }

  /** The live session a cookie value names, or null (unknown or expired). */
  session(cookie: string): SessionRecord | null {
    if (cookie.length === 0 || cookie.length > 128) return null;
    const s = this.registry.session(sha256Hex(cookie));
    if (s === null) return null;
    if (s.expiresAt <= this.now()) {
      this.registry.deleteSession(s.id);
      return null;
    }
    return s;
  }

  endSession(cookie: string): void {
    this.registry.deleteSession(sha256Hex(cookie));
  }
}

/** Reads the CLI token of a data directory, or null if there is none. */
export function readCliToken(dir: string): string | null {
  try {
    return fs.readFileSync(path.join(dir, CLI_TOKEN_FILE), 'utf8').trim();
  } catch {
    return null;
  }
}
