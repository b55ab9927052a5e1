/**
 * The console's HTTP server on 127.0.0.1: static console files, the JSON API, Server-Sent Events, and the
 * campaign images (with Range support) that devices download.
 *
 * Security: the API needs a session cookie (from POST /api/login with the operator token) or the CLI's bearer
 * token, else 401. Every state-changing request made with a cookie must come from the console's own origin
 * (Origin, or Referer when there is no Origin) and carry the session's CSRF token in X-CSRF-Token, else 403.
 * The Host header must name this server (defeats DNS rebinding). Images are public: devices have no session.
 *
 * Operators: each authenticated request runs on behalf of its operator (the session's, or 'cli' for the bearer
 * token): a route handler finds the name in ctx.operator, records what it did with app.record(ctx.operator, ...),
 * and the messages it causes are audited with the name (app.runAs).
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { isC2Error, type C2ErrorReason } from '../../modules/c2/errors.js';
import { isDeviceProfile } from '../../modules/c2/registry.js';
import { idToHex } from '../../hosts/node/durable.js';
import { AppError, parseDeviceId, type AppErrorCode, type AppEvent, type ConsoleApp } from './api.js';
import { CLI_OPERATOR, SESSION_COOKIE, safeEqual, sha256Hex, type TokenCheck } from './auth.js';
import { parseDeviceQuery } from './fleet.js';
import { CSV_HEADER, csvLine, isFilteredAuditQuery, parseAuditQuery } from './audit-log.js';
import { CampaignError, MAX_IMAGE_BYTES, checkImageName, parseCampaignRequest, storeStream, type CampaignErrorCode } from './campaigns.js';
import { StoreError, type StoreErrorReason } from './store.js';
import { consoleAsset } from './assets.js';

/**
 * The one place where a refusal becomes an HTTP status: every code of the engine (C2Error), the application
 * (AppError), campaigns (CampaignError) and the console's store (StoreError). The errors themselves carry no
 * HTTP status.
 */
const ERROR_STATUS: Record<C2ErrorReason | AppErrorCode | CampaignErrorCode | StoreErrorReason, number> = {
  unknown_device: 404,
  not_joined: 409,
  no_pending_join: 409,
  join_expired: 409,
  unknown_update: 404,
  bad_update_state: 409,
  duplicate_token: 409,
  bad_argument: 400,
  timeout: 504,
  device_removed: 409,
  stopped: 503,
  publish_failed: 502,
  already_accepted: 409,
  unknown_operator: 404,
  operator_exists: 409,
  unknown_image: 404,
  unknown_campaign: 404,
  unknown_target: 404,
  not_retryable: 409,
  image_too_large: 413,
  image_fetch_failed: 502,
  image_fetch_timeout: 504,
  bad_campaign_state: 409,
  image_in_use: 409,
  image_missing: 409,
};

/** The HTTP status of a refusal by its code (500 for a code the table does not know). */
export function errorStatus(code: keyof typeof ERROR_STATUS): number {
  return ERROR_STATUS[code] ?? 500;
}

const MAX_JSON = 1024 * 1024;
/**
 * What the server holds for one event-stream reader that does not keep up: a reader whose unsent events pass
 * this is dropped (its connection closed; the console reconnects and reloads the state). Events are small (no
 * bulk payloads, see eventJson), so a reader that reads never comes near it.
 */
export const MAX_SSE_BUFFER = 256 * 1024;

class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly reason?: string) {
    super(message);
  }
}

type Handler = (ctx: Ctx) => Promise<unknown> | unknown;

interface Ctx {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  params: string[];
  url: URL;
  body: () => Promise<Record<string, unknown>>;
  /** The operator making the request ('cli' for the CLI's bearer token; '' on a route without authentication). */
  operator: string;
}

interface Route {
  method: string;
  pattern: RegExp;
  auth: boolean;
  handler: Handler;
}

