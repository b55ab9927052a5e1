/**
 * A whole SRUP system in memory for end-to-end tests: the C2 engine and real device agents (modules/agent) on
 * one MemoryBroker, sharing a ManualClock. Devices are built over their own key store, sequence store, updater
 * and broker session, so a test can reboot one (close, updater.reboot(), build again) as the hardware would.
 */
import { pureCrypto } from '../../crypto/pure.js';
import type { RsaPrivateKey } from '../../crypto/types.js';
import { Agent } from '../../modules/agent/agent.js';
import type { AgentEvent, AgentOptions } from '../../modules/agent/agent.js';
import { MemoryKeyStore, MemorySequenceStore } from '../../modules/agent/memory.js';
import { C2Engine } from '../../modules/c2/engine.js';
import type { C2Event } from '../../modules/c2/events.js';
import type { C2Options } from '../../modules/c2/host.js';
import { MemoryRegistry } from '../../modules/c2/memory-registry.js';
import { decode } from '../../modules/srup/codec.js';
import type { Message } from '../../modules/srup/schema.js';
import { idTopicHex } from '../../modules/srup/bytes.js';
import { CollectingLog, FakeDownloader, FakeUpdater, ManualClock, RecordingPresenter, seededRandom } from './fakes.js';
import { MemoryBroker, type MemoryTransport } from './memory-broker.js';
import { SERVER_ID, testKeys, type Keys } from './c2-wire.js';

export const C2_CLIENT = 'SRUP Client: c2';

export interface DeviceOptions {
  /** The device's server at start (default SERVER_ID); null for a device that will get a join command. */
  serverId?: bigint | null;
  /** Agent options beyond the firmware name and version. */
  agent?: Partial<AgentOptions>;
  /** Provision the device's key in the C2 registry (default true). */
  provision?: boolean;
}

export class Device {
  readonly keys: MemoryKeyStore;
  readonly seqs = new MemorySequenceStore();
  readonly presenter = new RecordingPresenter();
  readonly downloader = new FakeDownloader();
  readonly updater = new FakeUpdater(new Uint8Array([0x01, 0x02]));
  readonly log = new CollectingLog();
  readonly events: AgentEvent[] = [];
  agent!: Agent;
  transport!: MemoryTransport;
  private boots = 0;

  constructor(
    private readonly world: World,
    readonly id: bigint,
    readonly privateKey: RsaPrivateKey,
    private readonly options: DeviceOptions,
  ) {
    this.keys = new MemoryKeyStore({
      deviceId: id,
      privateKey,
      serverId: options.serverId === undefined ? SERVER_ID : options.serverId,
      peers: [[SERVER_ID, world.keys.server.publicKey]],
    });
  }

  get clientId(): string {
    return `SRUP Client: ${idTopicHex(this.id)}`;
  }

  /** Builds the agent over this device's stores and broker session, and starts it. */
  boot(): void {
    this.boots++;
    this.transport = this.world.broker.client(this.clientId);
    this.agent = new Agent(
      {
        transport: this.transport,
        keys: this.keys,
        sequences: this.seqs,
        clock: this.world.clock,
        crypto: pureCrypto,
        random: seededRandom(100 + Number(this.id & 0xffffn) + this.boots),
        presenter: this.presenter,
        downloader: this.downloader,
        updater: this.updater,
        log: this.log.log,
      },
      { firmwareName: 'srup-esp32', firmwareVersion: '1.4.2', ...this.options.agent, onEvent: (e) => this.events.push(e) },
    );
    this.agent.start();
  }

  /** Restarts the device: the agent stops, the updater boots (the activated image if any), a new agent starts. */
  async reboot(options: { fail?: boolean } = {}): Promise<void> {
    await this.agent.close();
    this.updater.reboot(options);
    this.boot();
    await this.world.settle();
  }

  /** Messages this device published, decoded. */
  published(): Message[] {
    return this.world.broker.log.filter((p) => p.client === this.clientId).map((p) => decode(p.payload));
  }

  eventsOf<K extends AgentEvent['type']>(type: K): Extract<AgentEvent, { type: K }>[] {
    return this.events.filter((e) => e.type === type) as never;
  }
}

export class World {
  readonly broker = new MemoryBroker();
  readonly clock = new ManualClock(5_000_000);
  readonly registry = new MemoryRegistry();
  readonly log = new CollectingLog();
  readonly keys: Keys = testKeys();
  readonly events: C2Event[] = [];
  readonly devices: Device[] = [];
  engine!: C2Engine;
  transport!: MemoryTransport;
  private engineStarts = 0;

  /** Builds and starts the engine (again, over the same registry, after stop()). */
  async startEngine(options: C2Options = {}): Promise<C2Engine> {
    this.transport = this.broker.client(C2_CLIENT);
    this.engine = new C2Engine(
      {
        transport: this.transport,
        registry: this.registry,
        crypto: pureCrypto,
        // A different seed per start: a restarted C2 must not reuse its earlier tokens.
        random: seededRandom(11 + this.engineStarts++),
        clock: this.clock,
        log: this.log.log,
        serverId: SERVER_ID,
        privateKey: this.keys.server,
      },
      { ...options, onEvent: (e) => this.events.push(e) },
    );
    await this.engine.start();
    await this.settle();
    return this.engine;
  }

  /** A device with its own stores, provisioned in the registry unless told otherwise, booted. */
  async addDevice(id: bigint, key: RsaPrivateKey, options: DeviceOptions = {}): Promise<Device> {
    const d = new Device(this, id, key, options);
    if (options.provision !== false) this.registry.addDevice(id, key.publicKey, this.clock.now());
    this.devices.push(d);
    d.boot();
    await this.settle();
    return d;
  }

  /** Waits until no message is in flight and neither the engine nor any agent is acting on one. */
  async settle(): Promise<void> {
    for (let round = 0; round < 50; round++) {
      const before = this.broker.log.length;
      await this.broker.settle();
      await this.engine?.idle();
      await Promise.all(this.devices.map((d) => d.agent.idle()));
      await this.broker.settle();
      if (this.broker.log.length === before) return;
    }
    throw new Error('World.settle(): still busy after 50 rounds');
  }

  /** Messages the engine published, decoded, optionally only those to one device. */
  fromEngine(device?: bigint): Message[] {
    return this.broker.log
      .filter((p) => p.client === C2_CLIENT && (device === undefined || p.topic === `SRUP/${idTopicHex(device)}`))
      .map((p) => decode(p.payload));
  }

  eventsOf<K extends C2Event['type']>(type: K): Extract<C2Event, { type: K }>[] {
    return this.events.filter((e) => e.type === type) as never;
  }
}
