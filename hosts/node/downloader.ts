/**
 * Downloader over node:http / node:https: streams the body chunk by chunk to the sink, follows up to 5
 * redirects, and sorts failures the way the agent reports them:
 *   non-2xx answer                                      -> http_error (status)
 *   DNS, connect, TLS, reset or timeout before an answer -> unreachable
 *   body cut off, Content-Length shortfall, a stall
 *   during the body, the sink throwing, or a body larger
 *   than maxBytes (declared or as it streams)            -> file
 *   a redirect to another scheme, or to a loopback,
 *   link-local or private address when the URL asked
 *   for was not one                                      -> http_error (the redirect's status)
 *   abort(), or the control's stop(), while running      -> aborted
 *
 * Stalls are bounded in seconds, not per byte: every stallWindowMs (default 30 s) the download must have an
 * answer and, once the body flows, at least minBytesPerWindow (default 4 KiB) of it; a server that drips a byte
 * every two seconds is cut off after one window, not after maxDurationMs.
 *
 * Redirects never move a download to another scheme (https to http would drop the server's authentication;
 * http to https is refused too, so that a URL means one thing), nor into the device's own network: a public
 * URL redirected to 127.0.0.1, 169.254.169.254, 10.x, 192.168.x, fc00::/7 ... (by literal address or by what the
 * name resolves to) would let a file server probe the device's neighbours. A URL that was private to begin
 * with may redirect within private addresses.
 *
 * maxDurationMs bounds the whole download (a slow drip never ends it otherwise): past it, 'unreachable' before an
 * answer, 'file' during the body.
 * maxBytes bounds what a server can make the device write: a body without Content-Length that never ends
 * would otherwise fill the disk (on a board, the OTA slot bounds it; here nothing else does). The default,
 * 64 MiB, is far above any firmware image this host runs; the download stops at the first chunk past it.
 */
import dns from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { DownloadControl, Downloader, DownloadResult } from '../../modules/agent/host.js';

export interface HttpDownloaderOptions {
  /** PEM trust anchor(s) for https (default: the system CAs). */
  ca?: string | Uint8Array;
  /**
   * The stall window (default 30 000 ms): a download without an answer after a window, or that received fewer
   * than minBytesPerWindow body bytes in one, fails. (`idleTimeoutMs` is the same, by its former name.)
   */
  stallWindowMs?: number;
  idleTimeoutMs?: number;
  /** Body bytes each stall window must bring (default 4096). */
  minBytesPerWindow?: number;
  /** Redirects followed (default 5). */
  maxRedirects?: number;
  /** The largest body accepted (default DEFAULT_MAX_BYTES); anything longer fails with error 'file'. */
  maxBytes?: number;
  /**
   * The longest a whole download may take, redirects included (default DEFAULT_MAX_DURATION_MS). The idle
   * timeout alone lets a server that drips a byte now and then hold the download, and with it every later
   * update, for ever.
   */
  maxDurationMs?: number;
  /** Which addresses count as private for the redirect rule (default isPrivateAddress). */
  privateAddress?: (address: string) => boolean;
}

/** One hour. */
export const DEFAULT_MAX_DURATION_MS = 60 * 60 * 1000;

/** 64 MiB. */
export const DEFAULT_MAX_BYTES = 64 * 1024 * 1024;

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** True for loopback, link-local, private, unique-local, CGNAT and unspecified addresses (IPv4 and IPv6). */
export function isPrivateAddress(address: string): boolean {
  let a = address.toLowerCase();
  if (a.startsWith('[') && a.endsWith(']')) a = a.slice(1, -1);
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (mapped) a = mapped[1];
  if (net.isIPv4(a)) {
    const [x, y] = a.split('.').map(Number);
    return x === 0 || x === 10 || x === 127 || (x === 169 && y === 254) || (x === 172 && y >= 16 && y <= 31) ||
      (x === 192 && y === 168) || (x === 100 && y >= 64 && y <= 127);
  }
  if (net.isIPv6(a)) {
    if (a === '::' || a === '::1') return true;
    const first = parseInt(a.split(':')[0] || '0', 16);
    return (first & 0xfe00) === 0xfc00 || (first & 0xffc0) === 0xfe80;
  }
  return false;
}

