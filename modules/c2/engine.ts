/**
 * The C2 engine: the server side of every SRUP flow, over the host interfaces of host.ts.
 *
 *   const engine = new C2Engine(host, { autoActivate: true });
 *   engine.on((e) => ...);                       // join requests, challenges, data, updates...
 *   await engine.start();                        // subscribes SRUP/servers/<own id>/# and SRUP/<device>/#
 *   engine.provision(deviceId, publicKey);       // keys come from provisioning: there is no KeyEx here
 *   engine.provision(pyDevice, key, { profile: 'reference' });   // a pySRUP device (see DeviceProfile)
 *   const status = await engine.sendAction(deviceId, 3);          // 0x20, 0x2E, 0x2F; null for 'reference'
 *
 * A message's path (five files beside the host's transport and registry): transport -> C2Engine.onMessage
 * (here) -> receive() (receive.ts: topic and permission, the sender read from the registry; decode, replay and
 * signature in modules/srup/session.ts, the same steps as the device's) -> C2Engine.dispatch (here) -> the flow
 * (join.ts, update.ts, or here for action / data / ID request / leaving) -> EngineCore.send (core.ts: sequence
 * ID, signature, audit) -> transport. The flows send, subscribe and report through core.ts and return to the
 * engine what it must do next (a join accepted: identifyOnJoin); no call climbs back into the engine.
 *
 * Responses are matched by token, never by order, so any number of requests may be in flight to one device.
 * Every request settles exactly once: with the device's answer, or with C2Error('timeout'), 'device_removed',
 * 'stopped' or 'publish_failed'.
 *
 * Devices with profile 'reference' (pySRUP) answer neither actions nor activates: for them an action settles
 * when the broker takes it (with status null), and an activate ends the update in state 'activated'.
 */
import { peekHeader } from '../srup/codec.js';
import { idHex16, toHex, utf8, utf8DecodeOrNull } from '../srup/bytes.js';
import { encodeData } from '../srup/data.js';
import { FloodGate } from '../srup/flood.js';
import type { DataKind, DataValue } from '../srup/data.js';
import type { Message, MessageOf } from '../srup/schema.js';
import { Status, typeInfo } from '../srup/schema.js';
import { deviceFilter, serverJoinFilter } from '../srup/topics.js';
import type { RsaPublicKey } from '../../crypto/types.js';
import { C2Error } from './errors.js';
import type { C2Listener, Challenge, RemovalReason } from './events.js';
import type { C2Host, C2Options, ClusterNote } from './host.js';
import { EngineCore, auditBytes } from './core.js';
import { JoinFlows, challengeOf, type JoinTiming } from './join.js';
import { receive } from './receive.js';
import { ACTIVATE_STATUSES, INITIATE_STATUSES, UpdateFlow } from './update.js';
import type { DeviceProfile, DeviceRecord, DeviceState, UpdateRecord } from './registry.js';
import { isDeviceProfile } from './registry.js';
import { DEFAULT_DEVICE_RATE, DeviceRates } from './rate.js';

export { AUDIT_MAX_BYTES, auditBytes } from './core.js';

export const ID_RESPONSE_DATA_ID = 'IDENTIFICATION_RESPONSE';

/** How pySRUP's ID response starts (SRUP-WIRE.md §11 "ID request"); such a device gets profile 'reference'. */
export const REFERENCE_ID_PREFIX = 'pySRUP version';

/**
 * How an action ended: the device's status (0x20 done, 0x2E unknown action, 0x2F failed), or null for a device
 * that does not answer actions (profile 'reference'): the broker took the action and no answer will come.
 */
export type ActionResult = number | null;

const DEFAULT_REQUEST_TIMEOUT = 30_000;

/** How many answers and readings the engine remembers to recognise copies sent again (C2Engine.sentAgain). */
const RECENT_ANSWERS = 1024;

const RESPONSE_CODE = typeInfo('response').code;

interface Request {
  readonly kind: 'action' | 'id';
  readonly device: bigint;
  readonly resolve: (v: never) => void;
  readonly reject: (e: Error) => void;
  timer: unknown;
}

const ACTION_STATUSES: ReadonlySet<number> = new Set([Status.ACTION_SUCCESS, Status.ACTION_UNKNOWN, Status.ACTION_FAIL]);
const OBSERVATION_STATUSES: ReadonlySet<number> = new Set([
  Status.OBSERVED_JOIN_VALID,
  Status.OBSERVED_JOIN_INVALID,
  Status.OBSERVED_JOIN_FAIL,
]);

