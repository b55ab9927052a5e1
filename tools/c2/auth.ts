/**
 * Operator authentication for the C2 console and its HTTP API.
 *
 * - The operator token: made on first start, printed once, stored only as its SHA-256 (meta 'operator_token').
 *   The console's login form exchanges it for a session.
 * - The CLI token: made on first start, written to DIR/cli-token (0600) for `srup c2 <command>` on the same
 *   machine, stored as its SHA-256 too (meta 'cli_token'). Sent as "Authorization: Bearer <token>".
 * - Sessions: a random 256-bit cookie value (HttpOnly, SameSite=Strict, Max-Age), stored as its SHA-256 with an
 *   expiry and a per-session CSRF token that every state-changing request must echo in X-CSRF-Token.
 *
 * Both tokens are 192 random bits: a fast digest is all they need (nobody can search 2^192 values), and a wrong
 * token then costs one SHA-256, so that wrong tokens cannot stall the server. Data directories made before kept
 * scrypt hashes: those are checked off the event loop (node:crypto scrypt runs on the thread pool), at most
 * SCRYPT_CONCURRENCY at a time, and replaced by the digest on the first success.
 *
 * Named operators (store.ts operators): each has a password, stored as an scrypt hash (a password is what a
 * person chooses and remembers, so its check must be slow; it runs off the event loop under the same
 * SCRYPT_CONCURRENCY limit), or a token made by the server (192 random bits, stored as its digest, checked like
 * the operator token). The data directory's operator token logs in as the operator 'admin'; the CLI token acts
 * as the operator 'cli'. Each session carries its operator's name, which the audit log records.
 *
 * Failed attempts are counted per client (its address): after MAX_FAILURES within FAILURE_WINDOW_MS a client's
 * further failures are answered 'limited' (HTTP 429) and its scrypt checks are not run at all. A right token is
 * still accepted: a digest check costs nothing, so the operator is never locked out by someone else's guessing.
 */