/** Whether a URL's host is private: an address literal that is, or "localhost". Names are checked on lookup. */
function privateHost(u: URL, isPrivate: (address: string) => boolean): boolean {
  const h = u.hostname.toLowerCase();
  return h === 'localhost' || h.endsWith('.localhost') || isPrivate(h);
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | dns.LookupAddress[], family?: number) => void;

/** dns.lookup that refuses names resolving to a private address. */
const publicLookup = (isPrivate: (address: string) => boolean) => (hostname: string, options: dns.LookupOptions, callback: LookupCallback): void => {
  dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
    if (err) return callback(err, '');
    const list = addresses as dns.LookupAddress[];
    const bad = list.find((x) => isPrivate(x.address));
    if (bad !== undefined) {
      const e = new Error(`${hostname} resolves to the private address ${bad.address}, refused after a redirect`) as NodeJS.ErrnoException;
      e.code = 'EPRIVATE';
      return callback(e, '');
    }
    if (options.all) return callback(null, list);
    return callback(null, list[0].address, list[0].family);
  });
};

export class HttpDownloader implements Downloader {
  private readonly options: HttpDownloaderOptions;
  private readonly running = new Set<() => void>();

  private readonly isPrivate: (address: string) => boolean;

  constructor(options: HttpDownloaderOptions = {}) {
    this.options = options;
    this.isPrivate = options.privateAddress ?? isPrivateAddress;
  }

  /** Stops every download in progress; each resolves with error 'aborted'. */
  abort(): void {
    for (const stop of [...this.running]) stop();
  }

  async download(url: string, onChunk: (chunk: Uint8Array) => void, control?: DownloadControl): Promise<DownloadResult> {
    // control.stop ends this download (the agent's update flow: a newer initiate replaces it), like abort().
    let stopped = false;
    let stopRequest: (() => void) | null = null;
    if (control !== undefined) {
      control.stop = () => {
        stopped = true;
        stopRequest?.();
      };
    }
    try {
      return await this.follow(url, onChunk, (stop) => {
        stopRequest = stop;
        if (stopped) stop();
      });
    } finally {
      if (control !== undefined) control.stop = null;
    }
  }

  private async follow(url: string, onChunk: (chunk: Uint8Array) => void, onRequest: (stop: () => void) => void): Promise<DownloadResult> {
    const max = this.options.maxRedirects ?? 5;
    const deadline = Date.now() + (this.options.maxDurationMs ?? DEFAULT_MAX_DURATION_MS);
    let current = url;
    // Whether the URL asked for was private: then redirects may stay within private addresses.
    let allowPrivate = true;
    try {
      allowPrivate = privateHost(new URL(url), this.isPrivate);
    } catch {
      // once() reports the bad URL
    }
    for (let hop = 0; ; hop++) {
      const r = await this.once(current, onChunk, deadline, hop === 0 || allowPrivate, onRequest);
      if (!('redirect' in r)) return r;
      if (hop === 0 && r.privatePeer) allowPrivate = true; // a name that resolved to a private address
      if (hop >= max) return { ok: false, error: 'http_error', status: r.status };
      const from = new URL(current);
      const to = new URL(r.redirect);
      // A URL means one scheme: never let the file server move the download to another.
      if (to.protocol !== from.protocol) return { ok: false, error: 'http_error', status: r.status };
      if (!allowPrivate && privateHost(to, this.isPrivate)) return { ok: false, error: 'http_error', status: r.status };
      current = r.redirect;
    }
  }

  private once(url: string, onChunk: (chunk: Uint8Array) => void, deadline: number, allowPrivate: boolean, onRequest: (stop: () => void) => void,
  ): Promise<DownloadResult | { redirect: string; status: number; privatePeer: boolean }> {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      return Promise.resolve({ ok: false, error: 'unreachable', message: `bad URL: ${url}` });
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') {
      return Promise.resolve({ ok: false, error: 'unreachable', message: `unsupported URL scheme: ${u.protocol}` });
    }
    const window = this.options.stallWindowMs ?? this.options.idleTimeoutMs ?? 30000;
    const minBytes = this.options.minBytesPerWindow ?? 4096;

