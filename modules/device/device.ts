/**
 * The device API a user's firmware programs against: the SRUP device agent (modules/agent) as a library, the same
 * on an ESP32, in the Moddable simulator and on Node. The platform supplies an AgentHost (hosts/moddable:
 * `openDevice` in modules/device on the firmware; hosts/node: `openNodeDevice`); the application supplies its
 * name and version, its handlers, and sends its readings.
 *
 *   const device = new Device(host, { name: 'greenhouse', version: '1.2.0', join: 'human', onEvent: show });
 *   device.onAction(1, () => relay.write(1));                     // 0x20; return false or throw for 0x2F
 *   device.onAction(2, async () => (await valve.close()) === 'ok');
 *   device.onData('setpoint', 'double', (v) => { setpoint = v; });
 *   await device.start();                                         // connected, and joined to its server
 *   await device.sendData('temperature', 21.5, 'double');         // resolves on the broker's PUBACK
 *
 * Actions: one handler per action id (0-255), sync or async; it succeeds unless it returns false or throws
 * (answered 0x20 / 0x2F). An action id without a handler is answered 0x2E. Handlers run once per command: a
 * command is never taken twice (replay check), and after a power cut the device answers what it had accepted but
 * not yet answered (0x2F for an action cut off before it finished) rather than run it again.
 *
 * Data from the server: one typed handler per data id, with the reference's encodings (modules/srup/data.ts:
 * string UTF-8, int32 and double little-endian, bytes as they are, and the other fixed-size kinds). A payload that
 * does not decode as the kind is not handed over (logged, and a 'bad_data' event). Other data ids go to
 * `onOtherData`, or are logged and dropped.
 *
 * Data to the server: `sendData(id, value, kind?)` signs and sequences a data message like every message. The
 * kind defaults from the value as pySRUP's typed setters choose it: string 'string', Uint8Array 'bytes', bigint
 * 'int64', an integer number in int32 range 'int32', any other number 'double'. While the device is offline at
 * most `queueLimit` (default 8) messages wait and go out after the reconnect; beyond that sendData rejects
 * (AgentError 'queue_full'). A reading is not kept across a power cut.
 *
 * The ID request is answered "<name> <version>".
 */
import { Agent, AgentError } from '../agent/agent.js';
import type { AgentEvent, JoinKind, JoinOutcome } from '../agent/agent.js';
import type { AgentHost } from '../agent/host.js';
import { decodeData, isDataKind } from '../srup/data.js';
import type { DataKind, DataValue } from '../srup/data.js';

export { AgentError } from '../agent/agent.js';
export type { AgentEvent, JoinKind, JoinOutcome } from '../agent/agent.js';
export type { DataKind, DataValue } from '../srup/data.js';

/** An action handler: anything but false (or a throw) is success. */
export type ActionHandler = (actionId: number) => boolean | void | Promise<boolean | void>;

/** What a Device tells the application: the agent's events, and these. */
export type DeviceEvent =
  | AgentEvent
  /** The device is connected and joined to its server: commands arrive and data can be sent. */
  | { type: 'ready'; server: bigint }
  /** Data from the server for a handler whose kind it does not decode as. */
  | { type: 'bad_data'; dataId: string; kind: DataKind; length: number };

export interface DeviceOptions {
  /** The application's name and version, sent as the answer to an ID request: "<name> <version>". */
  name: string;
  version: string;
  /**
   * Join the server at the first connection when the device has never had a message from it (a new device):
   * 'simple', 'human' (the challenge is shown by the host's presenter) or 'none' (default: the server joins it
   * with a join command, or it is already joined).
   */
  join?: 'simple' | 'human' | 'none';
  /** Every DeviceEvent. */
  onEvent?: (event: DeviceEvent) => void;
  /** Data from the server for ids without a typed handler: the raw payload. */
  onOtherData?: (dataId: string, bytes: Uint8Array) => void;
  /** How many data messages may wait while offline (default 8). */
  queueLimit?: number;
  /** How long a join waits for its result (default 120 000 ms). */
  joinTimeoutMs?: number;
}

