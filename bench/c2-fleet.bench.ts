/**
 * The device list of a large fleet through the HTTP API: 10,000 registered devices (test/support/fleet.ts:
 * labels, firmware, tags, states and last-seen times), a logged-in session, and the median time of
 *
 *   first page        GET /api/devices (no parameters: the first 50 by id, with the total)
 *   search            GET /api/devices?search=pump-12 (id, label and firmware, case-insensitive substring)
 *   filtered, sorted  GET /api/devices?tag=critical&online=true&sort=-lastSeen&page=3
 *   audit page        GET /api/audit?operator=admin (10,000 audit entries besides)
 *
 * each measured end to end (HTTP request to parsed JSON) on loopback, after a warm-up, on SQLite (the default)
 * and, when it answers, PostgreSQL (SRUP_BENCH_PG / SRUP_TEST_PG or postgres://postgres@127.0.0.1:5432/postgres).
 *
 * Environment: FLEET_BENCH_DEVICES=N (default 10000), FLEET_BENCH_DB=sqlite,pg (which deployments).
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { C2App } from '../tools/c2/app.js';
import { PgDb } from '../hosts/node/pg-db.js';
import { findMosquitto, startMosquitto } from '../test/support/mosquitto.js';
import { login, request } from '../test/support/browser.js';
import { fleetId, registerFleet } from '../test/support/fleet.js';
import { emit, progress } from './lib.js';

const SECTION = 'c2-fleet';
const DEVICES = Number(process.env.FLEET_BENCH_DEVICES ?? 10_000);
/** --quick (short runs) takes 5 samples per row, else 25. */
const SAMPLES = ((globalThis as { BENCH_OPTIONS?: { minMs?: number } }).BENCH_OPTIONS?.minMs ?? 500) < 500 ? 5 : 25;
const PG_BASE = process.env.SRUP_BENCH_PG ?? process.env.SRUP_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const COUNT = DEVICES.toLocaleString('en');

async function startBroker(): Promise<{ url: string; stop: () => Promise<void> }> {
  if (findMosquitto()) {
    const m = await startMosquitto();
    return { url: m.url, stop: () => m.dispose() };
  }
  const { Aedes } = await import('aedes');
  const broker = await Aedes.createBroker();
  const server = net.createServer((s) => broker.handle(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  return { url: `mqtt://127.0.0.1:${port}`, stop: () => new Promise<void>((r) => { server.close(); broker.close(() => r()); }) };
}

function freshDatabase(): { url: string; drop: () => void } {
  const name = `srup_bench_fleet_${process.pid}`;
  const admin = new PgDb(PG_BASE);
  admin.exec(`DROP DATABASE IF EXISTS ${name}`);
  admin.exec(`CREATE DATABASE ${name}`);
  admin.close();
  const u = new URL(PG_BASE);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    drop: () => {
      const a = new PgDb(PG_BASE);
      try {
        a.exec(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        a.close();
      }
    },
  };
}

function deployments(): string[] {
  const want = (process.env.FLEET_BENCH_DB ?? 'sqlite,pg').split(',').map((x) => x.trim());
  if (!want.includes('pg')) return want;
  try {
    new PgDb(PG_BASE).close();
    return want;
  } catch (e) {
    progress(`  c2-fleet: PostgreSQL rows skipped: ${e instanceof Error ? e.message : String(e)}`);
    return want.filter((w) => w !== 'pg');
  }
}

/** Median ms of `SAMPLES` requests (after two warm-ups); each must answer 200 with `check` true. */
async function median(base: string, cookie: string, p: string, check: (body: Record<string, unknown>) => boolean): Promise<{ ms: number; min: number; max: number }> {
  const times: number[] = [];
  for (let i = 0; i < SAMPLES + 2; i++) {
    const t = performance.now();
    const r = await request(base, 'GET', p, { headers: { Cookie: cookie } });
    const ms = performance.now() - t;
    if (r.status !== 200 || !check(r.body)) throw new Error(`${p}: ${r.status} ${r.text.slice(0, 200)}`);
    if (i >= 2) times.push(ms);
  }
  times.sort((a, b) => a - b);
  return { ms: times[times.length >> 1], min: times[0], max: times[times.length - 1] };
}

async function measure(kind: string, dir: string, brokerUrl: string): Promise<void> {
  const db = kind === 'pg' ? freshDatabase() : null;
  const label = kind === 'pg' ? 'PostgreSQL' : 'SQLite';
  const app = await C2App.start({ dataDir: path.join(dir, kind), brokerUrl, httpPort: 0, log: () => undefined, databaseUrl: db?.url });
  try {
    progress(`  c2-fleet: registering ${COUNT} devices (${label}) ...`);
    const now = Date.now();
    for (let from = 0; from < DEVICES; from += 1000) registerFleet(app, Math.min(1000, DEVICES - from), { now, from });
    app.registry.transaction(() => {
      for (let i = 0; i < DEVICES; i++) app.store.recordAction({ at: now - i, operator: i % 2 === 0 ? 'admin' : 'alice', type: 'meta', device: fleetId(i), summary: `edit ${i}` });
    });
    const base = app.url;
    const s = await login(base, app.operatorToken as string);
    const rows: [string, string, (b: Record<string, unknown>) => boolean, string?][] = [
      ['devices first page', '/api/devices', (b) => b.total === DEVICES && (b.devices as unknown[]).length === 50, '≤ 100 ms'],
      ['devices search', '/api/devices?search=pump-12', (b) => Number(b.total) > 0, '≤ 100 ms'],
      ['devices filtered and sorted', '/api/devices?tag=critical&online=true&sort=-lastSeen&page=3', (b) => Array.isArray(b.devices), '≤ 100 ms'],
      ['audit page by operator', '/api/audit?operator=admin', (b) => Number(b.total) >= DEVICES / 2],
    ];
    for (const [name, p, check, target] of rows) {
      const m = await median(base, s.cookie, p, check);
      const limit = target === undefined ? undefined : Number(/\d+/.exec(target)?.[0]);
      emit({
        section: SECTION,
        name: `${name} at ${COUNT} (API, ${label}, median of ${SAMPLES})`,
        value: m.ms,
        unit: 'ms',
        spread: { min: m.min, max: m.max },
        ...(target !== undefined && limit !== undefined ? { target, met: m.ms <= limit } : {}),
      });
    }
  } finally {
    await app.stop();
    db?.drop();
  }
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2-fleet-bench-'));
  const broker = await startBroker();
  try {
    for (const kind of deployments()) await measure(kind, dir, broker.url);
  } finally {
    await broker.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`c2-fleet bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
