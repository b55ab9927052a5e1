/**
 * The C2 application under load, end to end on loopback: a broker (Mosquitto when installed, else the embedded
 * aedes), the C2 server (engine + SQLite registry with synchronous=FULL on disk + HTTP API) in this process's
 * main thread, and 200 virtual devices running the real agent on the Node host in a worker thread, their
 * stores on tmpfs (/dev/shm) when there is one, so that what is measured is the server, not the devices'
 * own fsyncs.
 *
 *   joins approved per second    200 devices send join requests, held for the operator; then all are approved
 *                                through the HTTP API (20 at a time) until every device has its 0x50
 *                                (each approval also makes the server send an ID request, answered by data)
 *   commands per second          1,000 actions through the HTTP API (50 at a time), each a full round trip:
 *                                API -> signed action -> device -> signed response 0x20 -> API answer
 *   console first render         10,000 registered devices (written straight to the registry in one
 *                                transaction, with labels and firmware); Chromium loads the console (logged
 *                                in) and the time from navigation start to the first page of the device list
 *                                (with the total) laid out is read from the page (performance mark), median of
 *                                5 loads after a warm-up
 *
 *   the floor                    before the fleet: RSA-2048 sign and verify as the server and the Node devices
 *                                do them (node:crypto), the RSA cost of one action round trip (the server signs
 *                                the action and verifies the answer, the device verifies the action and signs
 *                                the answer) and the round trips per second that alone allows on this machine's
 *                                cores; after each deployment's commands, the same ceiling from the measured CPU
 *                                of the server and the devices per command (what the deployment would reach were
 *                                the machine's cores busy with nothing else: no broker, no HTTP client)
 *
 * Each fleet row is measured for each deployment, with fresh devices: SQLite (the default, in this process),
 * PostgreSQL with one node (in this process), and PostgreSQL with two nodes (two `srup c2 serve` processes from
 * dist/ on one database and one broker, sharing the identity; approvals and commands alternate between them).
 * The HTTP client runs in a worker thread of its own and the devices in another, so that the main thread is the
 * server alone. Rates carry their spread: the run is cut into 5 consecutive windows (by completions), and the
 * slowest and fastest window's rate are shown.
 *
 * The cost rows, per command, measured over the commands phase (not computed from a model):
 *   CPU of the server        this process's CPU time minus the two worker threads' own (each reads its thread's
 *                            /proc/thread-self/stat): the main thread, the thread pool (WAL syncs) and, for
 *                            PostgreSQL, the thread of the `pg` client; for two nodes, both server processes
 *   CPU of PostgreSQL        the database's backends serving the nodes (/proc/<pid>/stat)
 *   SQL statements, commits  the server's own counts (SqlDb.stats; in process only); for PostgreSQL also the
 *                            transactions the database committed (pg_stat_database.xact_commit)
 *
 * Environment: C2_BENCH_DEVICES=N (default 200), C2_BENCH_INFLIGHT=N (API commands in flight, default 50), C2_BENCH_ONLY=console (only the page load),
 * C2_BENCH_DB=sqlite,pg1,pg2 (which deployments; PostgreSQL ones only when SRUP_BENCH_PG / SRUP_TEST_PG or
 * postgres://postgres@127.0.0.1:5432/postgres answers), C2_BENCH_DEBUG=1 (print the page's resource timings),
 * C2_BENCH_PROFILE=DIR (write V8 CPU profiles of the approvals (main thread) and of the commands phase (main
 * thread and devices' thread) to DIR).
 *
 * Self-contained (prints its rows):
 *   npx esbuild bench/c2.bench.ts --bundle --platform=node --format=esm --packages=external --outfile=.tmp/c2.bench.mjs && node .tmp/c2.bench.mjs
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { Session } from 'node:inspector';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import path from 'node:path';
import { generateRsaKeyPair, nodeCrypto } from '../hosts/node/crypto.js';
import { C2App } from '../tools/c2/app.js';
import { loadOrCreateIdentity } from '../tools/c2/identity.js';
import { PgDb } from '../hosts/node/pg-db.js';
import { provisionVirtualDevice, VirtualDevice } from '../tools/c2/virtual.js';
import { findMosquitto, startMosquitto } from '../test/support/mosquitto.js';
import { CHROMIUM, hasChromium, login, openBrowser, request } from '../test/support/browser.js';
import { emit, progress, type Row } from './lib.js';

const SECTION = 'c2';
const DEVICES = Number(process.env.C2_BENCH_DEVICES ?? 200);
const COMMANDS = 1000;
const IN_FLIGHT = Number(process.env.C2_BENCH_INFLIGHT ?? 50);
const CORES = os.availableParallelism();
const TARGET_COMMANDS = 2000;
const LIST_DEVICES = 10000;

async function startBroker(): Promise<{ url: string; name: string; stop: () => Promise<void> }> {
  if (findMosquitto()) {
    const m = await startMosquitto({ maxQueuedMessages: 100000 });
    return { url: m.url, name: 'Mosquitto', stop: () => m.dispose() };
  }
  const { Aedes } = await import('aedes');
  const broker = await Aedes.createBroker();
  const server = net.createServer((s) => broker.handle(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    name: 'aedes',
    stop: () => new Promise<void>((r) => { server.close(); broker.close(() => r()); }),
  };
}

/** C2_BENCH_PROFILE=DIR: a V8 CPU profile of this thread from start() to stop(), written as DIR/<name>.cpuprofile. */
function profiler(name: string): { start(): Promise<void>; stop(): Promise<void> } {
  const dir = process.env.C2_BENCH_PROFILE;
  if (!dir) return { start: async () => undefined, stop: async () => undefined };
  const s = new Session();
  s.connect();
  const post = (method: string, params?: object) =>
    new Promise<unknown>((resolve, reject) => s.post(method, params ?? {}, (e, r) => (e ? reject(e) : resolve(r))));
  return {
    start: async () => {
      await post('Profiler.enable');
      await post('Profiler.start');
    },
    stop: async () => {
      const r = (await post('Profiler.stop')) as { profile: unknown };
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, `${name}.cpuprofile`), JSON.stringify(r.profile));
    },
  };
}

