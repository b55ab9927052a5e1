/**
 * Support for the C2 application tests: a whole stack on loopback (a private Mosquitto, the C2 server with its
 * console, virtual devices running the real agent), a small HTTP client that can forge headers, and Debian's
 * Chromium driven by playwright-core (tests skip with one notice where Chromium is absent).
 *
 *   const stack = await startStack({ devices: 3 });
 *   const { browser, page } = await openBrowser();          // null when Chromium is missing
 *   ... stack.app.url, stack.devices[0].presenter.current ...
 *   await stack.stop();
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { AgentEvent } from '../../modules/agent/agent.js';
import { C2App, type C2AppOptions } from '../../tools/c2/app.js';
import { provisionVirtualDevice, VirtualDevice } from '../../tools/c2/virtual.js';
import { startMosquitto, type Mosquitto } from './mosquitto.js';

export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

export function hasChromium(): boolean {
  return fs.existsSync(CHROMIUM);
}

let noticeShown = false;
/** Prints the one-line notice once and returns false when the browser tests cannot run here. */
export function browserAvailable(): boolean {
  if (hasChromium()) return true;
  if (!noticeShown) {
    noticeShown = true;
    process.stderr.write(`console browser tests skipped: no Chromium at ${CHROMIUM} (apt-get install -y chromium)\n`);
  }
  return false;
}

type BrowserContext = import('playwright-core').BrowserContext;
type Page = import('playwright-core').Page;

/** Chromium with a fresh profile directory (removed on close). */
export async function openBrowser(): Promise<{ context: BrowserContext; page: Page; close: () => Promise<void> }> {
  const { chromium } = await import('playwright-core');
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'c2-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  // A script error in the console fails no selector by itself: print it, so a failing test says why.
  page.on('pageerror', (e) => process.stderr.write(`console page error: ${e.stack ?? e.message}\n`));
  return {
    context,
    page,
    close: async () => {
      await context.close();
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

export interface Stack {
  readonly dir: string;
  readonly broker: Mosquitto;
  app: C2App;
  readonly devices: VirtualDevice[];
  /** Calls `fn` with every agent event of every device (synchronously, as the agent emits it). */
  onDeviceEvent(fn: (e: AgentEvent, device: VirtualDevice) => void): () => void;
  /** Stops the C2 server and starts it again on the same data directory and port. */
  restartApp(): Promise<void>;
  stop(): Promise<void>;
}

export interface StackOptions {
  devices?: number;
  /** Indices of devices whose downloads are corrupted. */
  corrupt?: number[];
  /**
   * Devices observe each other: an observer sees exactly what the joining device's presenter shows (after
   * `delayMs`, so a test can look at the pending join meanwhile).
   */
  observers?: { delayMs?: number };
  app?: Partial<C2AppOptions>;
}

export async function startStack(o: StackOptions = {}): Promise<Stack> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2-app-'));
  const broker = await startMosquitto();
  const appOptions: C2AppOptions = { dataDir: path.join(dir, 'c2'), brokerUrl: broker.url, httpPort: 0, log: () => undefined, ...o.app };
  let app = await C2App.start(appOptions);
  const port = Number(new URL(app.url).port);
  const devices: VirtualDevice[] = [];
  const listeners = new Set<(e: AgentEvent, device: VirtualDevice) => void>();
  for (let i = 0; i < (o.devices ?? 0); i++) {
    const p = provisionVirtualDevice(path.join(dir, 'devices', String(i)), {
      brokerUrl: broker.url,
      serverId: app.identity.id,
      serverPublicPem: app.identity.publicPem,
      firmware: { name: 'srup-virtual', version: '1.0.0' },
    });
    app.addDevice(p.id, p.publicPem, { label: `virtual ${i}` });
    devices.push(VirtualDevice.start(p.dir, {
      corruptDownloads: o.corrupt?.includes(i) === true,
      observe: o.observers
        ? async (joining) => {
            await new Promise((r) => setTimeout(r, o.observers?.delayMs ?? 0));
            const shown = devices.find((d) => d.id === joining)?.presenter.current;
            return shown ? new TextEncoder().encode(shown.secret) : null;
          }
        : undefined,
      onEvent: (e, d) => {
        for (const l of listeners) l(e, d);
      },
    }));
  }
  const stack: Stack = {
    dir,
    broker,
    app,
    devices,
    onDeviceEvent(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    async restartApp() {
      await stack.app.stop();
      app = await C2App.start({ ...appOptions, httpPort: port });
      stack.app = app;
    },
    async stop() {
      for (const d of devices) await d.close().catch(() => undefined);
      await stack.app.stop().catch(() => undefined);
      await broker.dispose().catch(() => undefined);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  return stack;
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Record<string, unknown>;
  text: string;
}

/** One HTTP request with exactly the headers given (Origin, Cookie, Host... may be forged). */
export function request(base: string, method: string, p: string, o: { headers?: Record<string, string>; json?: unknown; raw?: Uint8Array } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { ...o.headers };
    let body: Buffer | undefined;
    if (o.json !== undefined) {
      body = Buffer.from(JSON.stringify(o.json));
      headers['Content-Type'] = 'application/json';
    } else if (o.raw !== undefined) {
      body = Buffer.from(o.raw);
      headers['Content-Type'] = 'application/octet-stream';
    }
    if (body) headers['Content-Length'] = body.length;
    const req = http.request(new URL(p, base), { method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: Record<string, unknown> = {};
        try {
          parsed = JSON.parse(text) as Record<string, unknown>;
        } catch {
          // not JSON
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: parsed, text });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Logs in with the operator token; returns the cookie and CSRF token. */
export async function login(base: string, token: string): Promise<{ cookie: string; csrf: string }> {
  const r = await request(base, 'POST', '/api/login', { headers: { Origin: base }, json: { token } });
  if (r.status !== 200) throw new Error(`login failed: ${r.status} ${r.text}`);
  const cookie = String(r.headers['set-cookie']?.[0] ?? '').split(';')[0];
  return { cookie, csrf: String(r.body.csrf) };
}

export async function until<T>(what: string, f: () => T | null | undefined | false | Promise<T | null | undefined | false>, ms = 20000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