/** Text of a byte field without trailing 00 bytes (pySRUP peers may add one); null when not UTF-8. */
function cText(b: Uint8Array): string | null {
  let end = b.length;
  while (end > 0 && b[end - 1] === 0) end--;
  return utf8DecodeOrNull(b.subarray(0, end));
}

const VERSION_TOKEN = /^v?\d[\w.+-]*$/;

/**
 * Firmware name and version from an ID response: "<name> <version>" as the device agent sends it, or pySRUP's
 * intended "pySRUP version 2.0". The last word is a version only if it looks like one (/^v?\d[\w.+-]*$/);
 * otherwise there is no version and the whole text is the name. pySRUP's real default text, which formats two
 * lambda objects instead of "2.0" (SRUP-WIRE.md §12 item 21), is name 'pySRUP' with no version.
 */
export function parseIdentification(text: string): { name: string | null; version: string | null } {
  const t = text.trim();
  if (t.length === 0) return { name: null, version: null };
  const m = /^(.*\S)\s+(\S+)$/.exec(t);
  if (m !== null && VERSION_TOKEN.test(m[2])) return { name: m[1].replace(/\s+version$/i, ''), version: m[2] };
  if (t.startsWith(REFERENCE_ID_PREFIX + ' ')) return { name: 'pySRUP', version: null };
  return { name: t, version: null };
}

export class C2Engine {
  readonly serverId: bigint;
  private readonly host: C2Host;
  private readonly options: C2Options;
  private readonly core: EngineCore;
  private readonly joins: JoinFlows;
  private readonly requests = new Map<string, Request>();
  private readonly updates: UpdateFlow;
  /** Answers and readings taken lately (device, type, status or data id, token), to recognise a copy sent again. */
  private readonly recentAnswers = new Map<string, true>();
  private state: 'new' | 'started' | 'stopped' = 'new';
  private readonly rates: DeviceRates;
  /** Devices told about in the log as rate limited, and when (one line a minute each). */
  private readonly limitedLogged = new Map<bigint, number>();
  private inFlight = 0;
  /** A flood of forgeries costs forgeries, not the devices' answers (modules/srup/flood.ts). */
  private readonly flood: FloodGate;
  private stopListening: (() => void) | null = null;
  /** Per 'reference' device: the end of its line of commands (see inLane). */
  private readonly lanes = new Map<bigint, Promise<void>>();
  private sweepTimer: unknown = null;
  private idleWaiters: (() => void)[] = [];

  constructor(host: C2Host, options: C2Options = {}) {
    this.host = host;
    this.options = options;
    this.serverId = host.serverId;
    this.core = new EngineCore(host, options);
    this.joins = new JoinFlows(this.core);
    this.updates = new UpdateFlow(this.core);
    this.rates = new DeviceRates(options.deviceRate ?? DEFAULT_DEVICE_RATE);
    this.flood = new FloodGate(host.clock, host.log);
    if (options.onEvent) this.core.listeners.add(options.onEvent);
  }

  // ================================================================================================ lifecycle