/** Runs `jobs` with at most `width` in flight. */
async function pool<T>(items: T[], width: number, job: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(width, items.length) }, async () => {
    while (next < items.length) await job(items[next++]);
  });
  await Promise.all(workers);
}

/** One C2 deployment under test: in this process (SQLite, or PostgreSQL with one node) or server processes. */
interface Deployment {
  readonly label: string;
  /** The nodes' API origins (one, or two for two nodes); commands and approvals go round-robin. */
  readonly bases: string[];
  readonly auth: Record<string, string>;
  readonly serverId: bigint;
  readonly serverPublicPem: string;
  /** In this process: the registry's counters (statements, round trips waited for, commits). */
  readonly sqlStats?: () => { statements: number; roundTrips: number; commits: number };
  /** CPU time (µs) of the server processes so far: this process (whose workers the caller subtracts), or children. */
  readonly serverCpuUs: () => number;
  /** Whether serverCpuUs counts this process (the bench's worker threads are then subtracted). */
  readonly inThisProcess: boolean;
  /** PostgreSQL: the database's URL (for its backends' CPU time and committed transactions). */
  readonly databaseUrl?: string;
  addDevice(id: bigint, publicPem: string): Promise<void>;
  pending(): Promise<number>;
  stop(): Promise<void>;
}

const ROOT = path.join(path.dirname(new URL(import.meta.url).pathname), '..');

/** A new empty PostgreSQL database for one run, and how to drop it. */
function freshDatabase(tag: string): { url: string; drop: () => void } {
  const base = process.env.SRUP_BENCH_PG ?? process.env.SRUP_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const name = `srup_bench_${tag}_${process.pid}`;
  const admin = new PgDb(base);
  admin.exec(`DROP DATABASE IF EXISTS ${name}`);
  admin.exec(`CREATE DATABASE ${name}`);
  admin.close();
  const u = new URL(base);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    drop: () => {
      const a = new PgDb(base);
      try {
        a.exec(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        a.close();
      }
    },
  };
}

