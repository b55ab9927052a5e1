/**
 * A whole SRUP system in memory, on any engine: the C2 engine (modules/c2, MemoryRegistry) and device agents
 * (modules/agent) on one MemoryBroker, with the pure crypto and a shared ManualClock. A device keeps its
 * stores and updater across restarts: RAM stores (MemoryKeyStore / MemorySequenceStore), or the flash stores
 * the firmware uses (FlashKeyStore / FlashSequenceStore over a MemoryFlash partition, opened anew at every
 * boot as hosts/moddable/main.ts does).
 *
 * SimWorld is the system; its WorldParts say what differs between the tests that use it: the server id, the
 * presenter a device gets, the random generator and seeds, and the broker (its scheduler). FlowWorld is the
 * one the portable flow cases use; test/support/c2-world.ts builds the jest flows' World on the same class.
 */
import { parsePrivateKeyPem, privateKeyToDer, publicKeyToDer } from '../../crypto/keys.js';
import { pureCrypto } from '../../crypto/pure.js';
import type { Crypto, RandomBytes, RsaPrivateKey } from '../../crypto/types.js';
import { Agent } from '../../modules/agent/agent.js';
import type { AgentEvent, AgentOptions } from '../../modules/agent/agent.js';
import type { KeyStore, Presenter, SequenceStore } from '../../modules/agent/host.js';
import { MemoryKeyStore, MemorySequenceStore } from '../../modules/agent/memory.js';
import { C2Engine } from '../../modules/c2/engine.js';
import type { C2Event } from '../../modules/c2/events.js';
import type { C2Options } from '../../modules/c2/host.js';
import { MemoryRegistry } from '../../modules/c2/memory-registry.js';
import { idTopicHex } from '../../modules/srup/bytes.js';
import { decode } from '../../modules/srup/codec.js';
import type { Message } from '../../modules/srup/schema.js';
import { FlashKeyStore, FlashSequenceStore, partitionImage } from '../../modules/store/flash-stores.js';
import { MemoryFlash, SRUP_PARTITION_SIZE, type Flash } from '../../modules/store/flash.js';
import { DEFAULT_PRESENTER } from '../../modules/store/record.js';
import { MemoryBroker, type MemoryTransport } from './broker.js';
import { ChallengeRecorder, CollectingLog, FakeDownloader, FakeUpdater, ManualClock } from './fakes.js';
import { ATTACKER_1024_PEM, DEVICE_1024_PEM, OBSERVER_1024_PEM, SERVER_1024_PEM } from './flow-keys.js';
import { fail } from './harness.js';
import { seededRandomBytes } from './prng.js';

/** The C2 engine's MQTT client id. */
export const C2_CLIENT = 'SRUP Client: c2';

export const SERVER = 0x5e12d3c4b5a69788n;
/** A leading zero nibble: its topic is SRUP/4a0f1b2c3d4e5f6. */
export const DEVICE = 0x04a0f1b2c3d4e5f6n;
export const OBSERVER = 0x7a6b5c4d3e2f1a0bn;
export const ATTACKER = 0x6666555544443333n;

export interface FlowKeys {
  readonly server: RsaPrivateKey;
  readonly device: RsaPrivateKey;
  readonly observer: RsaPrivateKey;
  readonly attacker: RsaPrivateKey;
}

let keys1024: FlowKeys | null = null;

/** The RSA-1024 test keys of flow-keys.ts, parsed on first use. */
export function flowKeys1024(): FlowKeys {
  if (keys1024 === null) {
    keys1024 = {
      server: parsePrivateKeyPem(SERVER_1024_PEM),
      device: parsePrivateKeyPem(DEVICE_1024_PEM),
      observer: parsePrivateKeyPem(OBSERVER_1024_PEM),
      attacker: parsePrivateKeyPem(ATTACKER_1024_PEM),
    };
  }
  return keys1024;
}

/**
 * The vector set's RSA-2048 keys in the flow roles (`pem` reads a file of the set, e.g. "keys/signer-1.private.pem"):
 * server signer-1, device recipient-1, observer and attacker signer-2.
 */
export function flowKeys2048(pem: (file: string) => string): FlowKeys {
  const signer2 = parsePrivateKeyPem(pem('keys/signer-2.private.pem'));
  return {
    server: parsePrivateKeyPem(pem('keys/signer-1.private.pem')),
    device: parsePrivateKeyPem(pem('keys/recipient-1.private.pem')),
    observer: signer2,
    attacker: signer2,
  };
}