    return new Promise((resolve) => {
      let settled = false;
      let answered = false;
      let overall: ReturnType<typeof setTimeout> | null = null;
      let stall: ReturnType<typeof setInterval> | null = null;
      let received = 0;
      let atWindowStart = 0;
      const finish = (r: DownloadResult | { redirect: string; status: number; privatePeer: boolean }) => {
        if (settled) return;
        settled = true;
        if (overall !== null) clearTimeout(overall);
        if (stall !== null) clearInterval(stall);
        this.running.delete(stop);
        resolve(r);
      };
      const stop = () => {
        finish({ ok: false, error: 'aborted' });
        req.destroy();
      };
      const options: https.RequestOptions = { method: 'GET', headers: { 'accept-encoding': 'identity' }, agent: false };
      if (!allowPrivate) options.lookup = publicLookup(this.isPrivate) as never;
      if (u.protocol === 'https:' && this.options.ca !== undefined) {
        options.ca = typeof this.options.ca === 'string' ? this.options.ca : Buffer.from(this.options.ca);
      }
      const req = (u.protocol === 'https:' ? https : http).request(u, options, (res) => {
        answered = true;
        const status = res.statusCode ?? 0;
        const location = res.headers.location;
        if (REDIRECTS.has(status) && location) {
          res.resume();
          req.destroy();
          let next: string;
          try {
            next = new URL(location, u).toString();
          } catch {
            finish({ ok: false, error: 'http_error', status });
            return;
          }
          finish({ redirect: next, status, privatePeer: this.isPrivate(req.socket?.remoteAddress ?? '') });
          return;
        }
        if (status < 200 || status > 299) {
          res.resume();
          req.destroy();
          finish({ ok: false, error: 'http_error', status });
          return;
        }
        const declared = res.headers['content-length'] !== undefined ? Number(res.headers['content-length']) : null;
        const limit = this.options.maxBytes ?? DEFAULT_MAX_BYTES;
        if (declared !== null && declared > limit) {
          res.resume();
          req.destroy();
          finish({ ok: false, error: 'file', message: `the image is ${declared} bytes; at most ${limit} are accepted` });
          return;
        }
        res.on('data', (chunk: Buffer) => {
          if (settled) return;
          received += chunk.byteLength;
          if (received > limit) {
            finish({ ok: false, error: 'file', message: `the body exceeds ${limit} bytes` });
            req.destroy();
            return;
          }
          try {
            // A plain Uint8Array view of the chunk: no Buffer reaches the agent.
            onChunk(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
          } catch (e) {
            finish({ ok: false, error: 'file', message: `sink refused a chunk: ${(e as Error).message}` });
            req.destroy();
          }
        });
        res.on('end', () => {
          if (declared !== null && Number.isFinite(declared) && received !== declared) {
            finish({ ok: false, error: 'file', message: `body cut off: ${received} of ${declared} bytes` });
          } else {
            finish({ ok: true, bytes: received });
          }
        });
        res.on('error', (e) => finish({ ok: false, error: 'file', message: `body cut off: ${e.message}` }));
        res.on('close', () => {
          if (!res.complete) finish({ ok: false, error: 'file', message: `body cut off after ${received} bytes` });
        });
      });
      stall = setInterval(() => {
        if (!answered) {
          finish({ ok: false, error: 'unreachable', message: `no answer within ${window} ms` });
          req.destroy();
        } else if (received - atWindowStart < minBytes) {
          finish({ ok: false, error: 'file', message: `stalled: ${received - atWindowStart} bytes in ${window} ms` });
          req.destroy();
        }
        atWindowStart = received;
      }, window);
      req.on('error', (e) => {
        if (answered) finish({ ok: false, error: 'file', message: e.message });
        else finish({ ok: false, error: 'unreachable', message: e.message });
      });
      overall = setTimeout(() => {
        const message = `the download took longer than ${this.options.maxDurationMs ?? DEFAULT_MAX_DURATION_MS} ms`;
        finish(answered ? { ok: false, error: 'file', message } : { ok: false, error: 'unreachable', message });
        req.destroy();
      }, Math.max(0, deadline - Date.now()));
      this.running.add(stop);
      onRequest(stop);
      req.end();
    });
  }
}
