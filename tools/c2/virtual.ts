/**
 * Virtual devices: the real device agent (modules/agent) on the Node host (hosts/node: MQTT, file key and
 * sequence stores, HTTP downloader, two-slot file updater), for the demo, the console tests and the benchmark.
 *
 * Each device lives in its own directory, laid out as hosts/node/config.ts reads it (device.json, private.pem,
 * server.pem, state/). Activating an update "reboots" it: the agent is closed and started again on the same
 * directory, so the updater's boot logic and the confirmation (0x10) run exactly as after a real restart.
 *
 * The presenter records the challenge it was given (secret, grid, blink code) so tests can compare it with the
 * console, and optionally draws it in a terminal as well (TerminalPresenter).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { parsePrivateKeyPem, publicKeyToPem } from '../../crypto/keys.js';
import { Agent, type AgentEvent, type JoinKind, type JoinOutcome } from '../../modules/agent/agent.js';
import type { AgentHost, Downloader, Log, Presenter } from '../../modules/agent/host.js';
import type { DataKind, DataValue } from '../../modules/srup/data.js';
import { blinkCode, challengeGrid, type ColourIndex, type Palette } from '../../modules/challenge/index.js';
import { loadDeviceConfig } from '../../hosts/node/config.js';
import { generateRsaKeyPair } from '../../hosts/node/crypto.js';
import { idToHex, writeFileDurable } from '../../hosts/node/durable.js';
import { createNodeHost } from '../../hosts/node/host.js';
import { TerminalPresenter } from '../../hosts/node/presenter.js';
import { FileUpdater } from '../../hosts/node/updater.js';
import { newIdentityId } from './identity.js';

/** Images made for the demo start with this line: "SRUPFW <name> <version>\n". */
export const FIRMWARE_MAGIC = 'SRUPFW ';

export interface ShownChallenge {
  readonly secret: string;
  readonly grid: ColourIndex[];
  readonly blink: string;
}

/** Remembers the challenge on show (and forwards it to a terminal presenter, if one). */
export class RecordingPresenter implements Presenter {
  current: ShownChallenge | null = null;
  readonly history: ShownChallenge[] = [];
  private readonly inner: Presenter | null;
  private readonly onShow: ((c: ShownChallenge) => void) | null;

  constructor(inner: Presenter | null = null, onShow: ((c: ShownChallenge) => void) | null = null) {
    this.inner = inner;
    this.onShow = onShow;
  }

  showChallenge(secret: Uint8Array): void {
    try {
      const text = String.fromCharCode(...secret);
      const c = { secret: text, grid: challengeGrid(secret), blink: blinkCode(secret).digits };
      this.current = c;
      this.history.push(c);
      this.onShow?.(c);
    } catch {
      this.current = null;
    }
    this.inner?.showChallenge(secret);
  }

  clearChallenge(): void {
    this.current = null;
    this.inner?.clearChallenge();
  }
}

export interface ProvisionedDevice {
  readonly id: bigint;
  readonly dir: string;
  readonly publicPem: string;
}

/**
 * Makes (or reuses) a device directory: a new id and RSA-2048 key pair, device.json naming the broker and the
 * server, and the server's public key. An existing directory keeps its identity; its broker is updated.
 */
export function provisionVirtualDevice(
  dir: string,
  o: { brokerUrl: string; serverId: bigint; serverPublicPem: string; firmware?: { name: string; version: string } },
): ProvisionedDevice {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const configFile = path.join(dir, 'device.json');
  const privateFile = path.join(dir, 'private.pem');
  if (fs.existsSync(configFile) && fs.existsSync(privateFile)) {
    const config = JSON.parse(fs.readFileSync(configFile, 'utf8')) as Record<string, unknown>;
    if (config.broker !== o.brokerUrl) writeFileDurable(configFile, JSON.stringify({ ...config, broker: o.brokerUrl }, null, 2) + '\n');
    const key = parsePrivateKeyPem(fs.readFileSync(privateFile, 'utf8'));
    return { id: BigInt('0x' + String(config.id)), dir, publicPem: publicKeyToPem(key.publicKey) };
  }
  const id = newIdentityId();
  const pair = generateRsaKeyPair(2048);
  writeFileDurable(privateFile, pair.privatePem);
  fs.chmodSync(privateFile, 0o600);
  writeFileDurable(path.join(dir, 'public.pem'), pair.publicPem);
  writeFileDurable(path.join(dir, 'server.pem'), o.serverPublicPem);
  const config = {
    id: idToHex(id),
    serverId: idToHex(o.serverId),
    broker: o.brokerUrl,
    firmware: o.firmware ?? { name: 'srup-virtual', version: '1.0.0' },
  };
  writeFileDurable(configFile, JSON.stringify(config, null, 2) + '\n');
  return { id, dir, publicPem: pair.publicPem };
}

/** A downloader that flips one bit of the first chunk: the device then computes another digest (0xFF). */
export function corruptingDownloader(inner: Downloader): Downloader {
  return {
    download(url, onChunk) {
      let first = true;
      return inner.download(url, (chunk) => {
        if (first && chunk.length > 0) {
          first = false;
          const copy = chunk.slice();
          copy[0] ^= 0x01;
          onChunk(copy);
        } else onChunk(chunk);
      });
    },
  };
}