export interface DeviceSetup {
  /** Keep the stores on a flash partition (the firmware's stores) instead of in RAM. */
  readonly flash?: boolean;
  /** Agent options beyond the firmware name and version. */
  readonly agent?: Partial<AgentOptions>;
  /** The server the device starts with (default the world's server); null for a device that will get a join command. */
  readonly serverId?: bigint | null;
  /** Provision the device's key in the C2 registry (default true). */
  readonly provision?: boolean;
  /** With `flash`: what the stores of each boot see of the partition (e.g. a flash that loses power). */
  readonly flashAtBoot?: (partition: MemoryFlash, device: SimDevice) => Flash;
  /** The device's crypto (default the pure crypto). */
  readonly crypto?: Crypto;
}

/** What differs between worlds. */
export interface WorldParts<P extends Presenter> {
  /** The C2 server's id; every device knows its key. */
  readonly serverId: bigint;
  /** The broker (default: a MemoryBroker that schedules promise jobs only). */
  readonly broker?: MemoryBroker;
  /** A new device's presenter. */
  presenter(): P;
  /** RandomBytes from a seed. */
  random(seed: number): RandomBytes;
  /** The seed of a device's randomness at boot number `boots` (1, 2, ...); the engine's is 11, 12, ... by start. */
  deviceSeed(id: bigint, boots: number): number;
}

/** The keys a world needs; a test's key set may hold more. */
export interface WorldKeys {
  readonly server: RsaPrivateKey;
}

export class SimDevice<P extends Presenter = Presenter> {
  readonly presenter: P;
  readonly downloader = new FakeDownloader();
  readonly updater = new FakeUpdater(Uint8Array.of(0x01, 0x02));
  readonly log = new CollectingLog();
  readonly events: AgentEvent[] = [];
  /** The `srup` partition, for a flash-backed device. */
  readonly flash: MemoryFlash | null;
  keys!: KeyStore;
  seqs!: SequenceStore;
  agent!: Agent;
  transport!: MemoryTransport;
  boots = 0;

  constructor(
    private readonly world: SimWorld<WorldKeys, P>,
    readonly id: bigint,
    readonly privateKey: RsaPrivateKey,
    private readonly setup: DeviceSetup,
  ) {
    this.presenter = world.parts.presenter();
    const serverId = setup.serverId === undefined ? world.serverId : setup.serverId;
    const serverKey = world.keys.server.publicKey;
    if (setup.flash === true) {
      const image = partitionImage(
        {
          deviceId: id,
          privateKey: privateKeyToDer(privateKey),
          serverId,
          peers: [{ id: world.serverId, der: publicKeyToDer(serverKey) }],
          brokerUrl: 'mqtts://broker.test:8883',
          ca: null,
          wifi: null,
          presenter: DEFAULT_PRESENTER,
        },
        SRUP_PARTITION_SIZE,
      );
      this.flash = new MemoryFlash(SRUP_PARTITION_SIZE, 4096, image);
    } else {
      this.flash = null;
      this.keys = new MemoryKeyStore({ deviceId: id, privateKey, serverId, peers: [[world.serverId, serverKey]] });
      this.seqs = new MemorySequenceStore();
    }
  }

  get clientId(): string {
    return `SRUP Client: ${idTopicHex(this.id)}`;
  }

  /** Starts the device: stores opened (from flash if it has one), a new agent on its broker session. */
  boot(): void {
    this.boots++;
    if (this.flash !== null) {
      const flash = this.setup.flashAtBoot?.(this.flash, this as SimDevice) ?? this.flash;
      this.keys = new FlashKeyStore(flash);
      this.seqs = new FlashSequenceStore(flash);
    }
    this.transport = this.world.broker.client(this.clientId);
    this.agent = new Agent(
      {
        transport: this.transport,
        keys: this.keys,
        sequences: this.seqs,
        clock: this.world.clock,
        crypto: this.setup.crypto ?? pureCrypto,
        random: this.world.parts.random(this.world.parts.deviceSeed(this.id, this.boots)),
        presenter: this.presenter,
        downloader: this.downloader,
        updater: this.updater,
        log: this.log.log,
      },
      { firmwareName: 'srup-esp32', firmwareVersion: '1.4.2', ...this.setup.agent, onEvent: (e) => this.events.push(e) },
    );
    this.agent.start();
  }

  /**
   * Power cycle: the agent stops, the updater boots (the activated image, if any; with `fail` the new image
   * does not come up and the bootloader rolls back), the device starts again.
   */
  async reboot(options: { fail?: boolean } = {}): Promise<void> {
    await this.agent.close();
    this.updater.reboot(options);
    this.boot();
    await this.world.settle();
  }

