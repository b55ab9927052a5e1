/**
 * `srup device`: a SRUP device on this computer, a user of the device API (modules/device, exported for Node
 * applications as `srup-agent/device`) over the Node host (hosts/node): MQTT with a persistent session, durable
 * key and sequence stores, two image slots as files, the join challenge drawn in the terminal.
 *
 *   srup device --config DIR [--join simple|human|observed:<observer hex>|none] [--log json|text]
 *   srup device init --out DIR --server-id HEX --server-key PEM --broker URL [--ca FILE] [--cert FILE --key FILE]
 *
 * Activating an update ends the device process with EXIT_RESTART (75) once the switch is durable, as a board
 * reboots. By default the command supervises itself: it runs the device in a child process and starts it again
 * on 75, so the new image boots and confirms the update (response 0x10). With --no-supervise the process just
 * exits with 75 and whatever started it decides.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Writable } from 'node:stream';
import { parsePublicKeyPem, publicKeyToPem } from '../../crypto/keys.js';
import type { RsaPrivateKey, RsaPublicKey } from '../../crypto/types.js';
import { AgentError, Device, type DeviceEvent, type JoinKind } from '../../modules/device/device.js';
import type { Log, LogLevel } from '../../modules/agent/host.js';
import { idHex16, parseIdHex, toHex, utf8DecodeOrNull } from '../../modules/srup/bytes.js';
import { loadDeviceConfig, type DeviceConfig } from '../../hosts/node/config.js';
import { generateRsaKeyPair } from '../../hosts/node/crypto.js';
import { HostFileError, makeDirs, writeFileDurable } from '../../hosts/node/durable.js';
import { consoleLog, createNodeHost, textLogLine } from '../../hosts/node/host.js';
import { EXIT_RESTART } from '../../hosts/node/updater.js';
import { CliError, UsageError, optBoolean, optString, requireString, type Command, type CommandContext, type ParsedArgs } from '../lib/cli.js';
import { readBytes, readText } from '../lib/files.js';
import { deviceIdFromRandom } from '../lib/provision.js';

export { EXIT_RESTART };

/** Restarts (exit 75) allowed within RESTART_WINDOW_MS before the supervisor gives up (a crash loop). */
const MAX_RESTARTS = 10;
const RESTART_WINDOW_MS = 60_000;

// ================================================================================================== options

export type JoinChoice = { kind: 'none' } | { kind: JoinKind; observer?: bigint };

/** `simple`, `human`, `observed:<observer hex>` or `none`. */
export function parseJoin(text: string): JoinChoice {
  if (text === 'none') return { kind: 'none' };
  if (text === 'simple' || text === 'human') return { kind: text };
  const m = /^observed:([0-9a-fA-F]{1,16})$/.exec(text);
  if (m !== null) return { kind: 'observed', observer: parseIdHex(m[1]) as bigint };
  throw new UsageError(`--join must be simple, human, observed:<observer id in hex> or none (not '${text}')`);
}

function logFormat(values: ParsedArgs['values']): 'json' | 'text' {
  const f = optString(values, 'log') ?? 'json';
  if (f !== 'json' && f !== 'text') throw new UsageError(`--log must be json or text (not '${f}')`);
  return f;
}

// ================================================================================================== init

export interface InitOptions {
  /** The configuration directory to write. */
  out: string;
  serverId: bigint;
  /** The server's public key, PEM (SubjectPublicKeyInfo). */
  serverKeyPem: string;
  broker: string;
  /** Files copied into the directory: the broker's CA, and a client certificate and key. */
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  firmware?: { name: string; version: string };
  /** Replace an existing configuration. */
  force?: boolean;
  /** The device's key pair (default: a fresh RSA-2048 pair). */
  keyPair?: { privateKey: RsaPrivateKey; privatePem: string; publicPem: string };
  /** The device id (default: random, formed as the reference forms ids). */
  deviceId?: bigint;
  /** 16 random bytes for the id (default node:crypto). */
  random16?: Uint8Array;
  /** Broker user name and password (the password goes into device.json, which is written 0600). */
  username?: string;
  password?: string;
  /** How long the device waits for a join's answer, in seconds (default 120); the C2 server must know it. */
  joinTimeoutSeconds?: number;
}

export interface InitResult {
  dir: string;
  deviceId: bigint;
  publicKey: RsaPublicKey;
  publicPem: string;
}

export const DEVICE_PUBLIC_KEY_FILE = 'device-public.pem';