export interface VirtualDeviceOptions {
  /** Draw challenges in a terminal too (default: record only). */
  terminal?: Writable | null;
  palette?: Palette;
  /** Corrupt every download (tests of the 0xFF path). */
  corruptDownloads?: boolean;
  log?: Log;
  onEvent?: (e: AgentEvent, device: VirtualDevice) => void;
  /**
   * The observer's eyes in an observed join: what this device saw the joining device show (e.g. the secret
   * read off its matrix by a camera), or null. Without it the device answers observation requests 0x6F.
   */
  observe?: (joining: bigint) => Uint8Array | null | Promise<Uint8Array | null>;
}

const quietLog: Log = () => undefined;

export class VirtualDevice {
  readonly dir: string;
  readonly id: bigint;
  readonly presenter: RecordingPresenter;
  /** Restarts so far (each activation is one). */
  boots = 0;
  firmware: { name: string; version: string };
  private readonly options: VirtualDeviceOptions;
  private agent: Agent | null = null;
  private host: AgentHost | null = null;
  private closed = false;
  private rebooting: Promise<void> | null = null;

  private constructor(dir: string, options: VirtualDeviceOptions) {
    this.dir = dir;
    this.options = options;
    const config = loadDeviceConfig(dir);
    this.id = config.deviceId;
    this.firmware = config.firmware;
    const inner = options.terminal ? new TerminalPresenter({ out: options.terminal, palette: options.palette, animate: false }) : null;
    this.presenter = new RecordingPresenter(inner);
  }

  /** Opens the device directory and starts the agent (it connects to the broker). */
  static start(dir: string, options: VirtualDeviceOptions = {}): VirtualDevice {
    const d = new VirtualDevice(dir, options);
    d.boot();
    return d;
  }

  get serverId(): bigint | null {
    return this.agent?.serverId ?? null;
  }

  /** Sends a join request and resolves with its outcome. */
  join(kind: JoinKind = 'simple', observer?: bigint): Promise<JoinOutcome> {
    if (this.agent === null) return Promise.reject(new Error('device is not running'));
    return this.agent.join(kind, observer);
  }

  /** Sends a reading: text as 'string', a number as 'double' unless `kind` says otherwise. */
  async sendData(dataId: string, value: string | number, kind: DataKind = typeof value === 'string' ? 'string' : 'double'): Promise<void> {
    await this.agent?.sendData(dataId, kind, value as DataValue<DataKind>);
  }

  /** Resolves once a pending reboot (after an activation) has finished. */
  async settled(): Promise<void> {
    while (this.rebooting) await this.rebooting;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.settled();
    const a = this.agent;
    this.agent = null;
    await a?.close();
  }

  private boot(): void {
    const config = loadDeviceConfig(this.dir);
    const log = this.options.log ?? quietLog;
    const host = createNodeHost(config, { log, restart: () => this.scheduleReboot() });
    host.presenter = this.presenter;
    if (this.options.corruptDownloads) host.downloader = corruptingDownloader(host.downloader);
    this.firmware = this.runningFirmware(host.updater, config.firmware);
    const agent = new Agent(host, {
      firmwareName: this.firmware.name,
      firmwareVersion: this.firmware.version,
      joinTimeoutMs: config.joinTimeoutMs,
      actions: { 1: () => true, 2: () => true },
      observe: this.options.observe,
      onEvent: (e) => this.options.onEvent?.(e, this),
    });
    this.host = host;
    this.agent = agent;
    agent.start();
  }

  /** The firmware named by the running image's first line, or the configured one. */
  private runningFirmware(updater: unknown, fallback: { name: string; version: string }): { name: string; version: string } {
    if (!(updater instanceof FileUpdater)) return fallback;
    try {
      const fd = fs.openSync(updater.activeImage(), 'r');
      const buf = Buffer.alloc(128);
      const n = fs.readSync(fd, buf, 0, 128, 0);
      fs.closeSync(fd);
      const head = buf.subarray(0, n).toString('latin1');
      if (!head.startsWith(FIRMWARE_MAGIC)) return fallback;
      const [name, version] = head.slice(FIRMWARE_MAGIC.length).split('\n')[0].trim().split(/\s+/);
      return name && version ? { name, version } : fallback;
    } catch {
      return fallback;
    }
  }

  private scheduleReboot(): void {
    const run = async () => {
      const old = this.agent;
      this.agent = null;
      await old?.close();
      if (this.closed) return;
      this.boots++;
      this.boot();
    };
    this.rebooting = new Promise<void>((resolve) => setImmediate(() => run().catch(() => undefined).finally(() => {
      this.rebooting = null;
      resolve();
    })));
  }
}

/** An image for the demo: a text header naming the firmware, then `size` bytes of filler. */
export function demoImage(name: string, version: string, size = 64 * 1024): Uint8Array {
  const head = Buffer.from(`${FIRMWARE_MAGIC}${name} ${version}\n`, 'latin1');
  const out = new Uint8Array(Math.max(size, head.length));
  out.set(head);
  for (let i = head.length; i < out.length; i++) out[i] = (i * 31 + 7) & 0xff;
  return out;
}
