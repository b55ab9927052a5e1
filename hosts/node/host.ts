/**
 * The Node host in one call: `createNodeHost(loadDeviceConfig(dir))` assembles an AgentHost from the adapters
 * in this folder. Also the system clock and a log that writes one JSON line per event to stderr.
 *
 * The key store is seeded from the config directory on first start (state/keys.json); after that it is the
 * truth (the agent changes the server id and peer keys there), and the config only has to name the same device.
 */
import path from 'node:path';
import type { Writable } from 'node:stream';
import type { AgentHost, Clock, Log, LogLevel } from '../../modules/agent/host.js';
import { nodeCrypto, randomBytes } from './crypto.js';
import type { DeviceConfig } from './config.js';
import { HostFileError, idToHex } from './durable.js';
import { HttpDownloader } from './downloader.js';
import { MqttTransport } from './mqtt.js';
import { TerminalPresenter } from './presenter.js';
import { FileKeyStore, FileSequenceStore, KEYS_FILE } from './stores.js';
import { FileUpdater } from './updater.js';

export const systemClock: Clock = {
  now: () => performance.timeOrigin + performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

const LEVELS: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

export interface ConsoleLogOptions {
  /** Default process.stderr. */
  stream?: Writable;
  /** Events below this level are dropped (default 'info'). */
  level?: LogLevel;
  /** 'json' (default): {"time","level","event",...detail}; 'text': "time level event key=value ...". */
  format?: 'json' | 'text';
  /** Default: the wall clock. */
  now?: () => Date;
}

/** A value in a text log line: bare when it is one plain word, else a quoted string. */
function textValue(v: string | number | boolean | null): string {
  if (typeof v !== 'string') return String(v);
  return /^[\w.:/@+-]+$/.test(v) ? v : JSON.stringify(v);
}

/** One text log line: "time LEVEL event key=value ...". */
export function textLogLine(time: string, level: LogLevel, event: string, detail: Record<string, string | number | boolean | null> = {}): string {
  let line = `${time} ${level.toUpperCase().padEnd(5)} ${event}`;
  for (const [k, v] of Object.entries(detail)) line += ` ${k}=${textValue(v)}`;
  return line;
}

/** A Log writing one line per event. Detail keys that clash with time/level/event are prefixed with "_". */
export function consoleLog(options: ConsoleLogOptions = {}): Log {
  const stream = options.stream ?? process.stderr;
  const min = LEVELS[options.level ?? 'info'];
  const now = options.now ?? (() => new Date());
  return (level, event, detail) => {
    if (LEVELS[level] < min) return;
    const time = now().toISOString();
    if (options.format === 'text') {
      stream.write(textLogLine(time, level, event, detail) + '\n');
      return;
    }
    const rec: Record<string, string | number | boolean | null> = { time, level, event };
    for (const [k, v] of Object.entries(detail ?? {})) rec[k in rec ? `_${k}` : k] = v;
    stream.write(JSON.stringify(rec) + '\n');
  };
}

export interface NodeHostOptions {
  log?: Log;
  /** Where the presenter draws (default process.stdout). */
  out?: Writable;
  /** What activate() does once the switch is durable (default: exit with EXIT_RESTART). */
  restart?: () => void;
}

/** The AgentHost for a loaded device config; opens (or seeds) the stores under `config.stateDir`. */
export function createNodeHost(config: DeviceConfig, options: NodeHostOptions = {}): AgentHost {
  const log = options.log ?? consoleLog();
  let keys: FileKeyStore;
  if (FileKeyStore.exists(config.stateDir)) {
    keys = FileKeyStore.open(config.stateDir);
    if (keys.deviceId !== config.deviceId) {
      throw new HostFileError(path.join(config.stateDir, KEYS_FILE), 'deviceId',
        `belongs to device ${idToHex(keys.deviceId)}, but device.json says ${idToHex(config.deviceId)}`);
    }
  } else {
    keys = FileKeyStore.create(config.stateDir, {
      deviceId: config.deviceId,
      privateKey: config.privateKey,
      serverId: config.serverId,
      peers: config.peers,
    });
    log('info', 'key_store_created', { file: keys.file });
  }
  return {
    transport: new MqttTransport({
      url: config.brokerUrl,
      clientId: config.clientId,
      username: config.username,
      password: config.password,
      ca: config.tls.ca,
      cert: config.tls.cert,
      key: config.tls.key,
      log,
    }),
    keys,
    sequences: FileSequenceStore.open(config.stateDir),
    clock: systemClock,
    crypto: nodeCrypto,
    random: randomBytes,
    presenter: new TerminalPresenter({ out: options.out, log }),
    downloader: new HttpDownloader({ ca: config.downloadCa }),
    updater: new FileUpdater({ dir: path.join(config.stateDir, 'firmware'), restart: options.restart }),
    log,
  };
}
