/**
 * SRUP over a real Mosquitto with TLS on loopback, QoS 1, everything in one Node process except the broker:
 *
 *   1. Round trip C2 → device → C2 (engine.requestId: id_request 0x06 → data IDENTIFICATION_RESPONSE), one
 *      request at a time, p50 / p99 over 1,000 requests; with the device on memory stores and on the file stores
 *      (fsync per counter change); and bare MQTT (publish → echo → publish, same TLS transport) for reference.
 *   2. One C2 engine driving 200 device agents at once, each with its own MqttTransport (own TLS connection) and
 *      memory key/sequence stores: actions (0x04 → response 0x20) per second, sustained, with 2 actions in flight
 *      per device (closed loops). Twice: (a) engine and agents on one thread; (b) the engine on the main thread and
 *      the 200 agents in a worker thread — in deployment the devices' signing happens on the devices, so (b) is
 *      closer to what one C2 engine can drive. Also where the time goes: RSA signing, threads' event-loop
 *      utilisation, the process's and the broker's CPU, and the machine's load average (on a shared machine the
 *      figures move with it).
 *
 * Self-contained: it starts its own broker (test/support/mosquitto.ts: the Debian `mosquitto` binary, TLS with
 * generated certificates, TCP no-delay on). Rows go out as bench/lib.ts rows, so `npm run bench` (scripts/bench.mjs)
 * shows them; `node scripts/bench-mqtt.mjs` runs this section alone.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { parsePrivateKeyPem, parsePublicKeyPem, privateKeyToPem, publicKeyToPem } from '../crypto/keys.js';
import { nodeCrypto, generateRsaKeyPair, randomBytes } from '../hosts/node/crypto.js';
import { systemClock } from '../hosts/node/host.js';
import { MqttTransport } from '../hosts/node/mqtt.js';
import { FileKeyStore, FileSequenceStore } from '../hosts/node/stores.js';
import type { Crypto, RsaPrivateKey, RsaPublicKey } from '../crypto/types.js';
import { Agent } from '../modules/agent/agent.js';
import type { AgentHost, KeyStore, Log, SequenceStore } from '../modules/agent/host.js';
import { MemoryKeyStore, MemorySequenceStore } from '../modules/agent/memory.js';
import { C2Engine } from '../modules/c2/engine.js';
import { MemoryRegistry } from '../modules/c2/memory-registry.js';
import { deviceTopic } from '../modules/srup/topics.js';
import { startMosquitto, type Mosquitto } from '../test/support/mosquitto.js';
import { emit, progress } from './lib.js';

const SECTION = 'mqtt';
const quick = ((globalThis as { BENCH_OPTIONS?: { minMs?: number } }).BENCH_OPTIONS?.minMs ?? 500) < 200;
const ROUND_TRIPS = quick ? 200 : 1000;
const DEVICES = 200;
const FLEET_SECONDS = quick ? 3 : 10;
const IN_FLIGHT_PER_DEVICE = 2;
const SERVER_ID = 0x4c2a9e10b3d54f01n;

// ------------------------------------------------------------------------------------------------ helpers

const quietLog: Log = (level, event, detail) => {
  if (level === 'error') process.stderr.write(`${event} ${JSON.stringify(detail ?? {})}\n`);
};

/** node:crypto with the time spent signing and verifying counted. */
class TimedCrypto {
  signMs = 0;
  signs = 0;
  verifyMs = 0;
  verifies = 0;
  readonly crypto: Crypto;
  constructor() {
    const self = this;
    this.crypto = {
      ...nodeCrypto,
      sign(key, message) {
        const t = performance.now();
        const s = nodeCrypto.sign(key, message);
        self.signMs += performance.now() - t;
        self.signs++;
        return s;
      },
      verify(key, message, signature) {
        const t = performance.now();
        const ok = nodeCrypto.verify(key, message, signature);
        self.verifyMs += performance.now() - t;
        self.verifies++;
        return ok;
      },
    };
  }
  reset(): void {
    this.signMs = this.verifyMs = 0;
    this.signs = this.verifies = 0;
  }
}