async function inProcess(dir: string, brokerUrl: string, databaseUrl?: string): Promise<Deployment & { app: C2App }> {
  const app = await C2App.start({ dataDir: dir, brokerUrl, httpPort: 0, simpleJoins: 'manual', log: () => undefined, ...(databaseUrl ? { databaseUrl } : {}) });
  const cliToken = fs.readFileSync(path.join(dir, 'cli-token'), 'utf8').trim();
  return {
    app,
    label: databaseUrl ? 'PostgreSQL, 1 node' : 'SQLite',
    bases: [app.url],
    auth: { Authorization: `Bearer ${cliToken}` },
    serverId: app.identity.id,
    serverPublicPem: app.identity.publicPem,
    sqlStats: () => ({ ...app.registry.db.stats }),
    serverCpuUs: () => {
      const u = process.cpuUsage();
      return u.user + u.system;
    },
    inThisProcess: true,
    ...(databaseUrl ? { databaseUrl } : {}),
    addDevice: async (id, pem) => void app.addDevice(id, pem),
    pending: async () => app.registry.devices('pending').length,
    stop: () => app.stop(),
  };
}

/** `srup c2 serve` processes on one database and one broker, sharing the identity of the first. */
async function serverNodes(root: string, brokerUrl: string, databaseUrl: string, n: number): Promise<Deployment> {
  const script = path.join(ROOT, '.tmp', `c2-node-${process.pid}.mjs`);
  fs.mkdirSync(path.dirname(script), { recursive: true });
  fs.writeFileSync(script, "import { main } from '../dist/srup.mjs';\nprocess.exitCode = await main(process.argv.slice(2));\n");
  const children: ChildProcess[] = [];
  const bases: string[] = [];
  const dirs = Array.from({ length: n }, (_, i) => path.join(root, `node${i}`));
  for (let i = 0; i < n; i++) {
    if (i > 0) {
      fs.mkdirSync(dirs[i], { recursive: true, mode: 0o700 });
      for (const f of ['server.json', 'private.pem', 'public.pem', 'cli-token']) fs.copyFileSync(path.join(dirs[0], f), path.join(dirs[i], f));
    }
    const child = spawn(process.execPath, [script, 'c2', 'serve', '--data', dirs[i], '--db', databaseUrl, '--broker', brokerUrl, '--http', '0', '--simple-joins', 'manual'], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let err = '';
    child.stderr!.on('data', (b: Buffer) => (err = (err + b.toString()).slice(-4000)));
    bases.push(
      await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout!.on('data', (b: Buffer) => {
          out += b.toString();
          const m = /Console: (http:\/\/[^/\s]+)/.exec(out);
          if (m) resolve(m[1]);
        });
        child.on('exit', (code) => reject(new Error(`node ${i} exited ${code}: ${err}`)));
      }),
    );
  }
  const identity = loadOrCreateIdentity(dirs[0]).identity;
  const auth = { Authorization: `Bearer ${fs.readFileSync(path.join(dirs[0], 'cli-token'), 'utf8').trim()}` };
  return {
    label: `PostgreSQL, ${n} nodes`,
    serverCpuUs: () => children.reduce((sum, c) => sum + procCpuUs(`/proc/${c.pid}/stat`), 0),
    inThisProcess: false,
    databaseUrl,
    bases,
    auth,
    serverId: identity.id,
    serverPublicPem: identity.publicPem,
    addDevice: async (id, pem) => {
      const r = await request(bases[0], 'POST', '/api/devices', { headers: auth, json: { id: id.toString(16).padStart(16, '0'), publicKey: pem } });
      if (r.status !== 200) throw new Error(`add device: ${r.status} ${r.text}`);
    },
    pending: async () => {
      // The list is paged: ask for the pending ones' count.
      const r = await request(bases[0], 'GET', '/api/devices?state=pending&pageSize=1', { headers: auth });
      if (r.status !== 200) throw new Error(`devices: ${r.status} ${r.text}`);
      return r.body.total as number;
    },
    stop: async () => {
      await Promise.all(children.map((c) => new Promise<void>((r) => { c.on('exit', () => r()); c.kill('SIGINT'); })));
      fs.rmSync(script, { force: true });
    },
  };
}