/** Who is asking, for the per-client limit on failed token checks. */
function clientOf(req: http.IncomingMessage): string {
  return req.socket.remoteAddress ?? '';
}

/** Throws the HTTP answer for a token check that did not pass. */
function tokenRefusal(check: TokenCheck, wrong: string): void {
  if (check === 'ok') return;
  if (check === 'limited') throw new HttpError(429, 'too many failed attempts; wait a minute', 'rate_limited');
  if (check === 'busy') throw new HttpError(503, 'too many token checks at once; try again', 'busy');
  throw new HttpError(401, wrong, 'unauthorized');
}

function parseCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0) out.set(part.slice(0, i).trim(), part.slice(i + 1).trim());
  }
  return out;
}

const SECURITY_HEADERS: Record<string, string> = {
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'same-origin',
  'X-Frame-Options': 'DENY',
  'Content-Security-Policy':
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
};

export class ConsoleHttp {
  private readonly app: ConsoleApp;
  private readonly server: http.Server;
  private readonly routes: Route[] = [];
  /**
   * Open event streams, with when their session ends (Infinity for the CLI's bearer token) and the session's
   * id (null for the bearer token), so that logging out ends the session's streams at once.
   */
  private readonly sse = new Map<http.ServerResponse, { until: number; session: string | null }>();
  private port: number;
  private heartbeat: ReturnType<typeof setInterval> | null = null;
  private offApp: (() => void) | null = null;