/** Replaces `path` atomically and durably (hosts/node/durable.ts: temp file, fsync, rename, fsync dir). */
function writeFileAtomic(path: string, data: string | Uint8Array, mode: number): void {
  try {
    writeFileDurable(path, data, mode);
  } catch (e) {
    throw new CliError(`cannot write ${path}: ${e instanceof Error ? e.message : String(e)}`, 2);
  }
}

/**
 * Writes a device configuration directory in the form hosts/node/config.ts reads: device.json, private.pem,
 * server.pem, and device-public.pem (for registering the device with its C2 server). Returns the id and key.
 */
export function initDeviceDir(o: InitOptions): InitResult {
  if (!/^(mqtts?):\/\/[^/]+\/?$/.test(o.broker)) throw new UsageError('--broker must look like mqtts://host:port or mqtt://host:port');
  let serverKey: RsaPublicKey;
  try {
    serverKey = parsePublicKeyPem(o.serverKeyPem);
  } catch (e) {
    throw new CliError(`the server key is not a usable RSA public key: ${e instanceof Error ? e.message : String(e)}`, 2);
  }
  if (o.certFile !== undefined !== (o.keyFile !== undefined)) throw new UsageError('--cert and --key go together');
  const dir = resolve(o.out);
  const deviceJson = join(dir, 'device.json');
  if (existsSync(deviceJson) && o.force !== true) throw new CliError(`${deviceJson} already exists; use --force to replace it`, 1);
  try {
    makeDirs(dir);
  } catch (e) {
    throw new CliError(`cannot create ${dir}: ${e instanceof Error ? e.message : String(e)}`, 2);
  }

  const pair = o.keyPair ?? generateRsaKeyPair(2048);
  const random16 = o.random16 ?? new Uint8Array(randomBytes(16));
  const deviceId = o.deviceId ?? deviceIdFromRandom(random16);

  const tls: Record<string, string> = {};
  const copy = (from: string | undefined, name: string, field: 'ca' | 'cert' | 'key', mode: number) => {
    if (from === undefined) return;
    writeFileAtomic(join(dir, name), readBytes(from, `--${field} file`), mode); // a clear error if it is missing
    tls[field] = name;
  };
  copy(o.caFile, 'ca.crt', 'ca', 0o644);
  copy(o.certFile, 'client.crt', 'cert', 0o644);
  copy(o.keyFile, 'client.key', 'key', 0o600);

  const config: Record<string, unknown> = {
    id: idHex16(deviceId),
    serverId: idHex16(o.serverId),
    broker: o.broker.replace(/\/$/, ''),
    firmware: o.firmware ?? { name: 'srup-node-device', version: '1.0.0' },
  };
  if (Object.keys(tls).length > 0) config.tls = tls;
  if (o.username !== undefined) config.username = o.username;
  if (o.password !== undefined) config.password = o.password;
  if (o.joinTimeoutSeconds !== undefined) config.joinTimeoutSeconds = o.joinTimeoutSeconds;
  writeFileAtomic(join(dir, 'private.pem'), pair.privatePem, 0o600);
  writeFileAtomic(join(dir, 'server.pem'), publicKeyToPem(serverKey), 0o644);
  writeFileAtomic(join(dir, DEVICE_PUBLIC_KEY_FILE), pair.publicPem, 0o644);
  // 0600: it may hold the broker password.
  writeFileAtomic(deviceJson, JSON.stringify(config, null, 2) + '\n', 0o600);
  // A new identity gets a new state: keys, counters and image slots of an old one must not carry over. Only now,
  // once the new identity is complete: had init failed earlier (a missing --ca file, a full disk), the old
  // identity would otherwise start again with fresh counters, reusing sequence IDs and taking old messages anew.
  // (Killed between the line above and this one, the old state names another device and is refused at start.)
  if (o.force === true) {
    try {
      rmSync(join(dir, 'state'), { recursive: true, force: true });
    } catch (e) {
      throw new CliError(`cannot remove the old state ${join(dir, 'state')}: ${e instanceof Error ? e.message : String(e)}`, 2);
    }
  }
  return { dir, deviceId, publicKey: pair.privateKey.publicKey, publicPem: pair.publicPem };
}

/** The broker password for init: --password-file FILE, else $SRUP_BROKER_PASSWORD, else none. */
function brokerPassword(values: ParsedArgs['values']): string | undefined {
  const file = optString(values, 'password-file');
  if (file !== undefined) return readText(file, '--password-file').replace(/\r?\n$/, '');
  const env = process.env.SRUP_BROKER_PASSWORD;
  return env === undefined || env === '' ? undefined : env;
}

