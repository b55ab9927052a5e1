/**
 * Downloads over the ECMA-419 HTTP client (`device.network.http` / `https`, see network-config.ts): the body
 * is handed on in the pieces the socket delivers, never held whole.
 */
import type { Downloader, DownloadResult } from '../../modules/agent/host.js';

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
      let bytes = 0;
      let client: InstanceType<HttpClientConfig['io']> | null = null;
      const finish = (r: DownloadResult): void => {
        if (done) return;
        done = true;
        try {
          client?.close();
        } catch {
          // closed already
        }
        resolve(r);
      };
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
            if (status < 200 || status > 299) finish({ ok: false, error: 'http_error', status });
          },
          onReadable(count) {
            const chunk = this.read(count);
            if (chunk === undefined || done) return;
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