  constructor(app: ConsoleApp, options: { port: number }) {
    this.app = app;
    this.port = options.port;
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((e: unknown) => this.fail(res, e));
    });
    this.server.keepAliveTimeout = 5000;
    this.defineRoutes();
  }

  get origin(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const onError = (e: NodeJS.ErrnoException) => {
        reject(e.code === 'EADDRINUSE' ? new Error(`port ${this.port} on 127.0.0.1 is in use (another C2 server?)`) : e);
      };
      this.server.once('error', onError);
      this.server.listen(this.port, '127.0.0.1', () => {
        this.server.off('error', onError);
        resolve();
      });
    });
    this.port = (this.server.address() as AddressInfo).port;
    this.offApp = this.app.on((e) => this.broadcast(e));
    this.heartbeat = setInterval(() => {
      const now = Date.now();
      for (const [res, { until }] of this.sse) {
        if (until <= now) {
          // The session ended: the stream ends too (the page then finds it must log in again).
          this.sse.delete(res);
          res.end();
        } else this.write(res, ': keep-alive\n\n');
      }
    }, 15000);
    this.heartbeat.unref();
  }

  async close(): Promise<void> {
    this.offApp?.();
    if (this.heartbeat) clearInterval(this.heartbeat);
    for (const res of this.sse.keys()) res.end();
    this.sse.clear();
    if (!this.server.listening) return;
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  // ============================================================================================ plumbing

  private allowedOrigins(): string[] {
    return [`http://127.0.0.1:${this.port}`, `http://localhost:${this.port}`, `http://[::1]:${this.port}`];
  }

  private hostOk(req: http.IncomingMessage): boolean {
    const host = req.headers.host ?? '';
    return this.allowedOrigins().some((o) => o.slice('http://'.length) === host);
  }

  /** The origin a browser request came from: Origin, or the origin of Referer; null when neither is sent. */
  private requestOrigin(req: http.IncomingMessage): string | null {
    const origin = req.headers.origin;
    if (typeof origin === 'string' && origin.length > 0) return origin;
    const referer = req.headers.referer;
    if (typeof referer === 'string' && referer.length > 0) {
      try {
        return new URL(referer).origin;
      } catch {
        return 'invalid';
      }
    }
    return null;
  }

  private send(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string | string[]> = {}): void {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      ...SECURITY_HEADERS,
      'Content-Type': 'application/json; charset=utf-8',
      'Cache-Control': 'no-store',
      'Content-Length': Buffer.byteLength(text),
      ...headers,
    });
    res.end(text);
  }

  private fail(res: http.ServerResponse, e: unknown): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    let status = 500;
    let reason: string | undefined;
    const message = e instanceof Error ? e.message : String(e);
    if (e instanceof HttpError) {
      status = e.status;
      reason = e.reason;
    } else if (e instanceof AppError || e instanceof CampaignError) status = errorStatus(e.code);
    else if (isC2Error(e) || e instanceof StoreError) {
      status = errorStatus(e.reason);
      reason = e.reason;
    } else this.app.log('error', 'http_error', { why: e instanceof Error ? (e.stack ?? message) : message });
    this.send(res, status, { error: status === 500 ? 'internal error' : message, ...(reason ? { reason } : {}) });
  }

  private readJson(req: http.IncomingMessage): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const type = req.headers['content-type'] ?? '';
      if (!/^application\/json\b/.test(type)) {
        req.resume();
        reject(new HttpError(415, 'send application/json'));
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (c: Buffer) => {
        if (size > MAX_JSON) return;
        size += c.length;
        if (size > MAX_JSON) {
          // The rest is read and dropped (the server's request timeout bounds it): a reset connection would
          // lose the 413 answer.
          chunks.length = 0;
          reject(new HttpError(413, 'request body too large'));
          return;
        }
        chunks.push(c);
      });
      req.on('end', () => {
        if (size > MAX_JSON) return;
        try {
          const v: unknown = size === 0 ? {} : JSON.parse(Buffer.concat(chunks).toString('utf8'));
          if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
          resolve(v as Record<string, unknown>);
        } catch {
          reject(new HttpError(400, 'the body must be a JSON object'));
        }
      });
      req.on('error', reject);
    });
  }

  private route(method: string, pattern: string, auth: boolean, handler: Handler): void {
    this.routes.push({ method, pattern: new RegExp(`^${pattern}$`), auth, handler });
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const method = req.method ?? 'GET';

    if (url.pathname.startsWith('/images/') && (method === 'GET' || method === 'HEAD')) {
      // The name is never decoded: a campaign image is named by 64 hex digits and '.bin', nothing to escape.
      this.serveImage(req, res, url.pathname.slice('/images/'.length));
      return;
    }
    if (!this.hostOk(req)) throw new HttpError(421, 'this server answers only to 127.0.0.1 / localhost');

    let found: { r: Route; params: string[] } | null = null;
    let pathMatched = false;
    for (const r of this.routes) {
      const m = r.pattern.exec(url.pathname);
      if (m === null) continue;
      pathMatched = true;
      if (r.method === method || (r.method === 'GET' && method === 'HEAD')) {
        found = { r, params: m.slice(1) };
        break;
      }
    }
    if (found === null) throw new HttpError(pathMatched ? 405 : 404, pathMatched ? 'method not allowed' : 'not found');

    const changes = method !== 'GET' && method !== 'HEAD';
    let operator = '';
    if (found.r.auth) operator = await this.authorize(req, changes);
    else if (changes) this.checkOrigin(req);

    const ctx: Ctx = { req, res, params: found.params, url, body: () => this.readJson(req), operator };
    const handler = found.r.handler;
    const result = await (operator === '' ? handler(ctx) : this.app.runAs(operator, () => handler(ctx)));
    if (result !== undefined && !res.headersSent) this.send(res, 200, result);
  }

  /**
   * Throws 401 without valid credentials, 403 for a cross-site or CSRF-less state change; returns the operator
   * making the request.
   */
  private async authorize(req: http.IncomingMessage, changes: boolean): Promise<string> {
    const authz = req.headers.authorization;
    if (typeof authz === 'string' && authz.startsWith('Bearer ')) {
      tokenRefusal(await this.app.auth.checkBearer(authz.slice(7).trim(), clientOf(req)), 'bad token');
      // A bearer token is never sent by a browser on its own; a browser that sends one must still be same-origin.
      const origin = this.requestOrigin(req);
      if (origin !== null && !this.allowedOrigins().includes(origin)) throw new HttpError(403, 'cross-origin request refused', 'bad_origin');
      return CLI_OPERATOR;
    }
    const cookie = parseCookies(req.headers.cookie).get(SESSION_COOKIE);
    const session = cookie === undefined ? null : this.app.auth.session(cookie);
    if (session === null) throw new HttpError(401, 'log in first', 'unauthorized');
    if (!changes) return session.operator;
    this.checkOrigin(req);
    const csrf = req.headers['x-csrf-token'];
    if (typeof csrf !== 'string' || !safeEqual(csrf, session.csrf)) throw new HttpError(403, 'missing or wrong CSRF token', 'bad_csrf');
    return session.operator;
  }

  private checkOrigin(req: http.IncomingMessage): void {
    const origin = this.requestOrigin(req);
    if (origin === null || !this.allowedOrigins().includes(origin)) {
      throw new HttpError(403, 'cross-origin request refused (Origin or Referer must be this console)', 'bad_origin');
    }
  }

  // ============================================================================================ SSE

  private broadcast(e: AppEvent): void {
    if (this.sse.size === 0) return;
    const text = `event: ${e.kind}\ndata: ${JSON.stringify(e)}\n\n`;
    for (const res of this.sse.keys()) this.write(res, text);
  }

  /** Writes to one event stream, or drops the reader when what it has not read passes MAX_SSE_BUFFER. */
  private write(res: http.ServerResponse, text: string): void {
    if (res.writableLength + text.length > MAX_SSE_BUFFER) {
      this.sse.delete(res);
      this.app.log('warn', 'event_reader_dropped', { buffered: res.writableLength });
      res.destroy();
      return;
    }
    res.write(text);
  }

  /** Open event streams (for tests and diagnostics). */
  get eventReaders(): number {
    return this.sse.size;
  }

  private openEvents(ctx: Ctx): void {
    const { res, req } = ctx;
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      Connection: 'keep-alive',
    });
    res.write('retry: 2000\n\n');
    const cookie = parseCookies(req.headers.cookie).get(SESSION_COOKIE);
    const session = cookie === undefined ? null : this.app.auth.session(cookie);
    this.sse.set(res, session === null ? { until: Infinity, session: null } : { until: session.expiresAt, session: session.id });
    req.on('close', () => this.sse.delete(res));
  }

  /** Ends the event streams a session opened (it logged out). */
  private endStreams(sessionId: string): void {
    for (const [res, s] of this.sse) {
      if (s.session === sessionId) {
        this.sse.delete(res);
        res.end();
      }
    }
  }

  // ============================================================================================ images

  private serveImage(req: http.IncomingMessage, res: http.ServerResponse, name: string): void {
    const notFound = () => {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('not found\n');
    };
    if (!/^[0-9a-f]{64}\.bin$/.test(name) || this.app.store.campaignByFile(name) === null) return notFound();
    const file = path.join(this.app.dataDir, 'images', name);
    let size: number;
    try {
      size = fs.statSync(file).size;
    } catch {
      return notFound();
    }
    const base = {
      'Content-Type': 'application/octet-stream',
      'Accept-Ranges': 'bytes',
      ETag: `"${name.slice(0, 64)}"`,
      'Cache-Control': 'no-cache',
    };
    let start = 0;
    let end = size - 1;
    let status = 200;
    const range = req.headers.range;
    if (typeof range === 'string' && (req.headers['if-range'] === undefined || req.headers['if-range'] === base.ETag)) {
      const m = /^bytes=(\d*)-(\d*)$/.exec(range.trim());
      if (m === null || (m[1] === '' && m[2] === '')) {
        res.writeHead(416, { ...base, 'Content-Range': `bytes */${size}` });
        res.end();
        return;
      }
      if (m[1] === '') {
        start = Math.max(0, size - Number(m[2]));
      } else {
        start = Number(m[1]);
        if (m[2] !== '') end = Math.min(end, Number(m[2]));
      }
      if (start >= size || start > end) {
        res.writeHead(416, { ...base, 'Content-Range': `bytes */${size}` });
        res.end();
        return;
      }
      status = 206;
    }
    const headers: Record<string, string | number> = { ...base, 'Content-Length': end - start + 1 };
    if (status === 206) headers['Content-Range'] = `bytes ${start}-${end}/${size}`;
    res.writeHead(status, headers);
    if (req.method === 'HEAD' || size === 0) {
      res.end();
      return;
    }
    fs.createReadStream(file, { start, end }).on('error', () => res.destroy()).pipe(res);
  }

  // ============================================================================================ routes

  private defineRoutes(): void {
    const app = this.app;
    const ID = '([0-9a-fA-F]{1,16})';

    // --- console files (public: they hold no data)
    const asset = (name: string) => async ({ res }: Ctx) => {
      const a = await consoleAsset(name);
      res.writeHead(200, { ...SECURITY_HEADERS, 'Content-Type': a.type, 'Cache-Control': 'no-cache', 'Content-Length': a.body.length });
      res.end(a.body);
    };
    this.route('GET', '/', false, asset('index.html'));
    this.route('GET', '/console/app\\.js', false, asset('app.js'));
    this.route('GET', '/console/app\\.css', false, asset('app.css'));
    this.route('GET', '/console/challenge\\.js', false, asset('challenge.js'));

    // --- sessions
    this.route('POST', '/api/login', false, async ({ req, res, body }) => {
      const b = await body();
      const login = await app.auth.login(b, clientOf(req));
      if (login.check === 'wrong') await new Promise((r) => setTimeout(r, 200)); // slows guessing a little more
      tokenRefusal(login.check, b.operator !== undefined ? 'wrong operator name or password' : 'wrong token');
      const operator = login.operator as string;
      const { cookie, session } = app.auth.createSession(operator);
      const maxAge = Math.floor(app.auth.sessionTtlMs / 1000);
      this.send(res, 200, { csrf: session.csrf, expiresAt: session.expiresAt, operator }, {
        'Set-Cookie': `${SESSION_COOKIE}=${cookie}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${maxAge}`,
      });
      app.log('info', 'operator_login', { operator });
      app.record(operator, 'login', null, `${operator} logged in`);
      return undefined;
    });
    this.route('POST', '/api/logout', false, ({ req, res }) => {
      const cookie = parseCookies(req.headers.cookie).get(SESSION_COOKIE);
      if (cookie !== undefined) {
        app.auth.endSession(cookie);
        this.endStreams(sha256Hex(cookie));
      }
      this.send(res, 200, { ok: true }, { 'Set-Cookie': `${SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0` });
      return undefined;
    });
    this.route('GET', '/api/session', false, ({ req }) => {
      const cookie = parseCookies(req.headers.cookie).get(SESSION_COOKIE);
      const s = cookie === undefined ? null : app.auth.session(cookie);
      if (s === null) throw new HttpError(401, 'log in first', 'unauthorized');
      return { csrf: s.csrf, expiresAt: s.expiresAt, operator: s.operator };
    });

    // --- reading
    // With a cookie, the state carries the session's CSRF token too, so the console starts with one request.
    this.route('GET', '/api/state', true, ({ req }) => {
      const cookie = parseCookies(req.headers.cookie).get(SESSION_COOKIE);
      const s = cookie === undefined ? null : app.auth.session(cookie);
      return s === null ? app.state() : { ...app.state(), session: { csrf: s.csrf, expiresAt: s.expiresAt, operator: s.operator } };
    });
    // The console's start: the server, counts and pending joins (the device list is paged separately), with the
    // session's CSRF token like /api/state.
    this.route('GET', '/api/overview', true, ({ req }) => {
      const cookie = parseCookies(req.headers.cookie).get(SESSION_COOKIE);
      const s = cookie === undefined ? null : app.auth.session(cookie);
      return s === null ? app.overview() : { ...app.overview(), session: { csrf: s.csrf, expiresAt: s.expiresAt, operator: s.operator } };
    });
    this.route('GET', '/api/devices', true, ({ url }) => app.searchDevices(parseDeviceQuery(url.searchParams)));
    this.route('GET', '/api/tags', true, () => ({ tags: app.tags() }));
    this.route('GET', `/api/devices/${ID}`, true, ({ params }) => app.device(parseDeviceId(params[0])));
    this.route('GET', '/api/joins', true, () => ({ joins: app.joins() }));
    this.route('GET', '/api/campaigns', true, () => ({ campaigns: app.campaigns.list() }));
    this.route('GET', '/api/campaigns/(\\d+)', true, ({ params }) => {
      const c = app.campaigns.view(Number(params[0]));
      if (c === null) throw new HttpError(404, `no campaign ${params[0]}`);
      return c;
    });
    this.route('GET', '/api/audit\\.csv', true, async ({ url, res, operator }) => {
      const filter = parseAuditQuery(url.searchParams, false);
      res.writeHead(200, {
        ...SECURITY_HEADERS,
        'Content-Type': 'text/csv; charset=utf-8',
        'Content-Disposition': 'attachment; filename="audit.csv"',
        'Cache-Control': 'no-store',
      });
      res.write(CSV_HEADER.join(',') + '\r\n');
      let n = 0;
      // Read a chunk at a time and written as the client reads: the export never holds the log in memory.
      for (const e of app.auditAll(filter)) {
        n++;
        if (!res.write(csvLine(e))) {
          if (res.destroyed) return undefined;
          await new Promise<void>((resolve) => {
            res.once('drain', resolve);
            res.once('close', resolve);
          });
          if (res.destroyed || res.writableEnded) return undefined;
        }
      }
      res.end();
      app.log('info', 'audit_exported', { operator, entries: n });
      return undefined;
    });
    this.route('GET', '/api/audit', true, ({ url }) => {
      // The filtered, paged form; the old form (after, limit: the newest messages) answers as before.
      if (isFilteredAuditQuery(url.searchParams)) return app.auditLog(parseAuditQuery(url.searchParams));
      const after = Number(url.searchParams.get('after') ?? '0');
      const limit = Number(url.searchParams.get('limit') ?? '100');
      return {
        // A limit that is not a positive integer is the default (SQLite reads a negative LIMIT as "no limit").
        audit: app.audit(Number.isSafeInteger(after) && after > 0 ? after : 0, Number.isSafeInteger(limit) && limit > 0 ? limit : 100),
      };
    });
    this.route('GET', '/api/events', true, (ctx) => this.openEvents(ctx));

    // --- devices
    this.route('POST', '/api/devices', true, async ({ body, operator }) => {
      const b = await body();
      const id = parseDeviceId(b.id);
      const key = b.publicKey ?? b.key;
      if (typeof key !== 'string') throw new HttpError(400, 'publicKey (PEM) is required');
      if (b.profile !== undefined && b.profile !== '' && !isDeviceProfile(b.profile)) throw new HttpError(400, 'profile must be srup or reference');
      const view = app.addDevice(id, key, {
        palette: typeof b.palette === 'string' && b.palette !== '' ? b.palette : undefined,
        label: typeof b.label === 'string' ? b.label : undefined,
        profile: isDeviceProfile(b.profile) ? b.profile : undefined,
      });
      app.record(operator, 'add-device', id, `registered (profile ${view.profile})`);
      return view;
    });
    this.route('POST', `/api/devices/${ID}/profile`, true, async ({ params, body, operator }) => {
      const b = await body();
      const id = parseDeviceId(params[0]);
      const view = app.setProfile(id, b.profile);
      app.record(operator, 'profile', id, `profile ${view.profile}`);
      return view;
    });
    this.route('POST', `/api/devices/${ID}/meta`, true, async ({ params, body, operator }) => {
      const b = await body();
      const id = parseDeviceId(params[0]);
      const view = app.setDeviceMeta(id, b);
      const parts: string[] = [];
      if (b.label !== undefined) parts.push(`label ${view.label === null ? '(none)' : JSON.stringify(view.label)}`);
      if (b.tags !== undefined) parts.push(`tags ${view.tags.length === 0 ? '(none)' : view.tags.join(' ')}`);
      app.record(operator, 'meta', id, parts.join(', '));
      return view;
    });
    this.route('POST', `/api/devices/${ID}/remove`, true, ({ params, operator }) => {
      const id = parseDeviceId(params[0]);
      app.removeDevice(id);
      app.record(operator, 'remove', id, 'removed from the registry');
      return { ok: true, device: idToHex(id) };
    });
    /**
     * A command to a device, audited with its operator and outcome (a request refused for bad input changed
     * nothing and is not audited).
     */
    const op = (name: string, fn: (id: bigint, b: Record<string, unknown>) => Promise<unknown>, what: (b: Record<string, unknown>, result: unknown) => string = () => name) =>
      this.route('POST', `/api/devices/${ID}/${name}`, true, async ({ params, body, operator }) => {
        const id = parseDeviceId(params[0]);
        const b = await body();
        let result: unknown;
        try {
          result = await fn(id, b);
        } catch (e) {
          const status = e instanceof HttpError ? e.status : e instanceof AppError ? errorStatus(e.code) : isC2Error(e) ? errorStatus(e.reason) : 0;
          if (status !== 400) await app.recordAwaited(operator, name, id, `${what(b, undefined)}: failed (${e instanceof Error ? e.message : String(e)})`);
          throw e;
        }
        // Durable before the answer; on SQLite in the group commit, with no disk sync on the event loop.
        await app.recordAwaited(operator, name, id, `${what(b, result)}: done`);
        return { ok: true, device: idToHex(id), ...(result === undefined ? {} : (result as object)) };
      });
    op('approve', (id) => app.approve(id));
    op('refuse', (id) => app.refuse(id));
    op('join-command', (id) => app.joinCommand(id));
    op(
      'action',
      async (id, b) => {
        const actionId = Number(b.actionId);
        if (!Number.isInteger(actionId) || actionId < 0 || actionId > 255) throw new HttpError(400, 'actionId must be 0..255');
        // status null: the device does not answer actions (profile 'reference'); the broker took the action.
        return { status: await app.action(id, actionId) };
      },
      (b, r) => {
        const status = (r as { status?: number | null } | undefined)?.status;
        return `action ${String(b.actionId)}${typeof status === 'number' ? `, status 0x${status.toString(16).padStart(2, '0')}` : ''}`;
      },
    );
    op('data', (id, b) => app.sendData(id, String(b.dataId ?? ''), String(b.kind ?? 'string'), b.value), (b) => `data ${String(b.dataId ?? '')} (${String(b.kind ?? 'string')})`);
    op('id', async (id) => ({ identification: await app.requestId(id) }));
    op('terminate', (id) => app.terminate(id));
    op('deregister', (id) => app.deregister(id));

    // --- images (the library) and campaigns
    this.route('GET', '/api/images', true, () => ({ images: app.campaigns.images() }));
    this.route('POST', '/api/images', true, async ({ req, url, operator }) => {
      // Checked before the body is read: a bad name stores nothing.
      const meta = checkImageName(url.searchParams.get('name'), url.searchParams.get('version'));
      const length = Number(req.headers['content-length'] ?? '0');
      if (length > MAX_IMAGE_BYTES) throw new HttpError(413, 'the image is too large');
      const info = await storeStream(req, path.join(app.dataDir, 'images'));
      const { image, created } = app.campaigns.addImage(info, { ...meta, by: operator });
      app.log('info', 'image_uploaded', { file: info.file, size: info.size, image: image.id, created });
      app.record(operator, 'image.upload', null, `image ${image.id} ${JSON.stringify(image.name)} ${info.digest} (${info.size} bytes)${created ? '' : ', already in the library'}`);
      // `file` for clients that name the upload in a campaign's `file` (the body before the library).
      return { ...image, usedBy: app.store.campaignsByImage(image.id).length, created };
    });
    this.route('POST', '/api/images/(\\d+)/remove', true, ({ params, operator }) => {
      app.campaigns.removeImage(Number(params[0]));
      app.record(operator, 'image.remove', null, `removed image ${params[0]}`);
      return { ok: true };
    });
    this.route('POST', '/api/campaigns', true, async ({ body, operator }) => {
      const req = parseCampaignRequest(await body());
      const created = await app.campaigns.create({ ...req, createdBy: operator });
      app.record(operator, 'campaign.create', null, `campaign ${created.id} ${JSON.stringify(created.name)} to ${created.targets.length} device(s)`);
      return created;
    });
    const devicesOf = (b: Record<string, unknown>) => {
      if (b.devices === undefined) return undefined;
      if (!Array.isArray(b.devices)) throw new HttpError(400, 'devices must be a list of device ids');
      return b.devices.map((d) => parseDeviceId(d));
    };
    this.route('POST', '/api/campaigns/(\\d+)/retry', true, async ({ params, body, operator }) => {
      const devices = devicesOf(await body());
      const sent = app.campaigns.retry(Number(params[0]), devices);
      app.record(operator, 'campaign.retry', null, `campaign ${params[0]}: sent again to ${sent} device(s)`);
      return { ok: true, sent };
    });
    this.route('POST', '/api/campaigns/(\\d+)/activate', true, async ({ params, body, operator }) => {
      const devices = devicesOf(await body());
      const sent = app.campaigns.activate(Number(params[0]), devices);
      app.record(operator, 'campaign.activate', null, `campaign ${params[0]}: activate ${devices === undefined ? 'all' : devices.length} (${sent} sent)`);
      return { ok: true, sent };
    });
    this.route('POST', '/api/campaigns/(\\d+)/proceed', true, ({ params, operator }) => {
      const id = Number(params[0]);
      const sent = app.campaigns.proceed(id);
      app.record(operator, 'campaign.proceed', null, `campaign ${id}: next wave, ${sent} sent`);
      return { ok: true, sent, campaign: app.campaigns.view(id) };
    });
    this.route('POST', '/api/campaigns/(\\d+)/pause', true, ({ params, operator }) => {
      const view = app.campaigns.pause(Number(params[0]));
      app.record(operator, 'campaign.pause', null, `campaign ${params[0]} paused`);
      return view;
    });
    this.route('POST', '/api/campaigns/(\\d+)/resume', true, ({ params, operator }) => {
      const view = app.campaigns.resume(Number(params[0]));
      app.record(operator, 'campaign.resume', null, `campaign ${params[0]} resumed`);
      return view;
    });
    this.route('POST', '/api/campaigns/(\\d+)/cancel', true, ({ params, operator }) => {
      const view = app.campaigns.cancel(Number(params[0]));
      app.record(operator, 'campaign.cancel', null, `campaign ${params[0]} cancelled`);
      return view;
    });

    // --- operators
    this.route('GET', '/api/operators', true, () => ({ operators: app.auth.operators() }));
    this.route('POST', '/api/operators', true, async ({ body, operator }) => {
      const b = await body();
      const added = await app.auth.addOperator(b.name, b.password);
      app.record(operator, 'operator.add', null, `added operator ${added.name} (${added.token === undefined ? 'password' : 'token'})`);
      return added;
    });
    this.route('POST', '/api/operators/([a-z][a-z0-9_.-]{0,31})/remove', true, ({ params, operator }) => {
      for (const id of app.auth.removeOperator(params[0])) this.endStreams(id);
      app.record(operator, 'operator.remove', null, `removed operator ${params[0]}`);
      return { ok: true };
    });
  }
}