function joinTimeoutOption(values: ParsedArgs['values']): number | undefined {
  const v = optString(values, 'join-timeout');
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 1 || n > 86400) throw new UsageError('--join-timeout must be a number of seconds from 1 to 86400');
  return n;
}

function runInit({ values }: ParsedArgs, { stdout }: CommandContext): number {
  const out = requireString(values, 'out');
  const serverId = parseIdHex(requireString(values, 'server-id'));
  if (serverId === null) throw new UsageError('--server-id must be 1-16 hex digits');
  const serverKeyPath = requireString(values, 'server-key');
  const r = initDeviceDir({
    out,
    serverId,
    serverKeyPem: readText(serverKeyPath, '--server-key file'),
    broker: requireString(values, 'broker'),
    caFile: optString(values, 'ca'),
    certFile: optString(values, 'cert'),
    keyFile: optString(values, 'key'),
    force: optBoolean(values, 'force'),
    username: optString(values, 'username'),
    password: brokerPassword(values),
    joinTimeoutSeconds: joinTimeoutOption(values),
  });
  stdout.write(
    `device id: ${idHex16(r.deviceId)}\n` +
      `configuration: ${r.dir}\n` +
      `public key (register it with the C2 server): ${join(r.dir, DEVICE_PUBLIC_KEY_FILE)}\n` +
      `run with: srup device --config ${out} --join simple\n`,
  );
  return 0;
}

// ================================================================================================== running

/** One log line per agent event, ids as 16 hex digits and tokens as text (or hex when not text). */
function eventDetail(e: DeviceEvent): Record<string, string | number | boolean | null> {
  const out: Record<string, string | number | boolean | null> = {};
  for (const [k, v] of Object.entries(e)) {
    if (k === 'type') continue;
    if (typeof v === 'bigint') out[k] = idHex16(v);
    else if (v instanceof Uint8Array) out[k] = utf8DecodeOrNull(v) ?? toHex(v);
    else if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' || v === null) out[k] = v;
  }
  return out;
}

function loadConfig(dir: string): DeviceConfig {
  let st;
  try {
    st = statSync(dir);
  } catch {
    throw new CliError(`--config ${dir}: no such directory (create one with 'srup device init')`, 2);
  }
  if (!st.isDirectory()) throw new CliError(`--config ${dir}: not a directory`, 2);
  try {
    return loadDeviceConfig(dir);
  } catch (e) {
    if (e instanceof HostFileError || e instanceof Error) throw new CliError(`bad device configuration: ${e.message}`, 2);
    throw e;
  }
}

/** Runs the device in this process until SIGINT / SIGTERM (0) or an activated update (exit 75). */
async function runDevice(values: ParsedArgs['values'], io: CommandContext): Promise<number> {
  const dir = requireString(values, 'config');
  const join = parseJoin(optString(values, 'join') ?? 'none');
  const level: LogLevel = optBoolean(values, 'verbose') ? 'debug' : 'info';
  const log: Log = consoleLog({ stream: io.stderr as unknown as Writable, format: logFormat(values), level });
  const config = loadConfig(dir);

  let host;
  try {
    host = createNodeHost(config, {
      log,
      out: io.stdout as unknown as Writable,
      restart: () => {
        // The switch is durable (otadata written) and the pending update marked 'activating': reboot.
        log('info', 'restarting', { exitCode: EXIT_RESTART });
        process.exit(EXIT_RESTART);
      },
    });
  } catch (e) {
    throw new CliError(`bad device state in ${config.stateDir}: ${e instanceof Error ? e.message : String(e)}`, 2);
  }

  const device = new Device(host, {
    name: config.firmware.name,
    version: config.firmware.version,
    joinTimeoutMs: config.joinTimeoutMs,
    onOtherData: (dataId, bytes) => {
      log('info', 'data_received', { dataId, length: bytes.length, text: utf8DecodeOrNull(bytes), hex: toHex(bytes.subarray(0, 64)) });
    },
    onEvent: (e) => {
      // Rejections and undecodable data are logged where they happen.
      if (e.type !== 'connected' && e.type !== 'disconnected' && e.type !== 'rejected' && e.type !== 'bad_data') log('info', e.type, eventDetail(e));
    },
  });

  let joinStarted = false;
  device.on((e) => {
    if (e.type !== 'connected' || joinStarted || join.kind === 'none') return;
    joinStarted = true;
    device.join(join.kind, join.kind === 'observed' ? join.observer : undefined).then(
      (outcome) => log(outcome === 'joined' ? 'info' : 'warn', 'join_result', { kind: join.kind, outcome }),
      (err: unknown) => log('error', 'join_not_started', { kind: join.kind, reason: err instanceof AgentError ? err.reason : String(err) }),
    );
  });

  return new Promise<number>((resolveExit) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log('info', 'stopping', { signal });
      // A download in progress would keep the process alive until it ends: do not wait for it for long.
      setTimeout(() => process.exit(0), 3000).unref();
      device.close().then(
        () => resolveExit(0),
        () => resolveExit(0),
      );
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
    watchSupervisor(process, stop);
    device.start().catch(() => undefined); // readiness is logged as the event 'ready'
  });
}

