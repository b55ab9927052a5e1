/**
 * Downloader over node:http / node:https: streams the body chunk by chunk to the sink, follows up to 5
 * redirects, and sorts failures the way the agent reports them:
 *   non-2xx answer                                      -> http_error (status)
 *   DNS, connect, TLS, reset or timeout before an answer -> unreachable
 *   body cut off, Content-Length shortfall, idle timeout
 *   during the body, the sink throwing, or a body larger
 *   than maxBytes (declared or as it streams)            -> file
 *   a redirect from https to plain http                  -> http_error (the redirect's status)
 *   abort() while running                                -> aborted
 *
 * maxDurationMs bounds the whole download (a slow drip never ends it otherwise): past it, 'unreachable' before an
 * answer, 'file' during the body.
 * maxBytes bounds what a server can make the device write: a body without Content-Length that never ends
 * would otherwise fill the disk (on a board, the OTA slot bounds it; here nothing else does). The default,
 * 64 MiB, is far above any firmware image this host runs; the download stops at the first chunk past it.
 */
import http from 'node:http';
import https from 'node:https';
import type { Downloader, DownloadResult } from '../../modules/agent/host.js';

export interface HttpDownloaderOptions {
  /** PEM trust anchor(s) for https (default: the system CAs). */
  ca?: string | Uint8Array;
  /** No byte for this long (connecting, waiting for the answer, or within the body) fails it (default 30 000 ms). */
  idleTimeoutMs?: number;
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
}

/** One hour. */
export const DEFAULT_MAX_DURATION_MS = 60 * 60 * 1000;

/** 64 MiB. */
export const DEFAULT_MAX_BYTES = 64 * 1024 * 1024;

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

export class HttpDownloader implements Downloader {
  private readonly options: HttpDownloaderOptions;
  private readonly running = new Set<() => void>();

  constructor(options: HttpDownloaderOptions = {}) {
    this.options = options;
  }

  /** Stops every download in progress; each resolves with error 'aborted'. */
  abort(): void {
    for (const stop of [...this.running]) stop();
  }

  async download(url: string, onChunk: (chunk: Uint8Array) => void): Promise<DownloadResult> {
    const max = this.options.maxRedirects ?? 5;
    const deadline = Date.now() + (this.options.maxDurationMs ?? DEFAULT_MAX_DURATION_MS);
    let current = url;
    for (let hop = 0; ; hop++) {
      const r = await this.once(current, onChunk, deadline);
      if (!('redirect' in r)) return r;
      if (hop >= max) return { ok: false, error: 'http_error', status: r.status };
      // An https URL was chosen for a reason: never let the file server move the download to plain http.
      if (current.startsWith('https:') && !r.redirect.startsWith('https:')) {
        return { ok: false, error: 'http_error', status: r.status };
      }
      current = r.redirect;
    }
  }

  private once(url: string, onChunk: (chunk: Uint8Array) => void, deadline: number,
  ): Promise<DownloadResult | { redirect: string; status: number }> {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      return Promise.resolve({ ok: false, error: 'unreachable', message: `bad URL: ${url}` });
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') {
      return Promise.resolve({ ok: false, error: 'unreachable', message: `unsupported URL scheme: ${u.protocol}` });
    }
    const timeout = this.options.idleTimeoutMs ?? 30000;

    return new Promise((resolve) => {
      let settled = false;
      let answered = false;
      let overall: ReturnType<typeof setTimeout> | null = null;
      const finish = (r: DownloadResult | { redirect: string; status: number }) => {
        if (settled) return;
        settled = true;
        if (overall !== null) clearTimeout(overall);
        this.running.delete(stop);
        resolve(r);
      };
      const stop = () => {
        finish({ ok: false, error: 'aborted' });
        req.destroy();
      };
      const options: https.RequestOptions = { method: 'GET', headers: { 'accept-encoding': 'identity' }, agent: false };
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
          finish({ redirect: next, status });
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
        let received = 0;
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
      req.setTimeout(timeout, () => {
        req.destroy(new Error(`no data for ${timeout} ms`));
      });
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
      req.end();
    });
  }
}