/** The kind sendData uses when none is given (pySRUP's choice for a Python value of that type). */
export function defaultDataKind(value: unknown): DataKind {
  if (typeof value === 'string') return 'string';
  if (value instanceof Uint8Array) return 'bytes';
  if (typeof value === 'bigint') return 'int64';
  if (typeof value === 'number' && Number.isInteger(value) && value >= -0x80000000 && value <= 0x7fffffff) return 'int32';
  if (typeof value === 'number') return 'double';
  throw new AgentError('bad_argument', 'data must be a string, number, bigint or Uint8Array');
}

interface DataHandlerEntry {
  readonly kind: DataKind;
  readonly handler: (value: never) => void;
}

export class Device {
  /** The agent underneath (joins by hand, deregister, resign, idle()). */
  readonly agent: Agent;
  /** This device's 64-bit id. */
  readonly id: bigint;
  private readonly host: AgentHost;
  private readonly options: DeviceOptions;
  /** The agent's action table (read by the agent at every command). */
  private readonly actions = new Map<number, (id: number) => Promise<boolean>>();
  private readonly dataHandlers = new Map<string, DataHandlerEntry>();
  private readonly listeners = new Set<(e: DeviceEvent) => void>();
  private started = false;
  private isReady = false;
  private joinAsked = false;
  private readyWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];

  constructor(host: AgentHost, options: DeviceOptions) {
    if (typeof options?.name !== 'string' || options.name.length === 0 || typeof options.version !== 'string') {
      throw new AgentError('bad_argument', 'the application name and version are required');
    }
    if (options.join !== undefined && options.join !== 'simple' && options.join !== 'human' && options.join !== 'none') {
      throw new AgentError('bad_argument', `join must be simple, human or none (not ${String(options.join)})`);
    }
    this.options = options;
    this.host = host;
    if (options.onEvent) this.listeners.add(options.onEvent);
    this.agent = new Agent(this.host, {
      firmwareName: options.name,
      firmwareVersion: options.version,
      actions: this.actions,
      onData: (dataId, bytes) => this.onServerData(dataId, bytes),
      onEvent: (e) => this.onAgentEvent(e),
      queueLimit: options.queueLimit,
      joinTimeoutMs: options.joinTimeoutMs,
    });
    this.id = this.agent.deviceId;
  }

  /** Registers the handler of action `id` (0-255), replacing any. Returns the device, for chaining. */
  onAction(id: number, handler: ActionHandler): this {
    if (!Number.isInteger(id) || id < 0 || id > 255) throw new AgentError('bad_argument', `action id must be 0-255 (not ${id})`);
    if (typeof handler !== 'function') throw new AgentError('bad_argument', 'an action handler must be a function');
    this.actions.set(id, async (actionId) => (await handler(actionId)) !== false);
    return this;
  }

  /** Registers the handler of data id `dataId`, with the kind its payload is decoded as. */
  onData<K extends DataKind>(dataId: string, kind: K, handler: (value: DataValue<K>) => void): this {
    if (typeof dataId !== 'string' || dataId.length === 0) throw new AgentError('bad_argument', 'a data id must be a non-empty string');
    if (!isDataKind(kind)) throw new AgentError('bad_argument', `unknown data kind ${String(kind)}`);
    this.dataHandlers.set(dataId, { kind, handler: handler as (value: never) => void });
    return this;
  }

  /** Adds an event listener; returns a function that removes it. */
  on(listener: (e: DeviceEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** True once connected and joined to a server (see start()). */
  get ready(): boolean {
    return this.isReady;
  }

  /** The server this device obeys, or null. */
  get serverId(): bigint | null {
    return this.agent.serverId;
  }

  /**
   * Starts connecting (once). Resolves when the device is ready: connected, with a server, and joined (by the
   * `join` option's join when one was needed). Rejects with AgentError 'no_server' (the device has none) or
   * 'not_joined' (the join ended without joining); the device keeps running either way.
   */
  start(): Promise<void> {
    if (!this.started) {
      this.started = true;
      this.agent.start();
    }
    return this.whenReady();
  }

  /** Resolves when the device is ready (at once if it is). */
  whenReady(): Promise<void> {
    if (this.isReady) return Promise.resolve();
    return new Promise((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
  }

  /** Joins by hand (see Agent.join). */
  join(kind: JoinKind = 'simple', observerId?: bigint): Promise<JoinOutcome> {
    return this.agent.join(kind, observerId);
  }

  /**
   * Sends `value` as data `dataId` to the server, as `kind` (default: defaultDataKind(value)). Resolves once the
   * broker has it; while offline it waits (at most queueLimit of them).
   */
  sendData(dataId: string, value: string | number | bigint | Uint8Array, kind?: DataKind): Promise<void> {
    try {
      if (typeof dataId !== 'string' || dataId.length === 0) throw new AgentError('bad_argument', 'a data id must be a non-empty string');
      const k = kind ?? defaultDataKind(value);
      if (!isDataKind(k)) throw new AgentError('bad_argument', `unknown data kind ${String(k)}`);
      return this.agent.sendData(dataId, k, value as DataValue<typeof k>);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Messages not yet taken by the broker. */
  get unsent(): number {
    return this.agent.unsent;
  }

  /** Stops: a waiting join ends, waiting messages are dropped, the connection closes. */
  async close(): Promise<void> {
    this.fail(new AgentError('not_started', 'the device was closed'));
    await this.agent.close();
  }

  // ---------------------------------------------------------------------------------------------- inside

  private onServerData(dataId: string, bytes: Uint8Array): void {
    const entry = this.dataHandlers.get(dataId);
    if (entry === undefined) {
      if (this.options.onOtherData !== undefined) this.options.onOtherData(dataId, bytes);
      else this.host.log('info', 'data_ignored', { dataId });
      return;
    }
    let value: unknown;
    try {
      value = decodeData(entry.kind, bytes);
    } catch {
      this.host.log('warn', 'bad_data', { dataId, kind: entry.kind, length: bytes.length });
      this.emit({ type: 'bad_data', dataId, kind: entry.kind, length: bytes.length });
      return;
    }
    entry.handler(value as never);
  }

  private onAgentEvent(e: AgentEvent): void {
    this.emit(e);
    if (e.type === 'connected') this.onConnected();
    else if (e.type === 'joined') this.becomeReady(e.server);
    else if (e.type === 'join_refused' || e.type === 'join_failed') {
      if (!this.isReady) this.fail(new AgentError('not_joined', `the join ended: ${e.type === 'join_refused' ? 'refused' : e.reason}`));
    }
  }

  private onConnected(): void {
    if (this.isReady) return;
    const server = this.agent.serverId;
    const join = this.options.join ?? 'none';
    if (server === null) {
      // Not joined to anyone: ready when a join command (or a join by hand) makes a server.
      if (join === 'none') this.fail(new AgentError('no_server', 'this device has no server'));
      return;
    }
    if (join !== 'none' && !this.joinAsked && this.host.sequences.lastAccepted(server) === 0n) {
      this.joinAsked = true;
      this.agent.join(join).catch((e: unknown) => this.fail(e instanceof Error ? e : new AgentError('not_joined', String(e))));
      return;
    }
    if (!this.joinAsked) this.becomeReady(server);
  }

  private becomeReady(server: bigint): void {
    if (this.isReady) return;
    this.isReady = true;
    this.emit({ type: 'ready', server });
    for (const w of this.readyWaiters.splice(0)) w.resolve();
  }

  /** Rejects those waiting for readiness. */
  private fail(e: Error): void {
    for (const w of this.readyWaiters.splice(0)) w.reject(e);
  }

  private emit(e: DeviceEvent): void {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch (err) {
        this.host.log('warn', 'listener_threw', { event: e.type, why: String(err) });
      }
    }
  }
}
