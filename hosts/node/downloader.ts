/**
 * Downloader over node:http / node:https: streams the body chunk by chunk to the sink, follows up to 5
 * redirects, and sorts failures the way the agent reports them:
 *   non-2xx answer                                      -> http_error (status)
 *   DNS, connect, TLS, reset or timeout before an answer -> unreachable
 *   body cut off, Content-Length shortfall, idle timeout
 *   during the body, or the sink throwing                -> file
 *   abort() while running                                -> aborted
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
}

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
    let current = url;
    for (let hop = 0; ; hop++) {
      const r = await this.once(current, onChunk);
      if (!('redirect' in r)) return r;
      if (hop >= max) return { ok: false, error: 'http_error', status: r.status };
      current = r.redirect;
    }
  }

  private once(url: string, onChunk: (chunk: Uint8Array) => void): Promise<DownloadResult | { redirect: string; status: number }> {
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
      const finish = (r: DownloadResult | { redirect: string; status: number }) => {
        if (settled) return;
        settled = true;
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
        let received = 0;
        res.on('data', (chunk: Buffer) => {
          if (settled) return;
          received += chunk.byteLength;
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
      this.running.add(stop);
      req.end();
    });
  }
}