/** CPU time (µs) of a process or thread from its /proc stat file (utime + stime, in clock ticks of 10 ms). */
function procCpuUs(file: string): number {
  try {
    const stat = fs.readFileSync(file, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * 10_000; // fields 14 and 15 of proc(5), USER_HZ = 100
  } catch {
    return NaN;
  }
}

/** This thread's CPU time (µs), NaN where /proc/thread-self is not there. */
function threadCpuUs(): number {
  return procCpuUs('/proc/thread-self/stat');
}

/** PostgreSQL's side of a run: its backends' CPU time and the transactions it committed, for one database. */
function databaseCost(url: string): { cpuUs: number; commits: number } {
  const db = new PgDb(url);
  try {
    const pids = db.all<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()');
    // Statistics reach pg_stat_database when a backend reports them (at most every second when busy).
    db.exec('SELECT pg_stat_clear_snapshot()');
    const c = db.get<{ n: number }>('SELECT xact_commit::bigint AS n FROM pg_stat_database WHERE datname = current_database()');
    return { cpuUs: pids.reduce((sum, p) => sum + procCpuUs(`/proc/${p.pid}/stat`), 0), commits: Number(c?.n ?? NaN) };
  } finally {
    db.close();
  }
}

/**
 * The rate over completion times (ms from the start), with its spread: the slowest and fastest of 5 consecutive
 * windows of equal counts.
 */
function rateRow(name: string, unit: string, done: number[]): Row {
  const t = [...done].sort((a, b) => a - b);
  const value = (t.length * 1000) / t[t.length - 1];
  const windows = 5;
  const per = Math.floor(t.length / windows);
  const rates: number[] = [];
  for (let w = 0; w < windows && per > 0; w++) {
    const from = w === 0 ? 0 : t[w * per - 1];
    const to = t[(w + 1) * per - 1];
    if (to > from) rates.push((per * 1000) / (to - from));
  }
  return { section: SECTION, name, value, unit, ...(rates.length > 1 ? { spread: { min: Math.min(...rates), max: Math.max(...rates) } } : {}) };
}

/**
 * What RSA alone allows: one action round trip is two RSA-2048 signs (the server's action, the device's answer)
 * and two verifies, all on this machine's cores when the devices run here. Median of 5 batches each.
 */
function floor(): void {
  progress(`  c2: the RSA floor (RSA-2048, node:crypto, ${CORES} cores) ...`);
  const { privateKey, publicKey } = generateRsaKeyPair(2048);
  const message = new Uint8Array(300).map((_, i) => i);
  const signature = nodeCrypto.sign(privateKey, message);
  const perOp = (n: number, op: () => void): number => {
    const batches: number[] = [];
    for (let b = 0; b < 5; b++) {
      const t0 = performance.now();
      for (let i = 0; i < n; i++) op();
      batches.push((performance.now() - t0) / n);
    }
    return batches.sort((a, b) => a - b)[2];
  };
  const sign = perOp(100, () => nodeCrypto.sign(privateKey, message));
  const verify = perOp(1000, () => {
    if (!nodeCrypto.verify(publicKey, message, signature)) throw new Error('verify failed');
  });
  const roundTrip = 2 * sign + 2 * verify;
  emit({ section: SECTION, name: 'RSA-2048 sign, node:crypto (median of 5 × 100)', value: sign, unit: 'ms' });
  emit({ section: SECTION, name: 'RSA-2048 verify, node:crypto (median of 5 × 1000)', value: verify, unit: 'ms' });
  emit({ section: SECTION, name: 'RSA per action round trip (2 signs + 2 verifies)', value: roundTrip, unit: 'ms' });
  const ceiling = (CORES * 1000) / roundTrip;
  emit({ section: SECTION, name: `ceiling from RSA alone: ${CORES} cores / RSA per round trip`, value: ceiling, unit: 'commands/s', target: `≥ ${TARGET_COMMANDS}`, met: ceiling >= TARGET_COMMANDS });
}

/** Joins and commands per second through the HTTP API of `d`, with fresh virtual devices. */
async function fleet(d: Deployment, brokerUrl: string, deviceRoot: string): Promise<void> {
  const worker = new Worker(new URL(import.meta.url), { workerData: { role: 'devices' } });
  const client = new Worker(new URL(import.meta.url), { workerData: { role: 'client' } });
  const asker = (w: Worker) => <T>(msg: Record<string, unknown>): Promise<T> =>
    new Promise((resolve, reject) => {
      const onMessage = (m: { ok: boolean; value?: T; error?: string }) => {
        w.off('message', onMessage);
        if (m.ok) resolve(m.value as T);
        else reject(new Error(m.error));
      };
      w.on('message', onMessage);
      w.postMessage(msg);
    });
  const ask = asker(worker);
  const askClient = asker(client);
  /** CPU time of the bench's own threads (devices, HTTP client), to take out of this process's. */
  const benchThreadsUs = async () => (await ask<number>({ cmd: 'cpu' })) + (await askClient<number>({ cmd: 'cpu' }));
  try {
    progress(`  c2 (${d.label}): provisioning ${DEVICES} virtual devices (RSA-2048 keys) ...`);
    const dirs: string[] = [];
    const ids: string[] = [];
    for (let i = 0; i < DEVICES; i++) {
      const p = provisionVirtualDevice(path.join(deviceRoot, String(i)), { brokerUrl, serverId: d.serverId, serverPublicPem: d.serverPublicPem });
      await d.addDevice(p.id, p.publicPem);
      dirs.push(p.dir);
      ids.push(p.id.toString(16).padStart(16, '0'));
    }
    await ask({ cmd: 'start', dirs });
    progress(`  c2 (${d.label}): join requests ...`);
    const outcomes = ask<string[]>({ cmd: 'join' });
    const t0 = Date.now();
    while ((await d.pending()) < DEVICES) {
      if (Date.now() - t0 > 120000) throw new Error('join requests did not all arrive');
      await new Promise((r) => setTimeout(r, 50));
    }
    progress(`  c2 (${d.label}): approving through the HTTP API ...`);
    const joinProf = profiler(`joins-${d.label.replace(/\W+/g, '-')}-main`);
    await joinProf.start();
    const approved = await askClient<number[]>({ cmd: 'run', bases: d.bases, auth: d.auth, ids, width: 20, op: 'approve' });
    const results = await outcomes;
    await joinProf.stop();
    if (results.some((r) => r !== 'joined')) throw new Error(`not all joined: ${results.filter((r) => r !== 'joined').length}`);
    emit(rateRow(`joins approved · ${DEVICES} virtual devices, HTTP API, ${d.label}`, 'joins/s', approved));

    // Let the ID requests that follow each join settle before timing commands.
    await new Promise((r) => setTimeout(r, 1000));
    progress(`  c2 (${d.label}): ${COMMANDS} actions through the HTTP API ...`);
    const targets = Array.from({ length: COMMANDS }, (_, i) => ids[i % ids.length]);
    const prof = profiler(`commands-${d.label.replace(/\W+/g, '-')}-main`);
    await prof.start();
    await ask({ cmd: 'profile', name: `commands-${d.label.replace(/\W+/g, '-')}-devices` });
    const sample = async () => ({
      sql: d.sqlStats?.(),
      server: d.serverCpuUs() - (d.inThisProcess ? await benchThreadsUs() : 0),
      devices: await ask<number>({ cmd: 'cpu' }),
      db: d.databaseUrl !== undefined ? databaseCost(d.databaseUrl) : undefined,
    });
    const before = await sample();
    const done = await askClient<number[]>({ cmd: 'run', bases: d.bases, auth: d.auth, ids: targets, width: IN_FLIGHT, op: 'action' });
    // PostgreSQL reports a backend's counters to pg_stat_database at most once a second.
    if (d.databaseUrl !== undefined) await new Promise((r) => setTimeout(r, 1500));
    const after = await sample();
    await prof.stop();
    await ask({ cmd: 'profile-end' });
    emit(rateRow(`commands (action round trips) · ${DEVICES} devices, ${IN_FLIGHT} in flight, HTTP API, ${d.label}`, 'commands/s', done));
    const per = (a: number, b: number) => (b - a) / COMMANDS;
    const row = (what: string, value: number, unit: string) => {
      if (Number.isFinite(value)) emit({ section: SECTION, name: `per command, ${d.label}: ${what}`, value, unit });
    };
    const serverMs = per(before.server, after.server) / 1000;
    const devicesMs = per(before.devices, after.devices) / 1000;
    row('CPU of the server', serverMs, 'ms');
    row(`CPU of the ${DEVICES} virtual devices (not the server)`, devicesMs, 'ms');
    if (serverMs + devicesMs > 0) {
      const ceiling = (CORES * 1000) / (serverMs + devicesMs);
      emit({ section: SECTION, name: `ceiling, ${d.label}: ${CORES} cores / (server + devices CPU per command)`, value: ceiling, unit: 'commands/s', target: `≥ ${TARGET_COMMANDS}`, met: ceiling >= TARGET_COMMANDS });
      // Even a server that cost nothing shares the cores with the devices that answer it.
      if (devicesMs > 0) emit({ section: SECTION, name: `ceiling, ${d.label}: ${CORES} cores / devices' CPU per command (a server that cost nothing)`, value: (CORES * 1000) / devicesMs, unit: 'commands/s' });
    }
    if (before.db !== undefined && after.db !== undefined) {
      row('CPU of PostgreSQL (its backends)', per(before.db.cpuUs, after.db.cpuUs) / 1000, 'ms');
      row('transactions PostgreSQL committed', per(before.db.commits, after.db.commits), 'commits');
    }
    if (before.sql !== undefined && after.sql !== undefined) {
      row('SQL statements', per(before.sql.statements, after.sql.statements), 'statements');
      if (d.databaseUrl !== undefined) row('database round trips waited for', per(before.sql.roundTrips, after.sql.roundTrips), 'round trips');
      row('commits (group commit)', per(before.sql.commits, after.sql.commits), 'commits');
    }
  } finally {
    await ask({ cmd: 'close' }).catch(() => undefined);
    await worker.terminate();
    await client.terminate();
  }
}

/** The C2_BENCH_DB values: sqlite, pg1, pg2 (comma-separated; default all three, PostgreSQL ones when a server answers). */
function deployments(): string[] {
  const want = (process.env.C2_BENCH_DB ?? 'sqlite,pg1,pg2').split(',').map((x) => x.trim());
  if (want.every((w) => w === 'sqlite')) return want;
  try {
    new PgDb(process.env.SRUP_BENCH_PG ?? process.env.SRUP_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/postgres').close();
    return want;
  } catch (e) {
    progress(`  c2: PostgreSQL rows skipped: ${e instanceof Error ? e.message : String(e)}`);
    return want.filter((w) => w === 'sqlite');
  }
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2-bench-'));
  const broker = await startBroker();
  let consoleApp: C2App | null = null;
  if (process.env.C2_BENCH_ONLY !== 'console') {
    floor();
    for (const kind of deployments()) {
      const deviceRoot = fs.existsSync('/dev/shm') ? fs.mkdtempSync('/dev/shm/c2-bench-devices-') : fs.mkdtempSync(path.join(dir, 'devices-'));
      const db = kind === 'sqlite' ? null : freshDatabase(kind);
      const d = kind === 'pg2' ? await serverNodes(path.join(dir, kind), broker.url, db!.url, 2) : await inProcess(path.join(dir, kind), broker.url, db?.url);
      try {
        await fleet(d, broker.url, deviceRoot);
      } finally {
        await d.stop();
        db?.drop();
        fs.rmSync(deviceRoot, { recursive: true, force: true });
      }
    }
  }

  if (!hasChromium()) {
    progress(`  c2: console page load skipped: no Chromium at ${CHROMIUM}`);
  } else {
    consoleApp = (await inProcess(path.join(dir, 'console'), broker.url)).app;
    const app = consoleApp;
    const base = app.url;
    progress(`  c2: registering ${LIST_DEVICES} devices for the console list ...`);
    const key = generateRsaKeyPair(2048).publicKey;
    const now = Date.now();
    const t0 = performance.now();
    app.registry.transaction(() => {
      for (let i = app.registry.devices().length; i < LIST_DEVICES; i++) {
        const id = BigInt(0x4000000000000000) + BigInt(i) * 7919n;
        app.registry.addDevice(id, key, now);
        app.registry.updateDevice(id, { state: 'joined', firmwareName: 'srup-bench', firmwareVersion: i % 2 ? '1.0.0' : '1.1.0', lastSeen: now - i * 1000 }, now);
        app.store.setDeviceSettings(id, { palette: 'default', label: `bench ${i}` });
      }
    });
    progress(`  c2: ${LIST_DEVICES} devices registered in ${(performance.now() - t0).toFixed(0)} ms`);
    const b = await openBrowser();
    try {
      const s = await login(base, app.operatorToken as string);
      const [name, value] = s.cookie.split('=');
      await b.context.addCookies([{ name, value, url: base }]);
      const samples: number[] = [];
      for (let i = 0; i < 6; i++) {
        await b.page.goto('about:blank'); // so that unloading the previous console is not counted
        await b.page.goto(base + '/');
        await b.page.waitForSelector(`#devices-count:text("(${LIST_DEVICES} devices)")`);
        const ms = await b.page.evaluate(() => {
          const p = (globalThis as unknown as { performance: { getEntriesByName(n: string): { startTime: number }[] } }).performance;
          return p.getEntriesByName('c2-devices-rendered')[0]?.startTime ?? -1;
        });
        if (ms < 0) throw new Error('the page did not mark its first render');
        if (process.env.C2_BENCH_DEBUG) {
          progress(JSON.stringify(await b.page.evaluate(() => {
            const p = (globalThis as unknown as { performance: { getEntries(): { name: string; entryType: string; startTime: number; duration: number; responseStart?: number }[] } }).performance;
            return p.getEntries().map((e) => `${e.entryType} ${e.name.replace(/^http:\/\/[^/]+/, '')} start ${e.startTime.toFixed(0)} +${e.duration.toFixed(0)} ttfb ${(e.responseStart ?? 0).toFixed(0)}`);
          }), null, 1));
        }
        if (i > 0) samples.push(ms); // the first load warms up the server (it bundles challenge.js once)
      }
      samples.sort((x, y) => x - y);
      const median = samples[samples.length >> 1];
      emit({ section: SECTION, name: `console first render · ${LIST_DEVICES} devices, Chromium (median of ${samples.length})`, value: median, unit: 'ms', target: '≤ 300 ms', met: median <= 300 });
    } finally {
      await b.close();
    }
    await app.stop();
  }
  await broker.stop();
  fs.rmSync(dir, { recursive: true, force: true });
}

/** The worker thread: runs the virtual devices. */
function deviceWorker(): void {
  const port = parentPort!;
  const devices: VirtualDevice[] = [];
  let prof: ReturnType<typeof profiler> | null = null;
  port.on('message', (m: { cmd: string; dirs?: string[]; name?: string }) => {
    const reply = (p: Promise<unknown>) =>
      p.then(
        (value) => port.postMessage({ ok: true, value }),
        (e: unknown) => port.postMessage({ ok: false, error: e instanceof Error ? e.message : String(e) }),
      );
    if (m.cmd === 'start') {
      for (const d of m.dirs ?? []) devices.push(VirtualDevice.start(d));
      reply(Promise.resolve(devices.length));
    } else if (m.cmd === 'join') {
      reply(Promise.all(devices.map((d) => d.join('simple'))));
    } else if (m.cmd === 'cpu') {
      reply(Promise.resolve(threadCpuUs()));
    } else if (m.cmd === 'profile') {
      prof = profiler(m.name ?? 'devices');
      reply(prof.start());
    } else if (m.cmd === 'profile-end') {
      reply(prof?.stop() ?? Promise.resolve());
    } else if (m.cmd === 'close') {
      reply(Promise.all(devices.map((d) => d.close())));
    }
  });
}

/** The worker thread of the HTTP client: runs approvals or actions, answers their completion times (ms). */
function clientWorker(): void {
  const port = parentPort!;
  port.on('message', (m: { cmd: string; bases?: string[]; auth?: Record<string, string>; ids?: string[]; width?: number; op?: 'approve' | 'action' }) => {
    const reply = (p: Promise<unknown>) =>
      p.then(
        (value) => port.postMessage({ ok: true, value }),
        (e: unknown) => port.postMessage({ ok: false, error: e instanceof Error ? e.message : String(e) }),
      );
    if (m.cmd === 'cpu') {
      reply(Promise.resolve(threadCpuUs()));
      return;
    }
    const bases = m.bases ?? [];
    const done: number[] = [];
    let k = 0;
    const t0 = performance.now();
    reply(
      pool(m.ids ?? [], m.width ?? 1, async (id) => {
        const base = bases[k++ % bases.length];
        if (m.op === 'approve') {
          const r = await request(base, 'POST', `/api/devices/${id}/approve`, { headers: m.auth, json: {} });
          if (r.status !== 200) throw new Error(`approve ${id}: ${r.status} ${r.text}`);
        } else {
          const r = await request(base, 'POST', `/api/devices/${id}/action`, { headers: m.auth, json: { actionId: 1 } });
          if (r.status !== 200 || r.body.status !== 0x20) throw new Error(`action ${id}: ${r.status} ${r.text}`);
        }
        done.push(performance.now() - t0);
      }).then(() => done),
    );
  });
}

const role = isMainThread ? null : (workerData as { role?: string } | null)?.role;
if (role === 'devices') {
  deviceWorker();
} else if (role === 'client') {
  clientWorker();
} else {
  main().then(
    () => process.exit(0),
    (e: unknown) => {
      process.stderr.write(`c2 bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exit(1);
    },
  );
}
