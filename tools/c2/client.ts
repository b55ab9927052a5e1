/**
 * The CLI's side of the C2 HTTP API: finds the running server of a data directory (DIR/http.json, or an
 * explicit port), authenticates with DIR/cli-token, and turns failures into one-line messages.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { readCliToken } from './auth.js';
import { DEFAULT_HTTP_PORT, HTTP_FILE } from './app.js';

export class ClientError extends Error {
  /** The HTTP status, or 0 when the server could not be reached. */
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.name = 'ClientError';
    this.status = status;
  }
}

export interface ServerAddress {
  readonly base: string;
  readonly token: string | null;
}

/** Where the server of `dataDir` listens: --http PORT if given, else DIR/http.json, else the default port. */
export function serverAddress(dataDir: string, port?: number): ServerAddress {
  const token = readCliToken(dataDir);
  if (port !== undefined) return { base: `http://127.0.0.1:${port}`, token };
  try {
    const j = JSON.parse(fs.readFileSync(path.join(dataDir, HTTP_FILE), 'utf8')) as { url?: unknown };
    if (typeof j.url === 'string' && /^http:\/\/127\.0\.0\.1:\d+$/.test(j.url)) return { base: j.url, token };
  } catch {
    // not running (or never ran) from this directory
  }
  return { base: `http://127.0.0.1:${DEFAULT_HTTP_PORT}`, token };
}

export class C2Client {
  readonly base: string;
  private readonly token: string | null;

  constructor(address: ServerAddress) {
    this.base = address.base;
    this.token = address.token;
  }

  get<T = Record<string, unknown>>(p: string): Promise<T> {
    return this.request<T>('GET', p);
  }

  post<T = Record<string, unknown>>(p: string, body: unknown = {}): Promise<T> {
    return this.request<T>('POST', p, Buffer.from(JSON.stringify(body)), 'application/json');
  }

  upload<T = Record<string, unknown>>(p: string, file: string): Promise<T> {
    return this.request<T>('POST', p, fs.createReadStream(file), 'application/octet-stream', fs.statSync(file).size);
  }

  private request<T>(method: string, p: string, body?: Buffer | fs.ReadStream, type?: string, length?: number): Promise<T> {
    const url = new URL(p, this.base);
    return new Promise<T>((resolve, reject) => {
      const headers: Record<string, string | number> = { Accept: 'application/json' };
      if (this.token !== null) headers.Authorization = `Bearer ${this.token}`;
      if (type) headers['Content-Type'] = type;
      if (body instanceof Buffer) headers['Content-Length'] = body.length;
      else if (length !== undefined) headers['Content-Length'] = length;
      const req = http.request(url, { method, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let data: unknown = {};
          try {
            data = text ? JSON.parse(text) : {};
          } catch {
            data = { error: text.trim() };
          }
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) resolve(data as T);
          else if (status === 401 && this.token === null) {
            reject(new ClientError(401, `the C2 server at ${this.base} wants the CLI token, and there is none in the data directory: is --data the directory \`srup c2 serve\` uses?`));
          } else reject(new ClientError(status, (data as { error?: string }).error ?? `HTTP ${status}`));
        });
        res.on('error', reject);
      });
      req.on('error', (e: NodeJS.ErrnoException) => {
        if (e.code === 'ECONNREFUSED' || e.code === 'ECONNRESET' || e.code === 'EHOSTUNREACH') {
          reject(new ClientError(0, `no C2 server at ${this.base} — start it with \`srup c2 serve\``));
        } else reject(new ClientError(0, `cannot reach ${this.base}: ${e.message}`));
      });
      req.setTimeout(120000, () => req.destroy(new Error('timed out')));
      if (body === undefined) req.end();
      else if (Buffer.isBuffer(body)) req.end(body);
      else (body as fs.ReadStream).pipe(req);
    });
  }
}