/** What watchSupervisor needs of a process. */
export interface SupervisedProcess {
  readonly channel?: { unref(): void } | null;
  readonly connected?: boolean;
  readonly send?: unknown;
  once(event: 'disconnect', fn: () => void): unknown;
}

/**
 * Under a supervisor (an IPC channel): end with it, even if it was killed without passing a signal on. The
 * channel is only a lifeline, so it must not keep the process alive (unref). A supervisor killed while it was
 * starting us leaves a process that was given a channel that is already gone (channel null, not connected):
 * that is the supervisor gone too.
 */
export function watchSupervisor(proc: SupervisedProcess, stop: (why: string) => void): void {
  if (proc.send === undefined && proc.channel === undefined) return; // not started with IPC
  if (proc.channel === null || proc.channel === undefined || proc.connected === false) {
    stop('supervisor_gone');
    return;
  }
  proc.channel.unref();
  proc.once('disconnect', () => stop('supervisor_gone'));
}

/**
 * Runs the device in child processes of this one, starting it again whenever it exits with EXIT_RESTART (as a
 * board reboots into its new image). The child runs `<node> <this script> device ... --no-supervise`; after a
 * restart it does not join again (it is already joined). Other exit statuses end the supervisor with the same
 * status; SIGINT / SIGTERM are passed on to the child.
 */
function supervise(values: ParsedArgs['values'], io: CommandContext): Promise<number> {
  const script = process.argv[1];
  if (script === undefined) throw new CliError('cannot supervise: no script path; use --no-supervise', 2);
  const childArgs = (joinValue: string): string[] => {
    const a = ['device', '--config', requireString(values, 'config'), '--join', joinValue, '--log', logFormat(values), '--no-supervise'];
    if (optBoolean(values, 'verbose')) a.push('--verbose');
    return a;
  };
  const say = (event: string, detail: Record<string, string | number>) => {
    const rec = { time: new Date().toISOString(), level: 'info', event, ...detail };
    io.stderr.write(logFormat(values) === 'json' ? JSON.stringify(rec) + '\n' : textLogLine(rec.time, 'info', event, detail) + '\n');
  };

  return new Promise<number>((resolveExit) => {
    let child: ChildProcess | null = null;
    let stopping = false;
    const restarts: number[] = [];
    const forward = (signal: NodeJS.Signals) => {
      stopping = true;
      child?.kill(signal);
    };
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);
    const done = (code: number) => {
      process.off('SIGINT', forward);
      process.off('SIGTERM', forward);
      resolveExit(code);
    };
    const start = (joinValue: string) => {
      // The IPC channel is only a lifeline: the child stops when it closes (the supervisor died).
      const c = spawn(process.execPath, [...process.execArgv, script, ...childArgs(joinValue)], { stdio: ['inherit', 'inherit', 'inherit', 'ipc'] });
      child = c;
      say('device_process_started', { pid: c.pid ?? -1 });
      c.on('error', (e) => {
        io.stderr.write(`srup device: cannot start the device process: ${e.message}\n`);
        done(2);
      });
      c.on('exit', (code, signal) => {
        child = null;
        if (code === EXIT_RESTART && !stopping) {
          const now = Date.now();
          restarts.push(now);
          while (restarts.length > 0 && now - restarts[0] > RESTART_WINDOW_MS) restarts.shift();
          if (restarts.length > MAX_RESTARTS) {
            io.stderr.write(`srup device: restarted ${restarts.length} times within a minute; giving up\n`);
            done(1);
            return;
          }
          say('device_process_restarting', { exitCode: code });
          start('none');
          return;
        }
        done(code ?? (signal === 'SIGINT' || signal === 'SIGTERM' ? 0 : 1));
      });
    };
    start(optString(values, 'join') ?? 'none');
  });
}

