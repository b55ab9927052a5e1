/**
 * Downloads over the ECMA-419 HTTP client (`device.network.http` / `https`, see network-config.ts): the body
 * is handed on in the pieces the socket delivers, never held whole.
 *
 * Stalls are bounded in seconds, not per byte (as on Node, hosts/node/downloader.ts): every STALL_WINDOW_MS the
 * download must have an answer and, once the body flows, at least MIN_BYTES_PER_WINDOW of it; a server that
 * drips a byte every two seconds is cut off after one window ('unreachable' before the answer, 'file' during the
 * body), not after MAX_MS, which bounds the whole download. A server that stops sending would otherwise hold the
 * download, and with it every later update, until the device restarts.
 *
 * Redirects are not followed (the SDK's HTTP client does not, and neither does this): a 3xx answer ends the
 * download as an HTTP error with its status. So a download never moves to another scheme, nor from a public URL
 * into the device's own network (loopback, link-local, private addresses), which the Node downloader checks
 * when it follows one.
 *
 * With a DownloadControl, control.stop() ends the download at once (its connection closed), with error
 * 'aborted': the agent stops a download that a newer initiate replaces.
 *
 * The body goes to onChunk in pieces of at most READ_BYTES, all views of one buffer that the next piece
 * overwrites (the Downloader contract: a piece is valid during the call only).
 */
import Timer from 'timer';
import type { DownloadControl, Downloader, DownloadResult } from '../../modules/agent/host.js';

/** The stall window (as on Node). */
export const STALL_WINDOW_MS = 30 * 1000;
/** Body bytes each stall window must bring (as on Node). */
export const MIN_BYTES_PER_WINDOW = 4096;
export const MAX_MS = 60 * 60 * 1000;

interface HttpRequest {
  /** Fills `into` (at most its length, at most what is readable); the number of bytes read. */
  read(into: Uint8Array): number | undefined;
}

/**
 * The body is read into one buffer of this size, reused for every piece: reading `count` bytes as a new
 * ArrayBuffer would put a copy of each TLS record (up to 4 KiB, or 16 KiB from a server that ignores
 * max_fragment_length) in the heap beside the record itself.
 */
export const READ_BYTES = 1024;

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
  download(url: string, onChunk: (chunk: Uint8Array) => void, control?: DownloadControl): Promise<DownloadResult> {
    return new Promise((resolve) => {
      const m = /^(https?):\/\/([^/:]+)(?::(\d+))?(\/.*)?$/.exec(url);
      if (m === null) return resolve({ ok: false, error: 'unreachable', message: 'bad url' });
      const network = (globalThis as unknown as { device: { network: Record<string, HttpClientConfig> } }).device.network;
      const config = network[m[1]];
      let done = false;
      let answered = false;
      let bytes = 0;
      let atWindowStart = 0;
      let client: InstanceType<HttpClientConfig['io']> | null = null;
      let window: Timer | undefined;
      const buf = new Uint8Array(READ_BYTES);
      const stalled = (why: string): DownloadResult =>
        answered ? { ok: false, error: 'file', message: why } : { ok: false, error: 'unreachable', message: why };
      const check = (): void => {
        if (!answered) return finish(stalled(`no answer within ${STALL_WINDOW_MS} ms`));
        if (bytes - atWindowStart < MIN_BYTES_PER_WINDOW) return finish(stalled(`stalled: ${bytes - atWindowStart} bytes in ${STALL_WINDOW_MS} ms`));
        atWindowStart = bytes;
        window = Timer.set(check, STALL_WINDOW_MS);
      };
      const overall = Timer.set(() => finish(stalled(`not done after ${MAX_MS} ms`)), MAX_MS);
      const finish = (r: DownloadResult): void => {
        if (done) return;
        done = true;
        Timer.clear(window);
        Timer.clear(overall);
        if (control !== undefined) control.stop = null;
        try {
          client?.close();
        } catch {
          // closed already
        }
        resolve(r);
      };
      window = Timer.set(check, STALL_WINDOW_MS);
      if (control !== undefined) control.stop = () => finish({ ok: false, error: 'aborted' });
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
            // A redirect (3xx) is not followed: an HTTP error like any other non-2xx answer.
            if (status < 200 || status > 299) finish({ ok: false, error: 'http_error', status });
          },
          onReadable(count) {
            while (count > 0 && !done) {
              const n = this.read(count < buf.length ? buf.subarray(0, count) : buf);
              if (n === undefined || n <= 0) return;
              count -= n;
              bytes += n;
              try {
                onChunk(n === buf.length ? buf : buf.subarray(0, n));
              } catch (e) {
                finish({ ok: false, error: 'file', message: String(e) });
              }
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
