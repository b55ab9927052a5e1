/**
 * End-to-end rig over a real Mosquitto: the C2 engine in the test process with an MqttTransport and a
 * MemoryRegistry, device configuration directories written by `srup device init` (tools/commands/device.ts) and
 * registered with the engine, in-process device agents over the Node host (hosts/node), and a raw mqtt.js client
 * that sees and injects bytes on the wire.
 *
 *   const w = await E2EWorld.start({ tls: true });
 *   const dev = await w.newDevice('a');                 // config dir + registered with the engine
 *   const a = await w.startAgent(dev);                  // in-process agent, connected
 *   await a.agent.join('simple');
 *   await w.dispose();
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { connectAsync, type MqttClient } from 'mqtt';
import type { RsaPrivateKey, RsaPublicKey } from '../../crypto/types.js';
import { publicKeyToPem } from '../../crypto/keys.js';
import { Agent, type AgentEvent, type AgentOptions } from '../../modules/agent/agent.js';
import type { AgentHost, Log, LogLevel, Presenter } from '../../modules/agent/host.js';
import { C2Engine } from '../../modules/c2/engine.js';
import type { C2Event } from '../../modules/c2/events.js';
import type { C2Options } from '../../modules/c2/host.js';
import { MemoryRegistry } from '../../modules/c2/memory-registry.js';
import { idHex16, idTopicHex } from '../../modules/srup/bytes.js';
import { decode } from '../../modules/srup/codec.js';
import type { Message } from '../../modules/srup/schema.js';
import { loadDeviceConfig, type DeviceConfig } from '../../hosts/node/config.js';
import { generateRsaKeyPair, nodeCrypto, randomBytes } from '../../hosts/node/crypto.js';
import { createNodeHost, systemClock } from '../../hosts/node/host.js';
import { MqttTransport } from '../../hosts/node/mqtt.js';
import { FileUpdater } from '../../hosts/node/updater.js';
import { initDeviceDir } from '../../tools/commands/device.js';
import { startHttpServer, type TestHttpServer } from './http-server.js';
import { startMosquitto, type Mosquitto } from './mosquitto.js';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` every 10 ms until it holds; throws naming `what` after `ms`. */
export async function until(what: string, cond: () => boolean, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

export interface LogEntry {
  level: LogLevel;
  event: string;
  detail: Record<string, string | number | boolean | null>;
}

/** A Log that keeps every line (and echoes them when SRUP_E2E_DEBUG is set). */
export function collectingLog(name: string, into: LogEntry[]): Log {
  return (level, event, detail = {}) => {
    into.push({ level, event, detail });
    if (process.env.SRUP_E2E_DEBUG) process.stderr.write(`[${name}] ${level} ${event} ${JSON.stringify(detail)}\n`);
  };
}

/** A presenter that records every secret it is asked to show. */
export class RecordingPresenter implements Presenter {
  current: Uint8Array | null = null;
  readonly shown: Uint8Array[] = [];
  constructor(private readonly onShow?: (secret: Uint8Array) => void) {}
  showChallenge(secret: Uint8Array): void {
    this.current = secret.slice();
    this.shown.push(secret.slice());
    this.onShow?.(secret.slice());
  }
  clearChallenge(): void {
    this.current = null;
  }
}

export interface DeviceDir {
  name: string;
  dir: string;
  id: bigint;
  publicKey: RsaPublicKey;
  privateKey: RsaPrivateKey;
}

/** A wire-level observer and injector: a plain mqtt.js client (clean session) on the test broker. */
export class RawClient {
  readonly seen: { topic: string; bytes: Uint8Array; message: Message | null }[] = [];
  private constructor(readonly client: MqttClient) {
    client.on('message', (topic, payload) => {
      const bytes = new Uint8Array(payload);
      let message: Message | null = null;
      try {
        message = decode(bytes);
      } catch {
        message = null;
      }
      this.seen.push({ topic, bytes, message });
    });
  }

  static async connect(broker: Mosquitto, name: string): Promise<RawClient> {
    const client = await connectAsync(broker.url, {
      clientId: `srup-e2e-raw-${name}-${process.pid}-${Math.random().toString(16).slice(2, 8)}`,
      protocolVersion: 4,
      clean: true,
      reconnectPeriod: 200,
      ca: broker.tls?.ca,
      cert: broker.tls?.clientCert,
      key: broker.tls?.clientKey,
      rejectUnauthorized: true,
    });
    return new RawClient(client);
  }

  async watch(topic: string): Promise<void> {
    await this.client.subscribeAsync(topic, { qos: 1 });
  }

  async inject(topic: string, bytes: Uint8Array): Promise<void> {
    await this.client.publishAsync(topic, Buffer.from(bytes), { qos: 1 });
  }

  /** Decoded messages seen on `topic` sent by `sender`. */
  from(sender: bigint, topic?: string): Message[] {
    return this.seen
      .filter((s) => s.message !== null && s.message.senderId === sender && (topic === undefined || s.topic === topic))
      .map((s) => s.message as Message);
  }

  async close(): Promise<void> {
    await this.client.endAsync(true);
  }
}

/** A device agent in this process, over the Node host of a configuration directory. */
export class LocalDevice {
  readonly log: LogEntry[] = [];
  readonly events: AgentEvent[] = [];
  readonly presenter: RecordingPresenter;
  host!: AgentHost;
  agent!: Agent;
  config!: DeviceConfig;
  /** Set when the updater asked for a restart (an activated update); reboot() then boots the new image. */
  restartRequested = false;
  boots = 0;

  constructor(
    readonly world: E2EWorld,
    readonly dev: DeviceDir,
    private readonly options: Partial<AgentOptions>,
  ) {
    this.presenter = new RecordingPresenter((s) => world.shownSecrets.set(dev.id, s));
  }

  get id(): bigint {
    return this.dev.id;
  }

  /** Builds host and agent over the directory (the stores and the updater read their files: a boot), starts. */
  async boot(): Promise<this> {
    this.boots++;
    this.restartRequested = false;
    this.config = loadDeviceConfig(this.dev.dir);
    const log = collectingLog(this.dev.name, this.log);
    const host = createNodeHost(this.config, {
      log,
      out: new Writable({ write: (_c, _e, cb) => cb() }),
      restart: () => {
        this.restartRequested = true;
      },
    });
    // Faster reconnects than a deployed device, so that broker restarts do not dominate the test's time.
    host.transport = new MqttTransport({
      url: this.config.brokerUrl,
      clientId: this.config.clientId,
      ca: this.config.tls.ca,
      cert: this.config.tls.cert,
      key: this.config.tls.key,
      backoff: { initialMs: 100, maxMs: 1000 },
      log,
    });
    host.presenter = this.presenter;
    this.host = host;
    this.agent = new Agent(host, {
      firmwareName: 'e2e-fw',
      firmwareVersion: '1.2.3',
      ...this.options,
      onEvent: (e) => this.events.push(e),
    });
    const connectedBefore = this.eventsOf('connected').length;
    this.agent.start();
    await until(`${this.dev.name} connected`, () => this.eventsOf('connected').length > connectedBefore);
    // The subscription to SRUP/<own id> is made on connect; wait for the broker to confirm it.
    await this.host.transport.subscribe(`SRUP/${idTopicHex(this.id)}`);
    return this;
  }

  /** Stops the agent (the broker keeps its session and queues what comes meanwhile). */
  async shutdown(): Promise<void> {
    await this.agent.close();
  }

  /** Shuts down and boots again over the same directory, as a restarted board. */
  async reboot(): Promise<void> {
    await this.agent.idle();
    await this.shutdown();
    await this.boot();
  }

  updater(): FileUpdater {
    return this.host.updater as FileUpdater;
  }

  eventsOf<K extends AgentEvent['type']>(type: K): Extract<AgentEvent, { type: K }>[] {
    return this.events.filter((e) => e.type === type) as never;
  }

  rejected(reason?: string): LogEntry[] {
    return this.log.filter((l) => l.event === 'rejected' && (reason === undefined || l.detail.reason === reason));
  }
}

export interface WorldOptions {
  tls: boolean;
  engine?: C2Options;
}

export class E2EWorld {
  readonly root: string;
  readonly serverId = 0x4c2a9e10b3d54f01n;
  readonly server = generateRsaKeyPair(2048);
  readonly registry = new MemoryRegistry();
  readonly events: C2Event[] = [];
  readonly c2log: LogEntry[] = [];
  /** The last secret each in-process device showed (what a camera pointed at it would read). */
  readonly shownSecrets = new Map<bigint, Uint8Array>();
  readonly devices: LocalDevice[] = [];
  readonly raws: RawClient[] = [];
  engine!: C2Engine;
  c2transport!: MqttTransport;

  private constructor(
    readonly broker: Mosquitto,
    readonly http: TestHttpServer,
  ) {
    this.root = fs.mkdtempSync(path.join(os.tmpdir(), 'srup-e2e-'));
  }

  static async start(options: WorldOptions): Promise<E2EWorld> {
    const broker = await startMosquitto(options.tls ? { tls: { requireCertificate: true } } : {});
    const http = await startHttpServer();
    const w = new E2EWorld(broker, http);
    await w.startEngine(options.engine ?? {});
    return w;
  }

  async startEngine(options: C2Options): Promise<C2Engine> {
    const log = collectingLog('c2', this.c2log);
    this.c2transport = new MqttTransport({
      url: this.broker.url,
      clientId: `SRUP Client: ${idTopicHex(this.serverId)}`,
      ca: this.broker.tls?.ca,
      cert: this.broker.tls?.clientCert,
      key: this.broker.tls?.clientKey,
      backoff: { initialMs: 100, maxMs: 1000 },
      log,
    });
    this.engine = new C2Engine(
      {
        transport: this.c2transport,
        registry: this.registry,
        crypto: nodeCrypto,
        random: randomBytes,
        clock: systemClock,
        log,
        serverId: this.serverId,
        privateKey: this.server.privateKey,
      },
      { requestTimeoutMs: 30_000, ...options, onEvent: (e) => this.events.push(e) },
    );
    await this.engine.start();
    return this.engine;
  }

  /** Writes a device configuration directory (as `srup device init` does) and registers the device. */
  newDevice(name: string, options: { peers?: Map<bigint, RsaPublicKey>; register?: boolean } = {}): DeviceDir {
    const dir = path.join(this.root, name);
    const tlsDir = path.join(this.root, 'client-tls');
    if (this.broker.tls && !fs.existsSync(tlsDir)) fs.mkdirSync(tlsDir);
    const pair = generateRsaKeyPair(2048);
    const r = initDeviceDir({
      out: dir,
      serverId: this.serverId,
      serverKeyPem: this.server.publicPem,
      broker: this.broker.url,
      caFile: this.broker.tls?.caFile,
      certFile: this.broker.tls?.clientCertFile,
      keyFile: this.broker.tls?.clientKeyFile,
      firmware: { name: 'e2e-fw', version: '1.2.3' },
      keyPair: pair,
    });
    if (options.peers !== undefined) {
      fs.mkdirSync(path.join(dir, 'peers'), { recursive: true });
      for (const [id, key] of options.peers) fs.writeFileSync(path.join(dir, 'peers', `${idHex16(id)}.pem`), publicKeyToPem(key));
    }
    if (options.register !== false) this.engine.provision(r.deviceId, r.publicKey);
    return { name, dir, id: r.deviceId, publicKey: r.publicKey, privateKey: pair.privateKey };
  }

  async startAgent(dev: DeviceDir, options: Partial<AgentOptions> = {}): Promise<LocalDevice> {
    const d = new LocalDevice(this, dev, options);
    this.devices.push(d);
    return d.boot();
  }

  async raw(name: string): Promise<RawClient> {
    const r = await RawClient.connect(this.broker, name);
    this.raws.push(r);
    return r;
  }

  eventsOf<K extends C2Event['type']>(type: K): Extract<C2Event, { type: K }>[] {
    return this.events.filter((e) => e.type === type) as never;
  }

  async dispose(): Promise<void> {
    this.engine?.stop();
    await Promise.all(this.devices.map((d) => d.agent.close().catch(() => undefined)));
    await Promise.all(this.raws.map((r) => r.close().catch(() => undefined)));
    await this.c2transport?.close().catch(() => undefined);
    await this.http.close();
    await this.broker.dispose();
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}