function percentile(sorted: number[], p: number): number {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

const round = (v: number, digits = 3) => Number(v.toFixed(digits));


/** The broker's CPU time (user + system, ms) from /proc, or null where that is not readable. */
function brokerCpuMs(broker: Mosquitto): number | null {
  try {
    for (const pid of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      let cmd: string;
      try {
        cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      } catch {
        continue;
      }
      if (!cmd.includes(broker.dir)) continue;
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ticks = Number(fields[11]) + Number(fields[12]); // utime + stime
      return (ticks * 1000) / 100; // USER_HZ is 100 on Linux
    }
  } catch {
    // not Linux
  }
  return null;
}

const nullPresenter = { showChallenge: () => undefined, clearChallenge: () => undefined };
const unusedDownloader = { download: async () => ({ ok: false as const, error: 'unreachable' as const, message: 'not in this benchmark' }) };
const unusedUpdater = {
  begin: () => undefined,
  write: () => undefined,
  finish: () => undefined,
  abort: () => undefined,
  activate: () => undefined,
  bootState: () => 'normal' as const,
  confirm: () => true,
};

interface BrokerInfo {
  url: string;
  ca: string;
  cert: string;
  key: string;
}

const brokerInfo = (b: Mosquitto): BrokerInfo => ({ url: b.url, ca: b.tls!.ca, cert: b.tls!.clientCert, key: b.tls!.clientKey });

function transportFor(b: BrokerInfo, clientId: string): MqttTransport {
  return new MqttTransport({ url: b.url, clientId, ca: b.ca, cert: b.cert, key: b.key, log: quietLog });
}

const deviceId = (i: number) => 0x1000000000004000n + BigInt(i) * 0x10000n + BigInt(process.pid & 0xfff);

/** Device agents, each with its own transport; resolves once every one is subscribed to its topic. */
async function startAgents(
  broker: BrokerInfo,
  first: number,
  n: number,
  keys: RsaPrivateKey[],
  crypto: Crypto,
  stores: (id: bigint, key: RsaPrivateKey) => { keys: KeyStore; sequences: SequenceStore },
): Promise<{ agents: Agent[]; close(): Promise<void> }> {
  const agents: Agent[] = [];
  const waits: Promise<void>[] = [];
  for (let i = first; i < first + n; i++) {
    const id = deviceId(i);
    const key = keys[i % keys.length];
    const transport = transportFor(broker, `SRUP Client: ${id.toString(16)}`);
    const host: AgentHost = {
      transport,
      ...stores(id, key),
      clock: systemClock,
      crypto,
      random: randomBytes,
      presenter: nullPresenter,
      downloader: unusedDownloader,
      updater: unusedUpdater,
      log: quietLog,
    };
    const agent = new Agent(host, { firmwareName: 'bench', firmwareVersion: '1.0.0', actions: { 1: () => true } });
    agent.start();
    agents.push(agent);
    waits.push(transport.subscribe(deviceTopic(id)));
    // Connect in groups of 20 so that 200 TLS handshakes do not all pile up at once.
    if (waits.length % 20 === 0) await Promise.all(waits.slice(-20));
  }
  await Promise.all(waits);
  return { agents, close: async () => void (await Promise.all(agents.map((a) => a.close()))) };
}

const memoryStores = (serverKey: RsaPublicKey) => (id: bigint, key: RsaPrivateKey) => ({
  keys: new MemoryKeyStore({ deviceId: id, privateKey: key, serverId: SERVER_ID, peers: [[SERVER_ID, serverKey]] }),
  sequences: new MemorySequenceStore(),
});

interface Fleet {
  engine: C2Engine;
  ids: bigint[];
  close(): Promise<void>;
}

/** The engine, provisioned with `n` devices, each joined by a join command and answering an ID request. */
async function startEngine(broker: BrokerInfo, n: number, keys: RsaPrivateKey[], server: RsaPrivateKey, crypto: Crypto): Promise<Fleet> {
  const c2 = transportFor(broker, `SRUP Client: bench-c2-${process.pid}-${Math.random().toString(16).slice(2, 8)}`);
  const engine = new C2Engine(
    { transport: c2, registry: new MemoryRegistry(), crypto, random: randomBytes, clock: systemClock, log: quietLog, serverId: SERVER_ID, privateKey: server },
    { requestTimeoutMs: 120_000 },
  );
  await engine.start();
  const ids = Array.from({ length: n }, (_, i) => deviceId(i));
  ids.forEach((id, i) => engine.provision(id, keys[i % keys.length].publicKey));
  return { engine, ids, close: async () => { engine.stop(); await c2.close(); } };
}

async function joinAll(fleet: Fleet): Promise<void> {
  for (const id of fleet.ids) await fleet.engine.sendJoinCommand(id);
  // Every device has heard its join command once it answers an ID request.
  await Promise.all(fleet.ids.map((id) => fleet.engine.requestId(id)));
}

// ------------------------------------------------------------------------------------------------ device worker

interface WorkerInput {
  role: 'devices';
  broker: BrokerInfo;
  first: number;
  count: number;
  keys: string[];
  server: string;
}

interface WorkerStats {
  signMs: number;
  signs: number;
  /** The worker thread's event loop utilization (0..1) since the last reset. */
  busy: number;
}

/** The devices' side in a worker thread: the engine's thread then has a core to itself (as a real C2 would). */
async function deviceWorker(input: WorkerInput): Promise<void> {
  const port = parentPort!;
  const timed = new TimedCrypto();
  const keys = input.keys.map((pem) => parsePrivateKeyPem(pem));
  const serverKey = parsePublicKeyPem(input.server);
  const fleet = await startAgents(input.broker, input.first, input.count, keys, timed.crypto, memoryStores(serverKey));
  let elu0 = performance.eventLoopUtilization();
  port.on('message', (m: string) => {
    if (m === 'reset') {
      timed.reset();
      elu0 = performance.eventLoopUtilization();
      port.postMessage({ type: 'reset' });
    } else if (m === 'stats') {
      const stats: WorkerStats = { signMs: timed.signMs, signs: timed.signs, busy: performance.eventLoopUtilization(elu0).utilization };
      port.postMessage({ type: 'stats', stats });
    } else if (m === 'close') {
      void fleet.close().then(() => port.postMessage({ type: 'closed' }));
    }
  });
  port.postMessage({ type: 'ready' });
}

class WorkerDevices {
  private constructor(private readonly worker: Worker) {}

  static async start(input: WorkerInput): Promise<WorkerDevices> {
    const worker = new Worker(new URL(import.meta.url), { workerData: input });
    await WorkerDevices.next(worker, 'ready');
    return new WorkerDevices(worker);
  }

  private static next(worker: Worker, type: string): Promise<{ type: string; stats?: WorkerStats }> {
    return new Promise((resolve, reject) => {
      const onMessage = (m: { type: string; stats?: WorkerStats }) => {
        if (m.type !== type) return;
        worker.off('message', onMessage);
        worker.off('error', reject);
        resolve(m);
      };
      worker.on('message', onMessage);
      worker.once('error', reject);
    });
  }

  async reset(): Promise<void> {
    const p = WorkerDevices.next(this.worker, 'reset');
    this.worker.postMessage('reset');
    await p;
  }

  async stats(): Promise<WorkerStats> {
    const p = WorkerDevices.next(this.worker, 'stats');
    this.worker.postMessage('stats');
    return (await p).stats!;
  }

  async close(): Promise<void> {
    const p = WorkerDevices.next(this.worker, 'closed');
    this.worker.postMessage('close');
    await p;
    await this.worker.terminate();
  }
}

// ------------------------------------------------------------------------------------------------ 1. round trip

async function roundTrip(fleet: Fleet, count: number): Promise<number[]> {
  const id = fleet.ids[0];
  for (let i = 0; i < Math.min(100, count / 5); i++) await fleet.engine.requestId(id); // warm-up
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const t = performance.now();
    await fleet.engine.requestId(id);
    times.push(performance.now() - t);
  }
  return times.sort((a, b) => a - b);
}