  /**
   * Installs the transport handlers, starts connecting and subscribes SRUP/servers/<own id>/# and SRUP/<device>/#
   * for every joined device (again on every connect). Re-arms the timers of updates that were waiting when the
   * engine last stopped. Resolves once the subscriptions are acknowledged.
   */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new C2Error('bad_argument', 'start() may be called once');
    this.state = 'started';
    this.core.running = true;
    for (const d of this.host.registry.devices('joined')) this.core.subscribed.add(d.id);
    this.host.transport.listen({
      message: (topic, payload) => this.onMessage(topic, payload),
      connected: (sessionPresent) => {
        this.host.log('info', 'connected', { sessionPresent });
        this.core.emit({ type: 'connected', sessionPresent });
        this.subscribeAll().catch((e: unknown) => this.host.log('error', 'subscribe_failed', { why: String(e) }));
      },
      disconnected: (reason) => {
        this.host.log('info', 'disconnected', { reason });
        this.core.emit({ type: 'disconnected', reason });
      },
    });
    this.updates.rearm(true);
    this.joins.rearm();
    if (this.host.cluster !== undefined) this.stopListening = this.host.cluster.listen((n) => this.onClusterNote(n));
    this.sweep();
    this.host.log('info', 'starting', { server: idHex16(this.serverId), devices: this.core.subscribed.size });
    this.host.transport.start();
    await this.subscribeAll();
  }

  /**
   * Stops acting on messages, clears every timer and rejects every waiting request with C2Error('stopped').
   * The transport is the application's: it is not closed here.
   */
  stop(): void {
    if (this.state === 'stopped') return;
    this.state = 'stopped';
    this.core.running = false;
    const stopped = () => new C2Error('stopped', 'the engine was stopped');
    for (const [key, r] of this.requests) {
      this.host.clock.clearTimeout(r.timer);
      this.requests.delete(key);
      r.reject(stopped());
    }
    this.updates.stop(stopped);
    this.joins.stop();
    this.stopListening?.();
    this.stopListening = null;
    if (this.sweepTimer !== null) this.host.clock.clearTimeout(this.sweepTimer);
    this.sweepTimer = null;
    this.flood.close();
  }

  /** Adds an event listener; returns a function that removes it. */
  on(listener: C2Listener): () => void {
    this.core.listeners.add(listener);
    return () => this.core.listeners.delete(listener);
  }

  /** Resolves once no received message is being acted on (tests and orderly shutdown). */
  idle(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  // ================================================================================================ devices

  /**
   * Provisioning: registers (or re-registers) a device's public key. The device may then join. Re-registering
   * a joined device ends its membership (state 'provisioned', topic unsubscribed). `profile` says what the
   * device answers ('srup', the default for a new device, or 'reference' for pySRUP); re-registering without it
   * keeps the profile the device had.
   */
  provision(id: bigint, publicKey: RsaPublicKey, options: { profile?: DeviceProfile } = {}): DeviceRecord {
    if (options.profile !== undefined && !isDeviceProfile(options.profile)) {
      throw new C2Error('bad_argument', `profile must be 'srup' or 'reference'`);
    }
    const rec = this.host.registry.addDevice(id, publicKey, this.core.now(), options.profile);
    if (this.core.subscribed.has(id)) this.core.unsubscribeDevice(id).catch(() => undefined);
    return rec;
  }

  /**
   * Removes a device from the registry (an operator's clean-up; no message is sent). Its topic is unsubscribed
   * and its requests end; its sequence counters stay, so that a device registered again under the same id never
   * gets an ID it had already. False if the device was unknown.
   */
  removeDevice(id: bigint): boolean {
    const had = this.host.registry.removeDevice(id, { keepCounters: true });
    if (this.core.subscribed.has(id)) this.core.unsubscribeDevice(id).catch((e: unknown) => this.host.log('warn', 'unsubscribe_failed', { why: String(e) }));
    for (const [key, r] of this.requests) {
      if (r.device === id) {
        this.host.clock.clearTimeout(r.timer);
        this.requests.delete(key);
        r.reject(new C2Error('device_removed', `device ${idHex16(id)} was removed from the registry`));
      }
    }
    if (had) this.host.log('info', 'device_forgotten', { device: idHex16(id) });
    return had;
  }

  /** Changes what the engine expects of a registered device (its state and membership stay as they are). */
  setProfile(id: bigint, profile: DeviceProfile): DeviceRecord {
    if (!isDeviceProfile(profile)) throw new C2Error('bad_argument', `profile must be 'srup' or 'reference'`);
    const d = this.host.registry.device(id);
    if (d === null) throw new C2Error('unknown_device', `device ${idHex16(id)} is not registered`);
    if (d.profile === profile) return d;
    const rec = this.host.registry.updateDevice(id, { profile }, this.core.now());
    this.host.log('info', 'profile_set', { device: idHex16(id), profile, was: d.profile });
    this.core.emit({ type: 'profile', device: id, profile, inferred: false });
    return rec;
  }

  device(id: bigint): DeviceRecord | null {
    return this.host.registry.device(id);
  }

  devices(state?: DeviceState): DeviceRecord[] {
    return this.host.registry.devices(state);
  }

  /** Devices with a join in progress. */
  pendingJoins(): DeviceRecord[] {
    return this.host.registry.devices('pending');
  }

  /** The challenge (secret, grid, blink code) of a pending human-moderated or observed join, or null. */
  challenge(id: bigint): Challenge | null {
    const d = this.host.registry.device(id);
    return d === null || d.state !== 'pending' || d.joinSecret === null ? null : challengeOf(d.joinSecret);
  }

  // ================================================================================================ joins

  /**
   * Accepts the pending join of `id`: SRUP/<id>/# is subscribed, then response 0x50 goes out with the pending
   * token (the join request's, or that of the 0x0C / 0x0E sent). Rejects C2Error('no_pending_join') otherwise.
   */
  async approveJoin(id: bigint): Promise<void> {
    this.runnable();
    if (await this.joins.answer(id, Status.JOIN_SUCCESS)) this.afterJoin(id);
  }

  /** Refuses the pending join of `id`: response 0x5E with the pending token. */
  async refuseJoin(id: bigint): Promise<void> {
    this.runnable();
    await this.joins.answer(id, Status.JOIN_REFUSED);
  }

  /** When the pending join of `id` was asked for and when it is failed (expiresAt null: never); null if none. */
  joinTiming(id: bigint): JoinTiming | null {
    return this.joins.timing(id);
  }

  /** Fails the pending join of `id`: response 0x5F with the pending token. */
  async failJoin(id: bigint): Promise<void> {
    this.runnable();
    await this.joins.answer(id, Status.JOIN_FAIL);
  }

  /**
   * Server-initiated join: join_command 0x0A naming `id`. The device does not answer; it is recorded as joined
   * (kind 'command') and its topic subscribed before the command is published.
   */
  async sendJoinCommand(id: bigint): Promise<void> {
    this.runnable();
    return this.joins.command(id);
  }

  // ================================================================================================ update

  /**
   * initiate 0x01 with a new token: url and digest as pySRUP sends them (text + a trailing 00). `digestHex` is
   * the SHA-256 of the file as 64 hex digits (sent lowercase). Resolves with the update record once the device
   * answers (state 'staged' on 0x00, 'failed' with the status on 0xFC-0xFF); rejects C2Error('timeout') after
   * initiateTimeoutMs (the record is then 'failed', failure 'initiate_timeout').
   * With options.autoActivate the activate follows a 0x00 by itself (see awaitUpdate).
   */
  async initiateUpdate(id: bigint, url: string, digestHex: string): Promise<UpdateRecord> {
    return this.startUpdate(id, url, digestHex).response;
  }

  /**
   * Like initiateUpdate, but returns the update's token at once (the record is already in the registry) with
   * the promise of the device's answer. Throws C2Error synchronously for a bad argument or a device that is not
   * joined.
   */
  startUpdate(id: bigint, url: string, digestHex: string): { token: string; response: Promise<UpdateRecord> } {
    this.runnable();
    this.core.requireJoined(id);
    return this.updates.start(id, url, digestHex);
  }

  /**
   * activate 0x03 with the initiate's token, for a 'staged' update given by token, or the latest staged update
   * of a device. Resolves with the record once the device confirms after its restart ('confirmed' on 0x10,
   * 'failed' with status 0x1F); rejects C2Error('timeout') after activateTimeoutMs (record 'failed', failure
   * 'activate_timeout'). A device with profile 'reference' never confirms: the update becomes 'activated' as
   * soon as the broker takes the activate, and no timer is armed.
   */
  async activateUpdate(target: bigint | string): Promise<UpdateRecord> {
    this.runnable();
    return this.updates.activate(target);
  }

  /** Resolves with the update record once it is 'confirmed', 'activated' or 'failed' (at once if it already is). */
  async awaitUpdate(token: string): Promise<UpdateRecord> {
    return this.updates.settled(token);
  }

  // ================================================================================================ commands

  /**
   * action 0x04; resolves with the device's status: 0x20 done, 0x2E unknown action, 0x2F failed. For a device
   * with profile 'reference', which never answers, it resolves with null once the broker took the action.
   */
  async sendAction(id: bigint, actionId: number): Promise<ActionResult> {
    this.runnable();
    const device = this.core.requireJoined(id);
    if (!Number.isInteger(actionId) || actionId < 0 || actionId > 255) {
      return Promise.reject(new C2Error('bad_argument', 'actionId must be an integer 0..255'));
    }
    const token = this.core.newToken();
    if (device.profile === 'reference') return this.inLane(id, () => this.core.send('action', id, token, { actionId }).then(() => null));
    const answer = this.track<number>('action', id, token);
    this.core.send('action', id, token, { actionId }).catch((e: unknown) => this.failRequest(token, e));
    return answer;
  }

  /** id_request 0x06; resolves with the IDENTIFICATION_RESPONSE text (also stored in the registry). */
  async requestId(id: bigint): Promise<string> {
    this.runnable();
    const device = this.core.requireJoined(id);
    const ask = () => {
      const token = this.core.newToken();
      const answer = this.track<string>('id', id, token);
      this.core.send('id_request', id, token, {}).catch((e: unknown) => this.failRequest(token, e));
      return answer;
    };
    return device.profile === 'reference' ? this.inLane(id, ask) : ask();
  }

  /** data 0x05 with a new token; `kind` as in modules/srup/data.ts. Resolves once the broker took it. */
  async sendData<K extends DataKind>(id: bigint, dataId: string, kind: K, value: DataValue<K>): Promise<void> {
    this.runnable();
    this.core.requireJoined(id);
    let data: Uint8Array;
    try {
      data = encodeData(kind, value);
    } catch (e) {
      return Promise.reject(new C2Error('bad_argument', e instanceof Error ? e.message : String(e)));
    }
    const device = this.host.registry.device(id);
    const send = () => this.core.send('data', id, this.core.newToken(), { dataId: utf8(dataId), data });
    return device?.profile === 'reference' ? this.inLane(id, send) : send();
  }

  /**
   * One command in flight to a 'reference' (pySRUP) device. pySRUP keeps one sequence counter per peer for both
   * directions: a command sent while it is still answering the previous one carries a sequence ID its answer has
   * already used, and is dropped as a replay. So a reference device's commands wait in line: `run` starts once
   * the previous command is done (answered, timed out or failed; for a command the device never answers, once
   * the broker took it).
   */
  private inLane<T>(device: bigint, run: () => Promise<T>): Promise<T> {
    const before = this.lanes.get(device) ?? Promise.resolve();
    const result = before.then(() => {
      if (this.state !== 'started') throw new C2Error('stopped', 'the engine was stopped');
      return run();
    });
    const done = result.then(
      () => undefined,
      () => undefined,
    );
    this.lanes.set(device, done);
    void done.then(() => {
      if (this.lanes.get(device) === done) this.lanes.delete(device);
    });
    return result;
  }

  /** terminate_command 0x11: the device leaves (state 'terminated', topic unsubscribed, requests rejected). */
  async terminate(id: bigint): Promise<void> {
    return this.removeBy(id, 'terminate_command', 'terminated');
  }

  /** deregister_command 0x13: the device drops this server's key (state 'deregistered'). */
  async deregister(id: bigint): Promise<void> {
    return this.removeBy(id, 'deregister_command', 'deregistered');
  }

  // ================================================================================================ receiving

  private onMessage(topic: string, payload: Uint8Array, attempt = 1): void {
    if (this.state !== 'started') return;
    if (attempt === 1 && this.overRate(topic, payload)) return;
    const { registry } = this.host;
    // One group: the accepted sequence ID, last seen / last response and the audit line are durable (with those
    // of the other messages that arrived at the same moment: one commit) before the message is acted on.
    this.flood.begin();
    const accepted = registry.group(() => {
      const r = receive({ self: this.serverId, registry, crypto: this.host.crypto, log: this.host.log, flood: this.flood }, topic, payload);
      if (!r.ok) return r;
      const m = r.message;
      const now = this.core.now();
      if (m.type !== 'response') this.rates.take(m.senderId, now);
      registry.markSeen(m.senderId, now, m.type === 'response' ? { status: m.fields.status, token: m.token, at: now } : null);
      registry.recordAudit({
        at: now,
        direction: 'in',
        device: m.senderId,
        type: m.type,
        sequenceId: m.sequenceId,
        token: m.token,
        status: m.type === 'response' ? m.fields.status : null,
        bytes: auditBytes(payload),
      });
      return r;
    });
    this.flood.end();
    this.run(() =>
      accepted.then(
        (r) => {
          if (!r.ok) {
            // A flood's refusals are counted by the gate, not told to the console one by one.
            if (r.rejection !== null && r.rejection.reason !== 'implausible') this.core.emit({ type: 'rejected', reason: r.rejection.reason, topic, sender: r.rejection.sender });
            return;
          }
          if (this.state !== 'started') return;
          const m = r.message;
          if (this.sentAgain(m)) {
            this.host.log('info', 'duplicate_answer', { device: idHex16(m.senderId), type: m.type, token: toHex(m.token) });
            this.core.emit({ type: 'duplicate', device: m.senderId, messageType: m.type, token: m.token });
            return;
          }
          return this.dispatch(m);
        },
        (e: unknown) => {
          // Several server nodes on one database: another node took this message first, or the database chose
          // this node's transaction as a deadlock victim (its writes were undone: receive it again).
          if (e instanceof C2Error && e.reason === 'already_accepted') {
            this.host.log('info', 'accepted_elsewhere', { topic, why: e.message });
            return;
          }
          if ((e as { retryable?: unknown }).retryable === true && attempt < 5) {
            this.host.log('info', 'receive_retry', { topic, attempt });
            this.onMessage(topic, payload, attempt + 1);
            return;
          }
          throw e;
        },
      ),
    );
  }

  /** True (and reported) when a registered device sent more unasked messages than its rate allows. */
  private overRate(topic: string, payload: Uint8Array): boolean {
    let sender: bigint;
    try {
      const h = peekHeader(payload);
      if (h.code === RESPONSE_CODE || h.senderId === this.serverId) return false;
      sender = h.senderId;
    } catch {
      return false; // the receive steps say why
    }
    const now = this.core.now();
    if (this.rates.allows(sender, now)) return false;
    const logged = this.limitedLogged.get(sender);
    if (logged === undefined || now - logged >= 60_000) {
      this.limitedLogged.set(sender, now);
      this.host.log('warn', 'rejected', { reason: 'rate_limited', topic, sender: idHex16(sender) });
    }
    this.core.emit({ type: 'rejected', reason: 'rate_limited', topic, sender });
    return true;
  }

  /**
   * True when `m` is an answer or a reading this engine has already taken: a device sends an answer again after
   * a power cut, and a message again after a connection lost before its PUBACK, with a new sequence ID and the
   * same token. A response counts as the same when device, status and token match (an update's 0x00 and its
   * later 0x10 share a token); data when device, data id and token match. The last RECENT_ANSWERS are kept.
   */
  private sentAgain(m: Message): boolean {
    let key: string;
    if (m.type === 'response') key = `${idHex16(m.senderId)} r ${m.fields.status} ${toHex(m.token)}`;
    else if (m.type === 'data') key = `${idHex16(m.senderId)} d ${toHex(m.fields.dataId)} ${toHex(m.token)}`;
    else return false;
    if (this.recentAnswers.has(key)) return true;
    this.recentAnswers.set(key, true);
    if (this.recentAnswers.size > RECENT_ANSWERS) this.recentAnswers.delete(this.recentAnswers.keys().next().value as string);
    return false;
  }

  private dispatch(m: Message): Promise<void> | void {
    switch (m.type) {
      case 'join_request':
        return this.joins.onRequest(m, 'simple', null).then((joined) => (joined ? this.afterJoin(m.senderId) : undefined));
      case 'human_join_request':
        return this.joins.onRequest(m, 'human', null).then((joined) => (joined ? this.afterJoin(m.senderId) : undefined));
      case 'observed_join_request':
        return this.joins.onRequest(m, 'observed', m.fields.observerId).then((joined) => (joined ? this.afterJoin(m.senderId) : undefined));
      case 'response':
        return this.onResponse(m);
      case 'data':
        return this.onData(m);
      case 'resign_request':
        return this.removed(m.senderId, 'resigned', 'device');
      case 'deregister_request':
        return this.removed(m.senderId, 'deregistered', 'device');
      default:
        // The permission table lets no other type through.
        this.host.log('error', 'no_handler', { type: m.type });
    }
  }

  private onResponse(m: MessageOf<'response'>): Promise<void> | void {
    const device = m.senderId;
    const status = m.fields.status;
    // lastResponse was stored with the message (onMessage).
    this.core.emit({ type: 'response', device, status, token: m.token });

    if (OBSERVATION_STATUSES.has(status)) return this.joins.onObservation(m).then((joined) => (joined !== null ? this.afterJoin(joined) : undefined));
    if (ACTION_STATUSES.has(status)) {
      const key = toHex(m.token);
      const r = this.requests.get(key);
      if (r !== undefined && r.kind === 'action' && r.device === device) {
        this.settleRequest(key, status);
        return;
      }
      if (this.host.cluster !== undefined) {
        // Sent by another node, perhaps: it settles its request.
        this.host.cluster.publish({ kind: 'answer', device, token: m.token, status });
        return;
      }
    } else if (INITIATE_STATUSES.has(status) || ACTIVATE_STATUSES.has(status)) {
      if (this.updates.onResponse(device, m.token, status)) return;
    }
    this.host.log('warn', 'unmatched_response', { device: idHex16(device), status, token: toHex(m.token) });
  }

  private onData(m: MessageOf<'data'>): Promise<void> | void {
    const device = m.senderId;
    const dataId = cText(m.fields.dataId);
    if (dataId === null) {
      this.host.log('warn', 'bad_data_id', { device: idHex16(device), length: m.fields.dataId.length });
      return;
    }
    if (dataId !== ID_RESPONSE_DATA_ID) {
      // The data history (the last READINGS_PER_DATA_ID per device and data id), then the event.
      this.host.registry.appendReading({ device, dataId, at: this.core.now(), token: m.token, data: m.fields.data });
      this.core.emit({ type: 'data', device, dataId, data: m.fields.data, token: m.token });
      return;
    }
    const text = cText(m.fields.data);
    if (text === null) {
      this.host.log('warn', 'bad_identification', { device: idHex16(device) });
      return;
    }
    const { name, version } = parseIdentification(text);
    const before = this.host.registry.device(device);
    const inferred = before !== null && before.profile !== 'reference' && text.startsWith(REFERENCE_ID_PREFIX);
    // Durable (by the group commit) before the request is answered.
    return this.host.registry
      .group(() =>
        this.host.registry.updateDevice(
          device,
          { identification: text, firmwareName: name, firmwareVersion: version, ...(inferred ? { profile: 'reference' as const } : {}) },
          this.core.now(),
        ),
      )
      .then(() => this.identified(m, device, text, name, version, before, inferred));
  }

  private identified(
    m: MessageOf<'data'>,
    device: bigint,
    text: string,
    name: string | null,
    version: string | null,
    before: DeviceRecord | null,
    inferred: boolean,
  ): void {
    if (this.state !== 'started') return;
    this.core.emit({ type: 'identification', device, text, firmwareName: name, firmwareVersion: version });
    if (inferred) {
      // pySRUP answers neither actions nor activates: stop waiting for those answers from now on.
      this.host.log('info', 'profile_inferred', { device: idHex16(device), profile: 'reference', was: (before as DeviceRecord).profile });
      this.core.emit({ type: 'profile', device, profile: 'reference', inferred: true });
    }
    // Our agent echoes the request's token; pySRUP answers with a new one, so fall back to the oldest request
    // (only for pySRUP: with several nodes, another node's request may be the one answered).
    const key = this.idRequestKey(device, m.token, before?.profile === 'reference' || inferred);
    if (key !== '') this.settleRequest(key, text);
    else this.host.cluster?.publish({ kind: 'identification', device, token: m.token, text });
  }

  /** The device left by itself, or was told to: record it, unsubscribe, end its requests. */
  private removed(id: bigint, reason: RemovalReason, by: 'server' | 'device'): void {
    this.core.setDeviceState(id, reason, {
      joinToken: null,
      joinSecret: null,
      observerId: null,
      observationToken: null,
    });
    this.core.unsubscribeDevice(id).catch((e: unknown) => this.host.log('warn', 'unsubscribe_failed', { why: String(e) }));
    for (const [key, r] of this.requests) {
      if (r.device === id) {
        this.host.clock.clearTimeout(r.timer);
        this.requests.delete(key);
        r.reject(new C2Error('device_removed', `device ${idHex16(id)} ${reason}`));
      }
    }
    this.host.log('info', 'device_removed', { device: idHex16(id), reason, by });
    this.core.emit({ type: 'removed', device: id, reason, by });
  }

  private removeBy(id: bigint, type: 'terminate_command' | 'deregister_command', reason: RemovalReason): Promise<void> {
    this.runnable();
    this.core.requireJoined(id);
    const sent = this.core.send(type, id, this.core.newToken(), {});
    this.removed(id, reason, 'server');
    return sent;
  }

  // ================================================================================================ sending

  // ================================================================================================ requests

  private track<T>(kind: Request['kind'], device: bigint, token: Uint8Array): Promise<T> {
    const key = toHex(token);
    return new Promise<T>((resolve, reject) => {
      const r: Request = { kind, device, resolve: resolve as (v: never) => void, reject, timer: null };
      r.timer = this.host.clock.setTimeout(() => {
        if (this.requests.get(key) !== r) return;
        this.requests.delete(key);
        this.host.log('warn', 'request_timeout', { kind, device: idHex16(device) });
        reject(new C2Error('timeout', `no answer from ${idHex16(device)} to the ${kind} request`));
      }, this.options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT);
      this.requests.set(key, r);
    });
  }

  private settleRequest(key: string, value: unknown): void {
    const r = this.requests.get(key);
    if (r === undefined) return;
    this.requests.delete(key);
    this.host.clock.clearTimeout(r.timer);
    (r.resolve as (v: unknown) => void)(value);
  }

  private failRequest(token: Uint8Array, e: unknown): void {
    const key = toHex(token);
    const r = this.requests.get(key);
    if (r === undefined) return;
    this.requests.delete(key);
    this.host.clock.clearTimeout(r.timer);
    r.reject(e instanceof Error ? e : new C2Error('publish_failed', String(e)));
  }

  // ================================================================================================ helpers

  private async subscribeAll(): Promise<void> {
    const { transport } = this.host;
    await Promise.all([
      transport.subscribe(this.core.shared(serverJoinFilter(this.serverId))),
      ...[...this.core.subscribed].map((id) => transport.subscribe(this.core.shared(deviceFilter(id)))),
    ]);
  }

  /** Several nodes: subscribe the devices another node joined, drop those that left (notes can be missed). */
  private syncMembership(): void {
    const joined = new Set(this.host.registry.devices('joined').map((d) => d.id));
    const failed = (e: unknown) => this.host.log('warn', 'subscribe_failed', { why: String(e) });
    for (const id of joined) if (!this.core.subscribed.has(id)) this.core.subscribeDevice(id, false).catch(failed);
    for (const id of [...this.core.subscribed]) if (!joined.has(id)) this.core.unsubscribeDevice(id, false).catch(failed);
  }

  /** A note from another node: an answer to a request this node may hold, or an update that moved. */
  private onClusterNote(n: ClusterNote): void {
    if (this.state !== 'started') return;
    if (n.kind === 'update') {
      this.updates.refresh(n.token);
      return;
    }
    if (n.kind === 'membership') {
      const failed = (e: unknown) => this.host.log('warn', 'subscribe_failed', { why: String(e) });
      if (n.joined && !this.core.subscribed.has(n.device)) this.core.subscribeDevice(n.device, false).catch(failed);
      if (!n.joined && this.core.subscribed.has(n.device)) this.core.unsubscribeDevice(n.device, false).catch(failed);
      return;
    }
    if (n.kind === 'answer') {
      const key = toHex(n.token);
      const r = this.requests.get(key);
      if (r !== undefined && r.kind === 'action' && r.device === n.device) this.settleRequest(key, n.status);
      return;
    }
    const key = this.idRequestKey(n.device, n.token, this.host.registry.device(n.device)?.profile === 'reference');
    if (key !== '') this.settleRequest(key, n.text);
  }

  /** The ID request a response answers: the one with its token (our agent), else the device's oldest (pySRUP). */
  private idRequestKey(device: bigint, token: Uint8Array, oldest: boolean): string {
    const key = toHex(token);
    const r = this.requests.get(key);
    if (r !== undefined && r.kind === 'id' && r.device === device) return key;
    if (oldest) for (const [k, q] of this.requests) if (q.kind === 'id' && q.device === device) return k;
    return '';
  }

  private sweep(): void {
    const ms = this.options.sweepMs;
    if (ms === undefined || this.state !== 'started') return;
    this.sweepTimer = this.host.clock.setTimeout(() => {
      this.sweepTimer = null;
      if (this.state !== 'started') return;
      try {
        this.updates.rearm(false);
        this.joins.rearm();
        this.syncMembership();
      } catch (e) {
        this.host.log('warn', 'sweep_failed', { why: String(e) });
      }
      this.sweep();
    }, ms);
  }

  /** What follows a join this engine accepted: an ID request when the options say so (errors are logged). */
  private afterJoin(id: bigint): void {
    if (this.options.identifyOnJoin === true) {
      this.requestId(id).catch((e: unknown) => this.host.log('warn', 'identify_failed', { device: idHex16(id), why: String(e) }));
    }
  }

  private runnable(): void {
    if (this.state !== 'started') throw new C2Error('stopped', 'the engine is not running');
  }

  /** Runs a handler, counting it for idle() and logging anything it throws. */
  private run(fn: () => Promise<void> | void): void {
    this.inFlight++;
    let p: Promise<void>;
    try {
      p = Promise.resolve(fn());
    } catch (e) {
      p = Promise.reject(e);
    }
    p.catch((e: unknown) => this.host.log('error', 'handler_failed', { why: String(e) })).finally(() => {
      if (--this.inFlight === 0) {
        const waiters = this.idleWaiters;
        this.idleWaiters = [];
        for (const w of waiters) w();
      }
    });
  }
}