  /** What this device published, decoded, in order. */
  published(): Message[] {
    return this.world.broker.log.filter((p) => p.client === this.clientId).map((p) => decode(p.payload));
  }

  eventsOf<K extends AgentEvent['type']>(type: K): Extract<AgentEvent, { type: K }>[] {
    return this.events.filter((e) => e.type === type) as Extract<AgentEvent, { type: K }>[];
  }
}

export class SimWorld<K extends WorldKeys, P extends Presenter = Presenter> {
  readonly broker: MemoryBroker;
  readonly clock = new ManualClock(5_000_000);
  readonly registry = new MemoryRegistry();
  readonly log = new CollectingLog();
  readonly events: C2Event[] = [];
  readonly devices: SimDevice<P>[] = [];
  readonly serverId: bigint;
  engine!: C2Engine;
  /** The engine's broker client (a new one at every start). */
  transport!: MemoryTransport;
  private engineStarts = 0;
  /** The engine's crypto at its next start (default the pure crypto). */
  engineCrypto: Crypto = pureCrypto;

  constructor(
    readonly keys: K,
    readonly parts: WorldParts<P>,
  ) {
    this.broker = parts.broker ?? new MemoryBroker();
    this.serverId = parts.serverId;
  }

  /** Builds and starts the C2 engine (again, over the same registry, after engine.stop()). */
  async startEngine(options: C2Options = {}): Promise<C2Engine> {
    const starts = this.engineStarts++;
    this.transport = this.broker.client(C2_CLIENT);
    this.engine = new C2Engine(
      {
        transport: this.transport,
        registry: this.registry,
        crypto: this.engineCrypto,
        // A different seed per start: a restarted C2 must not reuse its earlier tokens.
        random: this.parts.random(11 + starts),
        clock: this.clock,
        log: this.log.log,
        serverId: this.serverId,
        privateKey: this.keys.server,
      },
      { ...options, onEvent: (e) => this.events.push(e) },
    );
    await this.engine.start();
    await this.settle();
    return this.engine;
  }

  /** A device, provisioned in the registry unless told otherwise, booted. */
  async addDevice(id: bigint, key: RsaPrivateKey, setup: DeviceSetup = {}): Promise<SimDevice<P>> {
    const d = new SimDevice<P>(this, id, key, setup);
    if (setup.provision !== false) this.provision(id, key);
    this.devices.push(d);
    d.boot();
    await this.settle();
    return d;
  }

  /** Puts a device's key in the registry (through the engine). */
  protected provision(id: bigint, key: RsaPrivateKey): void {
    this.engine.provision(id, key.publicKey);
  }

  /** Until nothing is in flight and neither the engine nor any agent is acting on a message. */
  async settle(): Promise<void> {
    for (let round = 0; round < 100; round++) {
      const before = this.broker.log.length;
      await this.broker.settle();
      await this.engine?.idle();
      for (const d of this.devices) await d.agent.idle();
      await this.broker.settle();
      if (this.broker.log.length === before && !this.broker.busy) return;
    }
    fail('the world never settled');
  }

  /** Waits for `p` while the broker delivers and everyone acts. */
  async during<T>(p: Promise<T>): Promise<T> {
    let done = false;
    const q = p.then(
      (v) => {
        done = true;
        return v;
      },
      (e: unknown) => {
        done = true;
        throw e;
      },
    );
    for (let i = 0; i < 20 && !done; i++) await this.settle();
    if (!done) {
      q.catch(() => undefined);
      fail('the request never settled');
    }
    return q;
  }

  eventsOf<K extends C2Event['type']>(type: K): Extract<C2Event, { type: K }>[] {
    return this.events.filter((e) => e.type === type) as Extract<C2Event, { type: K }>[];
  }
}

/** A device of the portable flows: shows its challenge as the firmware draws it. */
export type FlowDevice = SimDevice<ChallengeRecorder>;

/** The portable flows' world: server SERVER, sfc32 randomness (test/portable/prng.ts). */
export class FlowWorld extends SimWorld<FlowKeys, ChallengeRecorder> {
  constructor(keys: FlowKeys) {
    super(keys, {
      serverId: SERVER,
      presenter: () => new ChallengeRecorder(),
      random: seededRandomBytes,
      deviceSeed: (id, boots) => Number(id & 0xffffn) * 31 + boots,
    });
  }

  /** Builds and starts the C2 engine. */
  start(options: C2Options = {}): Promise<C2Engine> {
    return this.startEngine(options);
  }
}
