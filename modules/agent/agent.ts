/**
 * The SRUP device agent: one object per device, over the host interfaces of host.ts.
 *
 *   const agent = new Agent(host, { firmwareName: 'sensor', firmwareVersion: '1.2.0', actions: {...} });
 *   agent.start();                       // listens, connects, subscribes SRUP/<own id>
 *   await agent.join('human');           // 'joined' | 'refused' | 'failed' | 'timeout'
 *
 * A message's path: transport -> Agent.onMessage (here) -> receive() (pipeline.ts: topic and permission; decode,
 * key, signature, replay and persist in modules/srup/session.ts, the same steps as the server's) ->
 * Agent.dispatch (here) -> the flow (commands.ts, join.ts, update.ts) -> Agent.send (here: sequence ID,
 * signature, topic) -> transport.
 */
import { idHex16, utf8 } from '../srup/bytes.js';
import { encodeData } from '../srup/data.js';
import type { DataKind, DataValue } from '../srup/data.js';
import type { FieldsOf, Message, TypeName } from '../srup/schema.js';
import { conversationToken, sealMessage } from '../srup/session.js';
import { deviceTopic, joinTopic, nextSequenceId } from '../srup/topics.js';
import * as commands from './commands.js';
import type { AgentContext, AgentEvent, AgentOptions, JoinKind, JoinOutcome } from './context.js';
import { AgentError } from './context.js';
import type { AgentHost } from './host.js';
import { JoinFlows } from './join.js';
import { receive } from './pipeline.js';
import type { PipelineDeps } from './pipeline.js';
import { UpdateFlow } from './update.js';

export { AgentError } from './context.js';
export type { ActionHandler, AgentEvent, AgentOptions, JoinKind, JoinOutcome } from './context.js';
export { PERMISSIONS } from './pipeline.js';

/** Join requests go to SRUP/servers/<server>/<own id>; everything else to SRUP/<own id> (SRUP-WIRE.md §8). */
const JOIN_REQUEST_TYPES: ReadonlySet<TypeName> = new Set<TypeName>([
  'join_request',
  'human_join_request',
  'observed_join_request',
]);

export class Agent {
  /** This device's id. */
  readonly deviceId: bigint;
  private readonly host: AgentHost;
  private readonly ctx: AgentContext;
  private readonly pipeline: PipelineDeps;
  private readonly joins: JoinFlows;
  private readonly update: UpdateFlow;
  private readonly listeners = new Set<(e: AgentEvent) => void>();
  private state: 'new' | 'started' | 'closed' = 'new';
  private bootChecked = false;
  private inFlight = 0;
  private idleWaiters: (() => void)[] = [];

  constructor(host: AgentHost, options: AgentOptions) {
    if (typeof options?.firmwareName !== 'string' || typeof options.firmwareVersion !== 'string') {
      throw new AgentError('bad_argument', 'options.firmwareName and options.firmwareVersion are required');
    }
    this.host = host;
    this.deviceId = host.keys.deviceId;
    this.ctx = {
      host,
      options,
      self: this.deviceId,
      send: (type, peer, token, fields) => this.send(type, peer, token, fields),
      emit: (e) => this.emit(e),
      newToken: () => conversationToken(host.random),
    };
    this.joins = new JoinFlows(this.ctx);
    this.update = new UpdateFlow(this.ctx);
    this.pipeline = {
      self: this.deviceId,
      keys: host.keys,
      sequences: host.sequences,
      crypto: host.crypto,
      log: host.log,
    };
    if (options.onEvent) this.listeners.add(options.onEvent);
  }

  /** The server this device obeys, or null. */
  get serverId(): bigint | null {
    return this.host.keys.serverId();
  }

  /** True while an update image is downloading. */
  get updating(): boolean {
    return this.update.busy;
  }

  /** Installs the transport handlers and starts connecting. Call once. */
  start(): void {
    if (this.state !== 'new') throw new AgentError('already_started', 'start() may be called once');
    this.state = 'started';
    this.host.transport.listen({
      message: (topic, payload) => this.onMessage(topic, payload),
      connected: (sessionPresent) => this.onConnected(sessionPresent),
      disconnected: (reason) => {
        this.host.log('info', 'disconnected', { reason });
        this.emit({ type: 'disconnected', reason });
      },
    });
    this.host.log('info', 'starting', { device: idHex16(this.deviceId) });
    this.host.transport.start();
  }