async function bareMqtt(broker: BrokerInfo, count: number): Promise<number[]> {
  const a = transportFor(broker, `bench-bare-a-${process.pid}`);
  const b = transportFor(broker, `bench-bare-b-${process.pid}`);
  let waiting: (() => void) | null = null;
  a.listen({ message: () => waiting?.(), connected: () => undefined, disconnected: () => undefined });
  b.listen({ message: (_t, p) => void b.publish('bench/pong', p), connected: () => undefined, disconnected: () => undefined });
  a.start();
  b.start();
  await Promise.all([a.subscribe('bench/pong'), b.subscribe('bench/ping')]);
  const payload = new Uint8Array(300); // about the size of a signed SRUP message
  const once = () =>
    new Promise<void>((resolve) => {
      waiting = resolve;
      void a.publish('bench/ping', payload);
    });
  for (let i = 0; i < 100; i++) await once();
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const t = performance.now();
    await once();
    times.push(performance.now() - t);
  }
  await Promise.all([a.close(), b.close()]);
  return times.sort((x, y) => x - y);
}

function emitLatency(name: string, sorted: number[], target?: number): void {
  const p50 = percentile(sorted, 50);
  const p99 = percentile(sorted, 99);
  progress(`  ${name}: p50 ${p50.toFixed(3)} ms, p99 ${p99.toFixed(3)} ms over ${sorted.length}`);
  const spread = { min: round(sorted[0]), max: round(sorted[sorted.length - 1]) };
  emit({ section: SECTION, name: `${name} p50`, value: round(p50), unit: 'ms', spread, ...(target === undefined ? {} : { target: `≤ ${target} ms`, met: p50 <= target }) });
  emit({ section: SECTION, name: `${name} p99`, value: round(p99), unit: 'ms' });
}