export const deviceCommand: Command = {
  name: 'device',
  summary: 'Run a SRUP device on this computer, or create its configuration (init).',
  synopsis: '--config DIR [--join KIND] [--log json|text] [--no-supervise]  |  init --out DIR --server-id HEX --server-key PEM --broker URL',
  positionals: { min: 0, max: 1 },
  options: {
    config: { type: 'string', value: 'DIR', description: 'the device configuration directory (device.json, private.pem, server.pem)' },
    join: { type: 'string', value: 'KIND', description: 'join at start: simple, human, observed:<observer hex> or none (default none)' },
    log: { type: 'string', value: 'FORMAT', description: 'log lines on stderr: json (default) or text' },
    verbose: { type: 'boolean', description: 'log debug events too' },
    'no-supervise': { type: 'boolean', description: 'exit with status 75 on an activated update instead of restarting' },
    supervise: { type: 'boolean', description: 'restart the device process on status 75 (the default)' },
    out: { type: 'string', value: 'DIR', description: 'init: the configuration directory to write' },
    'server-id': { type: 'string', value: 'HEX', description: "init: the C2 server's 64-bit id" },
    'server-key': { type: 'string', value: 'PEM', description: "init: the C2 server's RSA public key" },
    broker: { type: 'string', value: 'URL', description: 'init: the MQTT broker, mqtts://host:port (or mqtt://)' },
    ca: { type: 'string', value: 'FILE', description: "init: the broker's CA certificate (PEM)" },
    cert: { type: 'string', value: 'FILE', description: 'init: client certificate (PEM), if the broker asks for one' },
    key: { type: 'string', value: 'FILE', description: 'init: the client certificate\'s key (PEM)' },
    force: { type: 'boolean', description: 'init: replace an existing configuration (and its state)' },
    username: { type: 'string', value: 'NAME', description: "init: the broker user name (docs/broker-acl.md: the device's id)" },
    'password-file': { type: 'string', value: 'FILE', description: 'init: a file holding the broker password (else $SRUP_BROKER_PASSWORD)' },
    'join-timeout': { type: 'string', value: 'S', description: 'init: seconds a join waits for its answer (default 120; give the C2 server the same)' },
  },
  details: `The device logs one line per event on stderr and draws join challenges on stdout. It keeps its state
(key store, sequence counters, image slots) in DIR/state. When an update is activated the device process exits
with status ${EXIT_RESTART} once the switch is durable; the supervisor (on unless --no-supervise) starts it again, and
the new image confirms the update to the server.

'srup device init' writes DIR/device.json, DIR/private.pem, DIR/server.pem and DIR/${DEVICE_PUBLIC_KEY_FILE}, and
prints the new device id; register the id and public key with the C2 server before the device joins.

Exit status: 0 stopped by SIGINT/SIGTERM or init done, 1 init: DIR exists without --force, 2 usage error or
bad configuration, ${EXIT_RESTART} (with --no-supervise) restart after an activated update.`,

  run(args, io) {
    const [sub] = args.positionals;
    if (sub !== undefined && sub !== 'init') throw new UsageError(`unknown subcommand '${sub}' (only 'init')`);
    if (sub === 'init') {
      if (optString(args.values, 'config') !== undefined) throw new UsageError('init takes --out, not --config');
      return runInit(args, io);
    }
    for (const initOnly of ['out', 'server-id', 'server-key', 'broker', 'ca', 'cert', 'key', 'force', 'username', 'password-file', 'join-timeout']) {
      if (args.values[initOnly] !== undefined) throw new UsageError(`--${initOnly} belongs to 'srup device init'`);
    }
    requireString(args.values, 'config');
    parseJoin(optString(args.values, 'join') ?? 'none');
    logFormat(args.values);
    if (optBoolean(args.values, 'supervise') && optBoolean(args.values, 'no-supervise')) {
      throw new UsageError('--supervise and --no-supervise contradict each other');
    }
    if (optBoolean(args.values, 'no-supervise')) return runDevice(args.values, io);
    // Check the configuration here, so that a bad one is reported once and not by every child.
    loadConfig(requireString(args.values, 'config'));
    return supervise(args.values, io);
  },
};