import { createHash, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { C2Store, SessionRecord } from './store.js';
import { writeFileDurable } from '../../hosts/node/durable.js';
import { AppError } from './errors.js';

export const CLI_TOKEN_FILE = 'cli-token';
export const SESSION_COOKIE = 'srup_c2_session';
export const DEFAULT_SESSION_TTL_MS = 12 * 60 * 60 * 1000;

/** Legacy scrypt checks running at once, and waiting; beyond that a check answers 'busy'. */
export const SCRYPT_CONCURRENCY = 2;
export const SCRYPT_QUEUE = 8;
/** Failed attempts a client may make within the window before its failures are answered 'limited'. */
export const MAX_FAILURES = 20;
export const FAILURE_WINDOW_MS = 60_000;

/** The operator the data directory's operator token logs in as, and the one the CLI token acts as. */
export const ADMIN_OPERATOR = 'admin';
export const CLI_OPERATOR = 'cli';
/** An operator's name: a lowercase letter, then up to 31 of a-z 0-9 _ . - */
export const OPERATOR_NAME = /^[a-z][a-z0-9_.-]{0,31}$/;
export const MIN_PASSWORD = 8;
export const MAX_PASSWORD = 1024;
/** scrypt cost of new password hashes (N = 2^15, r = 8, p = 1: 32 MiB, tens of ms). */
export const PASSWORD_SCRYPT = Object.freeze({ N: 1 << 15, r: 8, p: 1 });

export function newToken(): string {
  return randomBytes(24).toString('base64url');
}

export function sha256Hex(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

/** How a high-entropy token is stored: "sha256$<hex>". */
export function hashToken(token: string): string {
  return 'sha256$' + sha256Hex(token);
}

/** Equal strings, compared in time that depends only on their lengths. */
export function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The result of checking a token: 'limited' and 'busy' are refusals that did not look at the token. */
export type TokenCheck = 'ok' | 'wrong' | 'limited' | 'busy';

class Semaphore {
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(private readonly max: number, private readonly queue: number) {}
  /** Runs `job` when a slot is free; null when too many already wait. */
  run<T>(job: () => Promise<T>): Promise<T> | null {
    if (this.running >= this.max && this.waiting.length >= this.queue) return null;
    const start = (): Promise<T> => {
      this.running++;
      return job().finally(() => {
        this.running--;
        this.waiting.shift()?.();
      });
    };
    if (this.running < this.max) return start();
    return new Promise<void>((r) => this.waiting.push(r)).then(start);
  }
  get active(): number {
    return this.running;
  }
}

function scryptAsync(secret: string, salt: Buffer, keylen: number, o: { N: number; r: number; p: number; maxmem: number }): Promise<Buffer> {
  return new Promise((resolve, reject) => scrypt(secret, salt, keylen, o, (e, key) => (e ? reject(e) : resolve(key))));
}

/** Checks `secret` against a stored "sha256$…" digest or a legacy "scrypt$N$r$p$salt$hash". */
async function verifyStored(secret: string, stored: string, slow: Semaphore): Promise<'ok' | 'wrong' | 'busy'> {
  const parts = stored.split('$');
  if (parts.length === 2 && parts[0] === 'sha256') return safeEqual(sha256Hex(secret), parts[1]) ? 'ok' : 'wrong';
  if (parts.length !== 6 || parts[0] !== 'scrypt') return 'wrong';
  const [N, r, p] = parts.slice(1, 4).map(Number);
  if (![N, r, p].every((n) => Number.isSafeInteger(n) && n > 0) || N > 1 << 20) return 'wrong';
  const salt = Buffer.from(parts[4], 'base64');
  const want = Buffer.from(parts[5], 'base64');
  const run = slow.run(() => scryptAsync(secret, salt, want.length, { N, r, p, maxmem: 256 * N * r + 1024 * 1024 }));
  if (run === null) return 'busy';
  const got = await run;
  return got.length === want.length && timingSafeEqual(got, want) ? 'ok' : 'wrong';
}

/** The stored form of a password: "scrypt$N$r$p$salt$hash" (base64 salt and hash). */
export async function hashPassword(password: string, cost: { N: number; r: number; p: number } = PASSWORD_SCRYPT): Promise<string> {
  const salt = randomBytes(16);
  const key = await scryptAsync(password, salt, 32, { ...cost, maxmem: 256 * cost.N * cost.r + 1024 * 1024 });
  return `scrypt$${cost.N}$${cost.r}$${cost.p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

/** Checks an operator name for adding it; throws AppError('bad_argument') saying what is wrong. */
export function checkOperatorName(name: unknown): string {
  if (typeof name !== 'string' || !OPERATOR_NAME.test(name)) {
    throw new AppError('bad_argument', 'an operator name is a lowercase letter, then up to 31 of a-z 0-9 _ . -');
  }
  if (name === ADMIN_OPERATOR || name === CLI_OPERATOR) throw new AppError('bad_argument', `${name} is reserved (the operator token and the CLI token act as it)`);
  return name;
}

/** The result of a login: who it is, or why not. */
export type LoginCheck = { check: 'ok'; operator: string } | { check: Exclude<TokenCheck, 'ok'>; operator: null };

export interface AuthOptions {
  sessionTtlMs?: number;
  now?: () => number;
}

export class Auth {
  private readonly registry: C2Store;
  private readonly dir: string;
  private readonly ttl: number;
  private readonly now: () => number;
  private readonly slow = new Semaphore(SCRYPT_CONCURRENCY, SCRYPT_QUEUE);
  /** Per client: when its failures in the current window began, and how many. */
  private readonly failures = new Map<string, { since: number; count: number }>();
  /** A password hash no password matches, checked for unknown operator names (made on first use). */
  private unknownHash: Promise<string> | null = null;

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
      this.registry.setMeta('operator_token', hashToken(operatorToken));
      if (reset) this.registry.purgeSessions(Number.MAX_SAFE_INTEGER);
    }
    const cliFile = path.join(this.dir, CLI_TOKEN_FILE);
    if (reset || this.registry.meta('cli_token') === null || !fs.existsSync(cliFile)) {
      const cli = newToken();
      writeFileDurable(cliFile, cli + '\n');
      fs.chmodSync(cliFile, 0o600);
      this.registry.setMeta('cli_token', hashToken(cli));
    }
    return { operatorToken };
  }

  /**
   * The console's login: `{ operator, password }` for a named operator, or `{ token }` (a named operator's token,
   * or the data directory's operator token, which is 'admin'). `client` names the caller for the failure limit.
   */
  async login(body: Record<string, unknown>, client = ''): Promise<LoginCheck> {
    const refuse = (check: Exclude<TokenCheck, 'ok'>): LoginCheck => ({ check, operator: null });
    if (body.operator !== undefined) {
      const name = body.operator;
      const password = body.password;
      if (typeof name !== 'string' || typeof password !== 'string' || password.length === 0 || password.length > MAX_PASSWORD) {
        return refuse(this.failed(client) as Exclude<TokenCheck, 'ok'>);
      }
      const rec = OPERATOR_NAME.test(name) ? this.registry.operator(name) : null;
      if (this.limited(client)) return refuse('limited');
      if (rec === null || rec.password === null) {
        // As long as a wrong password of a real operator: the answer's time does not tell which names exist.
        this.unknownHash ??= hashPassword(randomBytes(16).toString('hex'));
        if ((await verifyStored(password, await this.unknownHash, this.slow)) === 'busy') return refuse('busy');
        return refuse(this.failed(client) as Exclude<TokenCheck, 'ok'>);
      }
      const result = await verifyStored(password, rec.password, this.slow);
      if (result === 'busy') return refuse('busy');
      if (result === 'wrong') return refuse(this.failed(client) as Exclude<TokenCheck, 'ok'>);
      this.registry.setLastLogin(rec.name, this.now());
      return { check: 'ok', operator: rec.name };
    }
    const token = body.token;
    if (typeof token === 'string' && token.length > 0 && token.length <= 256) {
      // A named operator's token: one digest and one indexed lookup.
      const named = this.registry.operatorByToken(hashToken(token));
      if (named !== null) {
        this.registry.setLastLogin(named.name, this.now());
        return { check: 'ok', operator: named.name };
      }
    }
    const check = await this.checkOperatorToken(token, client);
    if (check !== 'ok') return refuse(check);
    this.registry.setMeta('admin_last_login', String(this.now()));
    return { check: 'ok', operator: ADMIN_OPERATOR };
  }

  /**
   * Adds a named operator: with `password` (at least MIN_PASSWORD characters, stored as its scrypt hash), or
   * without, when the server makes a token, returned once (only its digest is stored).
   */
  async addOperator(name: unknown, password?: unknown): Promise<{ name: string; token?: string }> {
    const n = checkOperatorName(name);
    if (password !== undefined && password !== null) {
      if (typeof password !== 'string' || password.length < MIN_PASSWORD || password.length > MAX_PASSWORD) {
        throw new AppError('bad_argument', `a password is ${MIN_PASSWORD} to ${MAX_PASSWORD} characters`);
      }
    }
    if (this.registry.operator(n) !== null) throw new AppError('operator_exists', `there is an operator ${n} already`);
    if (typeof password === 'string') {
      const hash = await hashPassword(password);
      if (this.registry.operator(n) !== null) throw new AppError('operator_exists', `there is an operator ${n} already`);
      this.registry.addOperator({ name: n, password: hash, token: null }, this.now());
      return { name: n };
    }
    const token = newToken();
    this.registry.addOperator({ name: n, password: null, token: hashToken(token) }, this.now());
    return { name: n, token };
  }

  /** The operators: 'admin' (the operator token) first, then the named ones. */
  operators(): { name: string; createdAt: number | null; lastLogin: number | null; login: 'token' | 'password' }[] {
    const adminLogin = this.registry.meta('admin_last_login');
    return [
      { name: ADMIN_OPERATOR, createdAt: null, lastLogin: adminLogin === null ? null : Number(adminLogin), login: 'token' as const },
      ...this.registry.operators().map((o) => ({ name: o.name, createdAt: o.createdAt, lastLogin: o.lastLogin, login: o.password !== null ? ('password' as const) : ('token' as const) })),
    ];
  }

  /** Removes a named operator and ends its sessions (their ids are returned). 'admin' cannot be removed. */
  removeOperator(name: string): string[] {
    if (name === ADMIN_OPERATOR || name === CLI_OPERATOR) throw new AppError('bad_argument', `${name} cannot be removed (reset the token instead)`);
    const sessions = this.registry.sessionsOf(name);
    if (!this.registry.removeOperator(name)) throw new AppError('unknown_operator', `there is no operator ${name}`);
    return sessions;
  }

  /** Checks the operator token (the console's login); `client` names the caller for the failure limit. */
  checkOperatorToken(token: unknown, client = ''): Promise<TokenCheck> {
    return this.check('operator_token', token, client);
  }

  /** Checks the CLI's bearer token. */
  checkBearer(token: unknown, client = ''): Promise<TokenCheck> {
    return this.check('cli_token', token, client);
  }

  /** Legacy scrypt checks running now (for tests: never above SCRYPT_CONCURRENCY). */
  get slowChecksRunning(): number {
    return this.slow.active;
  }

  private async check(meta: 'operator_token' | 'cli_token', token: unknown, client: string): Promise<TokenCheck> {
    const stored = this.registry.meta(meta);
    if (stored === null || typeof token !== 'string' || token.length === 0 || token.length > 256) return this.failed(client);
    const fast = stored.startsWith('sha256$');
    // A limited client still gets a right token through the digest; it no longer gets scrypt runs.
    if (!fast && this.limited(client)) return 'limited';
    const result = await verifyStored(token, stored, this.slow);
    if (result === 'busy') return 'busy';
    if (result === 'wrong') return this.failed(client);
    if (!fast && this.registry.meta(meta) === stored) this.registry.setMeta(meta, hashToken(token));
    return 'ok';
  }

  private limited(client: string): boolean {
    const f = this.failures.get(client);
    return f !== undefined && this.now() - f.since < FAILURE_WINDOW_MS && f.count >= MAX_FAILURES;
  }

  private failed(client: string): TokenCheck {
    const now = this.now();
    let f = this.failures.get(client);
    if (f === undefined || now - f.since >= FAILURE_WINDOW_MS) {
      if (this.failures.size >= 10_000) this.failures.clear(); // bounded: a table of clients, not of attempts
      f = { since: now, count: 0 };
      this.failures.set(client, f);
    }
    f.count++;
    return f.count > MAX_FAILURES ? 'limited' : 'wrong';
  }

  /** A new session of `operator`: returns the cookie value (never stored) and the record. */
  createSession(operator: string = ADMIN_OPERATOR): { cookie: string; session: SessionRecord } {
    const now = this.now();
    this.registry.purgeSessions(now);
    const cookie = randomBytes(32).toString('base64url');
    const session: SessionRecord = { id: sha256Hex(cookie), csrf: randomBytes(24).toString('base64url'), operator, createdAt: now, expiresAt: now + this.ttl };
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