// ------------------------------------------------------------------------------------------------ 2. fleet

interface Measured {
  completed: number;
  failed: number;
  elapsed: number;
  latencies: number[];
  cpuMs: number;
  eventLoop: number;
  brokerMs: number | null;
}

/** Closed loops: `inFlight` actions outstanding per device, for `seconds` after one second of warm-up. */
async function drive(broker: Mosquitto, fleet: Fleet, seconds: number, inFlight: number, onStart: () => Promise<void>): Promise<Measured> {
  const { engine, ids } = fleet;
  let done = 0;
  let failed = 0;
  let stop = false;
  const latencies: number[] = [];
  const loop = async (id: bigint) => {
    while (!stop) {
      const t = performance.now();
      try {
        await engine.sendAction(id, 1);
        done++;
        if ((done & 7) === 0) latencies.push(performance.now() - t);
      } catch {
        failed++;
      }
    }
  };
  const loops: Promise<void>[] = [];
  for (const id of ids) for (let k = 0; k < inFlight; k++) loops.push(loop(id));
  await new Promise((r) => setTimeout(r, 1000));
  await onStart();
  done = 0;
  latencies.length = 0;
  const cpu0 = process.cpuUsage();
  const elu0 = performance.eventLoopUtilization();
  const broker0 = brokerCpuMs(broker);
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const elapsed = performance.now() - t0;
  const completed = done;
  const cpu = process.cpuUsage(cpu0);
  const elu = performance.eventLoopUtilization(elu0);
  const broker1 = brokerCpuMs(broker);
  stop = true;
  await Promise.all(loops);
  latencies.sort((a, b) => a - b);
  return {
    completed,
    failed,
    elapsed,
    latencies,
    cpuMs: (cpu.user + cpu.system) / 1000,
    eventLoop: elu.utilization,
    brokerMs: broker0 !== null && broker1 !== null ? broker1 - broker0 : null,
  };
}

function reportFleet(label: string, m: Measured, devices: number, inFlight: number, signMs: number, signs: number, workerBusy: number | null): void {
  const rate = (m.completed * 1000) / m.elapsed;
  const pct = (ms: number) => `${((100 * ms) / m.elapsed).toFixed(0)}%`;
  progress(
    `  ${label}: ${devices} devices, ${inFlight} in flight each: ${m.completed} actions in ${(m.elapsed / 1000).toFixed(1)} s = ${rate.toFixed(0)}/s` +
      ` (p50 ${percentile(m.latencies, 50).toFixed(1)} ms, p99 ${percentile(m.latencies, 99).toFixed(1)} ms; ${m.failed} failed)`,
  );
  progress(
    `    where the time went: ${signs} RSA signatures × ${(signMs / Math.max(1, signs)).toFixed(3)} ms = ${pct(signMs)} of one core;` +
      ` this process's CPU ${pct(m.cpuMs)} of one core; main thread busy ${(100 * m.eventLoop).toFixed(0)}%` +
      (workerBusy !== null ? `, device thread busy ${(100 * workerBusy).toFixed(0)}%` : '') +
      (m.brokerMs !== null ? `; broker CPU ${pct(m.brokerMs)}` : '') +
      `; load average ${os.loadavg()[0].toFixed(1)} on ${os.cpus().length} cores`,
  );
  emit({ section: SECTION, name: `C2 → ${devices} devices, actions/s, ${label}`, value: round(rate, 1), unit: 'cmd/s', target: '≥ 1,000 cmd/s', met: rate >= 1000 });
  emit({ section: SECTION, name: `  ${label}: RSA signing`, value: round((100 * signMs) / m.elapsed, 1), unit: '% of a core' });
}

// ------------------------------------------------------------------------------------------------ main