  /** Ends a waiting join ('failed'), and closes the transport. */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.joins.close();
    await this.host.transport.close();
  }

  /** Adds an event listener; returns a function that removes it. */
  on(listener: (e: AgentEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Resolves once no received message is being acted on (tests and orderly shutdown). */
  idle(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Joins a server: 'simple' (join_request), 'human' (human_join_request, the secret goes to the presenter) or
   * 'observed' (observed_join_request naming `observerId`). The server is `server` or, by default, the key
   * store's server. Resolves with the outcome; rejects with AgentError for busy / no_server / no_server_key /
   * bad_argument / not_started.
   */
  join(kind: JoinKind = 'simple', observerId?: bigint, server?: bigint): Promise<JoinOutcome> {
    if (this.state !== 'started') return Promise.reject(new AgentError('not_started', 'the agent is not running'));
    if (kind !== 'simple' && kind !== 'human' && kind !== 'observed') {
      return Promise.reject(new AgentError('bad_argument', `unknown join kind ${String(kind)}`));
    }
    const target = server ?? this.host.keys.serverId();
    if (target === null) return Promise.reject(new AgentError('no_server', 'no server to join'));
    return this.joins.start(kind, target, observerId);
  }

  /** Sends a data message (new token) to the server; `kind` as in modules/srup/data.ts. */
  async sendData<K extends DataKind>(dataId: string, kind: K, value: DataValue<K>): Promise<void> {
    const server = this.requireServer();
    const data = encodeData(kind, value);
    const ok = await this.send('data', server, this.ctx.newToken(), { dataId: utf8(dataId), data });
    if (!ok) throw new AgentError('publish_failed', 'the broker did not take the data message');
  }

  /** Leaves the server for good: deregister_request, then the server's key is dropped and the server cleared. */
  async deregister(): Promise<void> {
    const server = this.requireServer();
    const sent = this.send('deregister_request', server, this.ctx.newToken(), {});
    this.host.keys.setServerId(null); // first, as for deregister_command (commands.ts)
    this.host.keys.setPeerKey(server, null);
    this.emit({ type: 'deregistered', server, by: 'device' });
    if (!(await sent)) throw new AgentError('publish_failed', 'the broker did not take the deregister request');
  }

  /** Resigns from the server: resign_request, then the server is cleared (its key is kept). */
  async resign(): Promise<void> {
    const server = this.requireServer();
    const sent = this.send('resign_request', server, this.ctx.newToken(), {});
    this.host.keys.setServerId(null);
    this.emit({ type: 'resigned', server });
    if (!(await sent)) throw new AgentError('publish_failed', 'the broker did not take the resign request');
  }

  // ---------------------------------------------------------------------------------------------- receiving

  private onConnected(sessionPresent: boolean): void {
    this.host.log('info', 'connected', { sessionPresent });
    this.emit({ type: 'connected', sessionPresent });
    this.host.transport.subscribe(deviceTopic(this.deviceId)).catch((e: unknown) => {
      this.host.log('error', 'subscribe_failed', { why: String(e) });
    });
    if (!this.bootChecked) {
      this.bootChecked = true;
      this.track(() => this.update.afterBoot());
    }
  }

  private onMessage(topic: string, payload: Uint8Array): void {
    if (this.state !== 'started') return;
    let m: Message | null;
    try {
      m = receive(this.pipeline, this.joins.waiting(), topic, payload);
    } catch (e) {
      // Not bad input (that is rejected above) but a host failure, e.g. the sequence store could not persist the
      // counter: the message is not acted on, and the throw must not reach the MQTT client that called us.
      this.host.log('error', 'receive_failed', { topic, why: String(e) });
      return;
    }
    if (m !== null) this.track(() => this.dispatch(m));
  }

  private dispatch(m: Message): Promise<void> | void {
    const ctx = this.ctx;
    switch (m.type) {
      case 'initiate':
        return this.update.onInitiate(m);
      case 'activate':
        return this.update.onActivate(m);
      case 'action':
        return commands.onAction(ctx, m);
      case 'data':
        return commands.onData(ctx, m);
      case 'id_request':
        return commands.onIdRequest(ctx, m);
      case 'terminate_command':
        return commands.onTerminate(ctx, m);
      case 'deregister_command':
        return commands.onDeregisterCommand(ctx, m);
      case 'join_command':
        return this.joins.onJoinCommand(m);
      case 'response':
        return this.joins.onResponse(m);
      case 'human_join_response':
      case 'observed_join_response':
        return this.joins.onChallenge(m);
      case 'observation_request':
        return this.joins.onObservationRequest(m);
      default:
        // The permission table lets no other type through.
        this.host.log('error', 'no_handler', { type: m.type });
    }
  }

  /** Runs a handler, counting it for idle() and logging anything it throws. */
  private track(run: () => Promise<void> | void): void {
    this.inFlight++;
    let p: Promise<void>;
    try {
      p = Promise.resolve(run());
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

  // ---------------------------------------------------------------------------------------------- sending

  private send<T extends TypeName>(type: T, peer: bigint, token: Uint8Array, fields: FieldsOf<T>): Promise<boolean> {
    const { sequences, keys, crypto, transport } = this.host;
    // After close() a handler still finishing must not use up sequence IDs on a message that cannot leave.
    if (this.state === 'closed') return Promise.resolve(false);
    let bytes: Uint8Array;
    try {
      const sequenceId = nextSequenceId(sequences.lastSent(peer), sequences.lastAccepted(peer));
      sequences.setLastSent(peer, sequenceId); // durable before the message exists anywhere else
      bytes = sealMessage(crypto, keys.privateKey, { type, sequenceId, senderId: this.deviceId, token, fields });
    } catch (e) {
      this.host.log('error', 'send_failed', { type, why: String(e) });
      return Promise.resolve(false);
    }
    const topic = JOIN_REQUEST_TYPES.has(type) ? joinTopic(peer, this.deviceId) : deviceTopic(this.deviceId);
    return transport.publish(topic, bytes).then(
      () => true,
      (e: unknown) => {
        this.host.log('warn', 'publish_failed', { type, why: String(e) });
        return false;
      },
    );
  }

  private emit(e: AgentEvent): void {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch (err) {
        this.host.log('warn', 'listener_threw', { event: e.type, why: String(err) });
      }
    }
  }

  private requireServer(): bigint {
    if (this.state !== 'started') throw new AgentError('not_started', 'the agent is not running');
    const server = this.host.keys.serverId();
    if (server === null) throw new AgentError('no_server', 'this device has no server');
    return server;
  }
}
