/**
 * Downloads over the ECMA-419 HTTP client (`device.network.http` / `https`, see network-config.ts): the body
 * is handed on in the pieces the socket delivers, never held whole.
 *
 * A server that stops sending would otherwise hold the download, and with it every later update (the agent
 * takes one at a time), until the device restarts: IDLE_MS without an answer or without body data ends it
 * ('unreachable' before the answer, 'file' during the body), and so does MAX_MS in all.
 */
import Timer from 'timer';
import type { Downloader, DownloadResult } from '../../modules/agent/host.js';

export const IDLE_MS = 60 * 1000;
export const MAX_MS = 60 * 60 * 1000;

interface HttpRequest {
  read(count: number): ArrayBuffer | undefined;
}

interface HttpClientConfig {
  io: new (options: Record<string, unknown>) => {
    request(options: {
      path: string;
      method?: string;
      headers?: Map<string, string>;
      onHeaders?: (this: HttpRequest, status: number, headers: Map<string, string>) => void;
      onReadable?: (this: HttpRequest, count: number) => void;
      onDone?: (this: HttpRequest, error?: unknown) => void;
    }): HttpRequest;
    close(): void;
  };
  [k: string]: unknown;
}

export class HttpDownloader implements Downloader {
  download(url: string, onChunk: (chunk: Uint8Array) => void): Promise<DownloadResult> {
    return new Promise((resolve) => {
      const m = /^(https?):\/\/([^/:]+)(?::(\d+))?(\/.*)?$/.exec(url);
      if (m === null) return resolve({ ok: false, error: 'unreachable', message: 'bad url' });
      const network = (globalThis as unknown as { device: { network: Record<string, HttpClientConfig> } }).device.network;
      const config = network[m[1]];
      let done = false;
      let answered = false;
      let bytes = 0;
      let client: InstanceType<HttpClientConfig['io']> | null = null;
      let idle: Timer | undefined;
      const stalled = (why: string): DownloadResult =>
        answered ? { ok: false, error: 'file', message: why } : { ok: false, error: 'unreachable', message: why };
      const watch = (): void => {
        Timer.clear(idle);
        idle = Timer.set(() => finish(stalled(`no data for ${IDLE_MS} ms`)), IDLE_MS);
      };
      const overall = Timer.set(() => finish(stalled(`not done after ${MAX_MS} ms`)), MAX_MS);
      const finish = (r: DownloadResult): void => {
        if (done) return;
        done = true;
        Timer.clear(idle);
        Timer.clear(overall);
        try {
          client?.close();
        } catch {
          // closed already
        }
        resolve(r);
      };
      watch();
      try {
        client = new config.io({
          ...config,
          host: m[2],
          port: m[3] ? Number(m[3]) : m[1] === 'https' ? 443 : 80,
          onError: () => finish({ ok: false, error: 'unreachable', message: 'connection failed' }),
        });
        client.request({
          path: m[4] ?? '/',
          onHeaders(status) {
            answered = true;
            watch();
            if (status < 200 || status > 299) finish({ ok: false, error: 'http_error', status });
          },
          onReadable(count) {
            const chunk = this.read(count);
            if (chunk === undefined || done) return;
            watch();
            bytes += chunk.byteLength;
            try {
              onChunk(new Uint8Array(chunk));
            } catch (e) {
              finish({ ok: false, error: 'file', message: String(e) });
            }
          },
          onDone(error) {
            if (error) finish({ ok: false, error: 'unreachable', message: String(error) });
            else finish({ ok: true, bytes });
          },
        });
      } catch (e) {
        finish({ ok: false, error: 'unreachable', message: String(e) });
      }
    });
  }
}