async function main(): Promise<void> {
  progress(`  load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')} on ${os.cpus().length} cores (figures are only worth quoting on an idle machine)`);
  progress('  starting Mosquitto with TLS and generating keys ...');
  const mosquitto = await startMosquitto({ tls: true });
  const broker = brokerInfo(mosquitto);
  const server = generateRsaKeyPair(2048).privateKey;
  // 16 key pairs shared round-robin by the 200 devices: key generation would otherwise dominate the run, and
  // signing costs the same whatever the key.
  const keys = Array.from({ length: 16 }, () => generateRsaKeyPair(2048).privateKey);
  const stateRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'srup-bench-'));
  try {
    // Signing alone, for scale.
    const msg = new Uint8Array(300);
    for (let i = 0; i < 50; i++) nodeCrypto.sign(server, msg);
    const n = quick ? 200 : 1000;
    const t = performance.now();
    for (let i = 0; i < n; i++) nodeCrypto.sign(server, msg);
    const signMs = (performance.now() - t) / n;
    progress(`  RSA-2048 sign (node:crypto): ${signMs.toFixed(3)} ms`);
    emit({ section: SECTION, name: 'RSA-2048 sign, node:crypto (2 per round trip)', value: round(signMs), unit: 'ms' });

    emitLatency('bare MQTT round trip (TLS, QoS 1)', await bareMqtt(broker, ROUND_TRIPS));

    // 1. Round trips, one device.
    for (const kind of ['memory stores', 'file stores (fsync)'] as const) {
      const stores =
        kind === 'memory stores'
          ? memoryStores(server.publicKey)
          : (id: bigint, key: RsaPrivateKey) => {
              const dir = path.join(stateRoot, id.toString(16));
              return {
                keys: FileKeyStore.create(dir, { deviceId: id, privateKey: key, serverId: SERVER_ID, peers: new Map([[SERVER_ID, server.publicKey]]) }),
                sequences: FileSequenceStore.open(dir),
              };
            };
      const fleet = await startEngine(broker, 1, keys, server, nodeCrypto);
      const devices = await startAgents(broker, 0, 1, keys, nodeCrypto, stores);
      await joinAll(fleet);
      emitLatency(`SRUP round trip C2 → device → C2, ${kind}`, await roundTrip(fleet, ROUND_TRIPS), kind === 'memory stores' ? 1.5 : undefined);
      await devices.close();
      await fleet.close();
    }

    // 2a. The engine and 200 agents on one thread.
    {
      progress(`  connecting ${DEVICES} device agents (memory stores) in this thread ...`);
      const timed = new TimedCrypto();
      const fleet = await startEngine(broker, DEVICES, keys, server, timed.crypto);
      const devices = await startAgents(broker, 0, DEVICES, keys, timed.crypto, memoryStores(server.publicKey));
      await joinAll(fleet);
      const m = await drive(mosquitto, fleet, FLEET_SECONDS, IN_FLIGHT_PER_DEVICE, async () => timed.reset());
      reportFleet('engine and agents on one thread', m, DEVICES, IN_FLIGHT_PER_DEVICE, timed.signMs, timed.signs, null);
      await devices.close();
      await fleet.close();
    }

    // 2b. The engine on this thread, the 200 agents in a worker thread (as a C2 server would run: its devices are
    // other machines).
    {
      progress(`  connecting ${DEVICES} device agents (memory stores) in a worker thread ...`);
      const timed = new TimedCrypto();
      const fleet = await startEngine(broker, DEVICES, keys, server, timed.crypto);
      const worker = await WorkerDevices.start({
        role: 'devices',
        broker,
        first: 0,
        count: DEVICES,
        keys: keys.map((k) => privateKeyToPem(k)),
        server: publicKeyToPem(server.publicKey),
      });
      await joinAll(fleet);
      const m = await drive(mosquitto, fleet, FLEET_SECONDS, IN_FLIGHT_PER_DEVICE, async () => {
        timed.reset();
        await worker.reset();
      });
      const w = await worker.stats();
      reportFleet('agents in a worker thread', m, DEVICES, IN_FLIGHT_PER_DEVICE, timed.signMs + w.signMs, timed.signs + w.signs, w.busy);
      await worker.close();
      await fleet.close();
    }
  } finally {
    await mosquitto.dispose();
    fs.rmSync(stateRoot, { recursive: true, force: true });
  }
}

if (isMainThread) {
  main().then(
    () => process.exit(0),
    (e: unknown) => {
      process.stderr.write(`mqtt bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exit(1);
    },
  );
} else if ((workerData as WorkerInput | undefined)?.role === 'devices') {
  void deviceWorker(workerData as WorkerInput);
}
