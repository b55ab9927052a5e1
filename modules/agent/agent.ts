/**
 * The SRUP device agent: one object per device, over the host interfaces of host.ts.
 *
 *   const agent = new Agent(host, { firmwareName: 'sensor', firmwareVersion: '1.2.0', actions: {...} });
 *   agent.start();                       // listens, connects, subscribes SRUP/<own id>
 *   await agent.join('human');           // 'joined' | 'refused' | 'failed' | 'timeout'
 *
 * A message's path: transport -> Agent.onMessage (here) -> receive() (pipeline.ts: topic and permission; decode,
 * key, signature, replay and persist in modules/srup/session.ts, the same steps as the server's) ->
 * Agent.dispatch (here) -> the flow (commands.ts, join.ts, update.ts) -> Outbox.send (outbox.ts: sequence ID,
 * signature, topic, offline queue) -> transport.
 *
 * Every answer is delivered across a power cut: the pipeline records the answer an accepted command is owed in the
 * same durable change as its sequence ID (SequenceStore.setLastAccepted with an Owe), the outbox records the
 * answer's status with its own sequence ID and settles it on PUBACK, and after a restart the agent sends what is
 * still owed again, once connected (resendOwed): a decided answer with its status, an action or initiate cut off
 * before it was decided as failed (0x2F / 0xFE). The server recognises a second copy by its token.
 */
import { idHex16, utf8 } from '../srup/bytes.js';
import { encodeData } from '../srup/data.js';
import type { DataKind, DataValue } from '../srup/data.js';
import type { FieldsOf, Message, TypeName } from '../srup/schema.js';
import { Status } from '../srup/schema.js';
import { conversationToken } from '../srup/session.js';
import { deviceTopic } from '../srup/topics.js';
import * as commands from './commands.js';
import type { AgentContext, AgentEvent, AgentOptions, JoinKind, JoinOutcome } from './context.js';
import { AgentError } from './context.js';
import type { AgentHost, OwedAnswer } from './host.js';
import { JoinFlows } from './join.js';
import { Outbox } from './outbox.js';
import { receive } from './pipeline.js';
import type { PipelineDeps } from './pipeline.js';
import { UpdateFlow } from './update.js';

export { AgentError } from './context.js';
export type { ActionHandler, AgentEvent, AgentOptions, JoinKind, JoinOutcome } from './context.js';
export { PERMISSIONS } from './pipeline.js';

export class Agent {
  /** This device's id. */
  readonly deviceId: bigint;
  private readonly host: AgentHost;
  private readonly ctx: AgentContext;
  private readonly pipeline: PipelineDeps;
  private readonly joins: JoinFlows;
  private readonly update: UpdateFlow;
  private readonly outbox: Outbox;
  /** The answers owed when start() was called: a previous life's, sent again at the first connection. */
  private owedAtStart: readonly OwedAnswer[] = [];
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
      send: (type, peer, token, fields, answering) => this.send(type, peer, token, fields, answering),
      emit: (e) => this.emit(e),
      newToken: () => conversationToken(host.random),
    };
    this.outbox = new Outbox(host, this.deviceId, host.keys.privateKey, options.queueLimit);
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
    this.owedAtStart = this.host.sequences.owed().slice();
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
    this.outbox.close();
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

  /**
   * Sends a data message (new token) to the server; `kind` as in modules/srup/data.ts. Resolves once the broker
   * has it (PUBACK). While offline it waits, at most `queueLimit` of them (AgentError 'queue_full' beyond that),
   * and goes out after the reconnect. Not kept across a power cut.
   */
  async sendData<K extends DataKind>(dataId: string, kind: K, value: DataValue<K>): Promise<void> {
    const server = this.requireServer();
    const data = encodeData(kind, value);
    if (this.outbox.full()) throw new AgentError('queue_full', 'too many messages are waiting for the broker');
    const ok = await this.outbox.send('data', server, this.ctx.newToken(), { dataId: utf8(dataId), data }, null, true);
    if (!ok) throw new AgentError('publish_failed', 'the data message was not sent');
  }

  /** Messages not yet taken by the broker (waiting while offline, and in flight). */
  get unsent(): number {
    return this.outbox.pending;
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
      this.resendOwed();
      this.track(() => this.update.afterBoot());
    }
    this.outbox.flush();
  }

  /** Sends again the answers a previous life of this device owed (see the file comment). */
  private resendOwed(): void {
    const owed = this.owedAtStart;
    this.owedAtStart = [];
    const { keys, sequences, log } = this.host;
    for (const w of owed) {
      if (w.peer !== keys.serverId()) {
        // Not this device's server any more: nobody to answer.
        try {
          sequences.settle(w.peer, w.seq);
        } catch (e) {
          log('warn', 'settle_failed', { why: String(e) });
        }
        continue;
      }
      const interrupted = w.status === null;
      let sent: Promise<boolean>;
      let status: number;
      if (w.kind === 'id_request') {
        status = 0;
        sent = this.send('data', w.peer, w.token, commands.idResponse(this.ctx.options), w.seq);
      } else {
        status = w.status ?? (w.kind === 'action' ? Status.ACTION_FAIL : Status.UPDATE_FAIL_FILE);
        sent = this.send('response', w.peer, w.token, { status }, w.seq);
      }
      log(interrupted ? 'warn' : 'info', 'answer_resent', { kind: w.kind, seq: w.seq.toString(), status, interrupted });
      this.emit({ type: 'answer_resent', server: w.peer, kind: w.kind, token: w.token, status, interrupted });
      void sent;
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

  /**
   * Sends through the outbox. `answering`: the sequence ID of the command this answers; when the store owes that
   * answer, its status is recorded with the new sequence ID and settled on PUBACK.
   */
  private send<T extends TypeName>(type: T, peer: bigint, token: Uint8Array, fields: FieldsOf<T>, answering?: bigint): Promise<boolean> {
    // After close() a handler still finishing must not use up sequence IDs on a message that cannot leave.
    if (this.state === 'closed') return Promise.resolve(false);
    let answer: { seq: bigint; status: number } | null = null;
    if (answering !== undefined && this.host.sequences.owed().some((w) => w.peer === peer && w.seq === answering)) {
      answer = { seq: answering, status: type === 'response' ? (fields as FieldsOf<'response'>).status : 0 };
    }
    return this.outbox.send(type, peer, token, fields, answer);
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
