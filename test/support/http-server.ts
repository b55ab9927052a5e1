/**
 * A local HTTP server for download tests: serves byte arrays by path, with Range support, and failures on
 * demand.
 *
 *   const srv = await startHttpServer();
 *   srv.serve('/fw.bin', bytes);                          // 200, Content-Length, Range
 *   srv.serve('/gone', bytes, { fail: 404 });             // any status
 *   srv.serve('/cut', bytes, { cutAfter: 1000 });         // sends 1000 bytes of the declared length, then drops
 *   srv.serve('/slow', bytes, { chunk: 256, delayMs: 20 });  // trickles the body
 *   srv.redirect('/old', '/fw.bin', 302);
 *   srv.url('/fw.bin'); srv.requests; await srv.close();
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Route {
  /** Answer with this status (and a short text body) instead of the bytes. */
  fail?: number;
  /** Send only this many body bytes, then destroy the socket (Content-Length still says the full size). */
  cutAfter?: number;
  /** Write the body in pieces of this size (default: all at once). */
  chunk?: number;
  /** Wait this long before each piece (and before the headers). */
  delayMs?: number;
  /** Omit Content-Length (chunked transfer encoding). */
  chunked?: boolean;
}

export interface TestHttpServer {
  readonly port: number;
  url(path: string): string;
  serve(path: string, body: Uint8Array, route?: Route): void;
  redirect(from: string, to: string, status?: number): void;
  /** Every request seen: method, path, Range header. */
  readonly requests: Array<{ method: string; path: string; range: string | null }>;
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startHttpServer(): Promise<TestHttpServer> {
  const routes = new Map<string, { body: Uint8Array; route: Route }>();
  const redirects = new Map<string, { to: string; status: number }>();
  const requests: TestHttpServer['requests'] = [];

  const server = http.createServer((req, res) => {
    void (async () => {
      const path = (req.url ?? '/').split('?')[0];
      const range = typeof req.headers.range === 'string' ? req.headers.range : null;
      requests.push({ method: req.method ?? '', path, range });
      const r = redirects.get(path);
      if (r) {
        res.writeHead(r.status, { location: r.to, 'content-length': 0 });
        res.end();
        return;
      }
      const entry = routes.get(path);
      if (!entry) {
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end('not found\n');
        return;
      }
      const { route } = entry;
      if (route.delayMs) await sleep(route.delayMs);
      if (route.fail) {
        res.writeHead(route.fail, { 'content-type': 'text/plain' });
        res.end(`status ${route.fail}\n`);
        return;
      }
      let body = entry.body;
      let status = 200;
      const headers: http.OutgoingHttpHeaders = { 'content-type': 'application/octet-stream', 'accept-ranges': 'bytes' };
      const m = range ? /^bytes=(\d*)-(\d*)$/.exec(range) : null;
      if (range && m && (m[1] !== '' || m[2] !== '')) {
        const size = body.length;
        let start: number;
        let end: number;
        if (m[1] === '') {
          start = Math.max(0, size - Number(m[2]));
          end = size - 1;
        } else {
          start = Number(m[1]);
          end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
        }
        if (start >= size || start > end) {
          res.writeHead(416, { 'content-range': `bytes */${size}` });
          res.end();
          return;
        }
        status = 206;
        headers['content-range'] = `bytes ${start}-${end}/${size}`;
        body = body.subarray(start, end + 1);
      }
      if (!route.chunked) headers['content-length'] = body.length;
      res.writeHead(status, headers);
      if (req.method === 'HEAD') {
        res.end();
        return;
      }
      const limit = route.cutAfter !== undefined ? Math.min(route.cutAfter, body.length) : body.length;
      const piece = route.chunk ?? Math.max(limit, 1);
      for (let off = 0; off < limit; off += piece) {
        if (route.delayMs && off > 0) await sleep(route.delayMs);
        if (res.destroyed) return;
        res.write(body.subarray(off, Math.min(off + piece, limit)));
      }
      if (route.cutAfter !== undefined && route.cutAfter < body.length) {
        // Let the bytes leave, then drop the connection mid-body.
        await sleep(20);
        req.socket.destroy();
        return;
      }
      res.end();
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;

  return {
    port,
    url: (p) => `http://127.0.0.1:${port}${p}`,
    serve: (p, body, route = {}) => { routes.set(p, { body, route }); },
    redirect: (from, to, status = 302) => { redirects.set(from, { to, status }); },
    requests,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
