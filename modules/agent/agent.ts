/**
 * The SRUP device agent: one object per device, over the host interfaces of host.ts.
 *
 *   const agent = new Agent(host, { firmwareName: 'sensor', firmwareVersion: '1.2.0', actions: {...} });
 *   agent.start();                       // listens, connects, subscribes SRUP/<own id>
 *   await agent.join('human');           // 'joined' | 'refused' | 'failed' | 'timeout'
 *
 * This file drives every message from the transport to its answer; the files it calls return values and call
 * nothing back. A command's path (five files beside the host's transport and stores; the events go to the
 * application through AgentEvents, context.ts):
 *
 *   transport (hosts/*)  -> Agent.onMessage (here: topic, then openMessage and admitMessage in
 *   modules/srup/session.ts, which decode and verify, the same steps as the server's, over what this file read of
 *   the sender; then the permission table below, and the persist)
 *   -> the handler (commands.ts; join.ts and update.ts for the longer flows) returns the answer as a value
 *   -> Agent.send (here) -> Outbox.send (outbox.ts: sequence ID and signature through sealNext in
 *   modules/srup/session.ts, topic, offline queue) -> transport.
 *
 * The receive steps, in order:
 *
 *   topic    only SRUP/<own id> is ours                                  -> wrong_topic
 *   own      sender == own id: our own publish echoed back, dropped silently
 *   decode   strict decode (modules/srup/codec.ts)                       -> the SrupError reason
 *   key      the sender's key among trusted peers (keys.peerKey)         -> unknown_sender
 *   seen     sequence ID > sequences.lastAccepted(sender), strictly     -> replay (before any RSA)
 *   verify   RSASSA-PKCS1-v1_5 / SHA-256 over the signed bytes            -> bad_signature
 *   permit   PERMISSIONS below                                           -> not_permitted
 *   persist  sequences.setLastAccepted(sender, sequence ID)
 *
 * The topic check and the permission table are the device's; the other steps are the ones every SRUP peer runs
 * (openMessage and admitMessage, modules/srup/session.ts). Only then does the agent act. A message that fails a step changes no
 * state at all (no counter moves, no key or server changes), is logged once (warn 'rejected' {reason, ...}) and
 * reported as a 'rejected' event with its reason.
 * The reference advances its counter before verifying (SRUP-WIRE.md §12 item 14); this agent does not.
 *
 * Every answer is delivered across a power cut: the agent records the answer an accepted command is owed in the
 * same durable change as its sequence ID (SequenceStore.setLastAccepted with an Owe), the outbox records the
 * answer's status with its own sequence ID and settles it on PUBACK, and after a restart the agent sends what is
 * still owed again, once connected (resendOwed): a decided answer with its status, an action or initiate cut off
 * before it was decided as failed (0x2F / 0xFE). The server recognises a second copy by its token.
 */
import type { RsaPublicKey } from '../../crypto/types.js';
import { idHex16, utf8 } from '../srup/bytes.js';
import { encodeData } from '../srup/data.js';
import { FloodGate } from '../srup/flood.js';
import type { DataKind, DataValue } from '../srup/data.js';
import type { FieldsOf, Message, TypeName } from '../srup/schema.js';
import { Status } from '../srup/schema.js';
import { admitMessage, conversationToken, openMessage } from '../srup/session.js';
import type { Admission } from '../srup/session.js';
import { deviceTopic } from '../srup/topics.js';
import * as commands from './commands.js';
import type { Handled } from './commands.js';
import type { AgentContext, AgentEvent, AgentOptions, JoinKind, JoinOutcome, Reply } from './context.js';
import { AgentError, AgentEvents } from './context.js';
import type { AgentHost, Owe, OwedAnswer } from './host.js';
import { MAX_OWED_TOKEN } from './host.js';
import { JoinFlows } from './join.js';
import { Outbox } from './outbox.js';
import { UpdateFlow } from './update.js';

export { AgentError } from './context.js';
export type { ActionHandler, AgentEvent, AgentOptions, JoinKind, JoinOutcome, RejectionReason } from './context.js';

/**
 * Who may send a device each message type.
 *
 *   server        the device's current server (keys.serverId())
 *   trusted_peer  any sender whose key is in the key store; for join_command the device_id must be our own id,
 *                 and the sender becomes the server
 *   join_server   the server a join of ours is waiting on (agent.join(...)); only while it waits
 *   human_join    as join_server, and only while that join is a human-moderated one
 *   observed_join as join_server, and only while that join is an observed one
 *   never         a device never accepts it: device→server messages, and syndication (not supported)
 */
export type Rule = 'server' | 'trusted_peer' | 'join_server' | 'human_join' | 'observed_join' | 'never';

export const PERMISSIONS: Readonly<Record<TypeName, Rule>> = Object.freeze({
  initiate: 'server',
  activate: 'server',
  action: 'server',
  data: 'server',
  id_request: 'server',
  terminate_command: 'server',
  deregister_command: 'server',
  observation_request: 'server',
  join_command: 'trusted_peer',
  response: 'join_server',
  human_join_response: 'human_join',
  observed_join_response: 'observed_join',
  join_request: 'never',
  human_join_request: 'never',
  observed_join_request: 'never',
  resign_request: 'never',
  deregister_request: 'never',
  syndication_init: 'never',
  syndicated_action: 'never',
  syndicated_data: 'never',
  syndicated_id_request: 'never',
  syndicated_device_count: 'never',
  syndicated_device_list: 'never',
  syndication_request: 'never',
  syndicated_c2_request: 'never',
  syndication_end_request: 'never',
  syndicated_terminate: 'never',
});

/** Why a permitted sender's message is refused (logged as `why` with reason 'not_permitted'). */
export type PermissionProblem =
  | 'not_from_server'
  | 'other_device'
  | 'no_join_pending'
  | 'no_human_join_pending'
  | 'no_observed_join_pending'
  | 'not_for_devices';

export class Agent {
  /** This device's id. */
  readonly deviceId: bigint;
  private readonly host: AgentHost;
  private readonly ctx: AgentContext;
  /** SRUP/<own id>: the one topic this device takes messages on. */
  private readonly topic: string;
  private readonly joins: JoinFlows;
  private readonly update: UpdateFlow;
  private readonly outbox: Outbox;
  /** A flood of forgeries costs forgeries, not the server's commands (modules/srup/flood.ts). */
  private readonly flood: FloodGate;
  /** The answers owed when start() was called: a previous life's, sent again at the first connection. */
  private owedAtStart: readonly OwedAnswer[] = [];
  private readonly events: AgentEvents;
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
    this.topic = deviceTopic(this.deviceId);
    this.events = new AgentEvents(host.log);
    this.ctx = { host, options, self: this.deviceId, events: this.events };
    this.outbox = new Outbox(host, this.deviceId, host.keys.privateKey, options.queueLimit);
    this.flood = new FloodGate(host.clock, host.log);
    this.joins = new JoinFlows(this.ctx);
    this.update = new UpdateFlow(this.ctx);
    if (options.onEvent) this.events.on(options.onEvent);
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
        this.events.emit({ type: 'disconnected', reason });
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
    this.flood.close();
    await this.host.transport.close();
  }

  /** Adds an event listener; returns a function that removes it. */
  on(listener: (e: AgentEvent) => void): () => void {
    return this.events.on(listener);
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
    let started: ReturnType<JoinFlows['start']>;
    try {
      started = this.joins.start(kind, target, observerId);
    } catch (e) {
      return Promise.reject(e);
    }
    const { request } = started;
    void this.sendReply(request).then((ok) => {
      if (!ok) this.joins.requestNotSent(request.token);
    });
    return started.outcome;
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
    const ok = await this.outbox.send('data', server, this.newToken(), { dataId: utf8(dataId), data }, null, true);
    if (!ok) throw new AgentError('publish_failed', 'the data message was not sent');
  }

  /** Messages not yet taken by the broker (waiting while offline, and in flight). */
  get unsent(): number {
    return this.outbox.pending;
  }

  /** Leaves the server for good: deregister_request, then the server's key is dropped and the server cleared. */
  async deregister(): Promise<void> {
    const server = this.requireServer();
    const sent = this.send('deregister_request', server, this.newToken(), {});
    this.host.keys.setServerId(null); // first, as for deregister_command (commands.ts)
    this.host.keys.setPeerKey(server, null);
    this.events.emit({ type: 'deregistered', server, by: 'device' });
    if (!(await sent)) throw new AgentError('publish_failed', 'the broker did not take the deregister request');
  }

  /** Resigns from the server: resign_request, then the server is cleared (its key is kept). */
  async resign(): Promise<void> {
    const server = this.requireServer();
    const sent = this.send('resign_request', server, this.newToken(), {});
    this.host.keys.setServerId(null);
    this.events.emit({ type: 'resigned', server });
    if (!(await sent)) throw new AgentError('publish_failed', 'the broker did not take the resign request');
  }

  // ---------------------------------------------------------------------------------------------- receiving

  private onConnected(sessionPresent: boolean): void {
    this.host.log('info', 'connected', { sessionPresent });
    this.events.emit({ type: 'connected', sessionPresent });
    this.host.transport.subscribe(this.topic).catch((e: unknown) => {
      this.host.log('error', 'subscribe_failed', { why: String(e) });
    });
    if (!this.bootChecked) {
      this.bootChecked = true;
      this.resendOwed();
      this.track(() => this.sendReply(this.update.afterBoot()));
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
      this.events.emit({ type: 'answer_resent', server: w.peer, kind: w.kind, token: w.token, status, interrupted });
      void sent;
    }
  }

  private onMessage(topic: string, payload: Uint8Array): void {
    if (this.state !== 'started') return;
    let m: Message | null;
    this.flood.begin();
    try {
      m = this.receive(topic, payload);
    } catch (e) {
      // Not bad input (that is rejected by receive) but a host failure, e.g. the sequence store could not persist
      // the counter: the message is not acted on, and the throw must not reach the MQTT client that called us.
      this.host.log('error', 'receive_failed', { topic, why: String(e) });
      return;
    } finally {
      this.flood.end();
    }
    if (m !== null) this.track(() => this.dispatch(m));
  }

  /**
   * The receive steps over one MQTT message (see the file comment): the topic, the shared decisions
   * (openMessage, then admitMessage over the sender's key and counter read here), the permission rule, then the decision's `persist` with the answer the command is owed.
   * Returns the accepted message, or null when it was dropped (logged, except for our own echoed messages).
   */
  private receive(topic: string, payload: Uint8Array): Message | null {
    const { keys, sequences, log } = this.host;
    if (topic !== this.topic) {
      log('warn', 'rejected', { reason: 'wrong_topic', topic });
      this.events.emit({ type: 'rejected', reason: 'wrong_topic' });
      return null;
    }
    const o = openMessage(this.deviceId, payload);
    let a: Admission<RsaPublicKey>;
    if (o.ok) {
      const sender = o.message.senderId;
      const key = keys.peerKey(sender);
      const last = key === null ? 0n : sequences.lastAccepted(sender);
      a = admitMessage(this.host.crypto, o.message, { peer: key, key, lastAccepted: last, ceiling: key === null || !this.flood.behind ? null : this.flood.ceiling(sequences.lastSent(sender), last) });
    } else a = o;
    if (!a.ok && a.reason === 'implausible') {
      this.flood.shed(); // counted, logged now and then: a flood must not cost a log line each
      return null;
    }
    if (!a.ok) {
      // reason null: our own publish echoed back, dropped silently.
      if (a.reason !== null) {
        // A replay is almost always the broker delivering again what was taken just before a restart: info.
        log(a.reason === 'replay' ? 'info' : 'warn', 'rejected', { reason: a.reason, ...(a.message === null ? {} : about(a.message)), ...a.detail });
        this.events.emit({ type: 'rejected', reason: a.reason });
      }
      return null;
    }
    const problem = this.permissionProblem(a.message);
    if (problem !== null) {
      log('warn', 'rejected', { reason: 'not_permitted', ...about(a.message), why: problem });
      this.events.emit({ type: 'rejected', reason: 'not_permitted' });
      return null;
    }
    // A command that is answered is owed its answer from here on, in the same durable change as its counter.
    sequences.setLastAccepted(a.persist.sender, a.persist.sequenceId, this.oweFor(a.message));
    log('debug', 'accepted', about(a.message));
    return a.message;
  }

  /** Why `m` from its sender is not allowed (PERMISSIONS), or null when it is. */
  private permissionProblem(m: Message): PermissionProblem | null {
    const join = this.joins.waiting();
    switch (PERMISSIONS[m.type]) {
      case 'server':
        return this.host.keys.serverId() === m.senderId ? null : 'not_from_server';
      case 'trusted_peer':
        // The key lookup already proved the sender is trusted; the command must name this device.
        if (m.type === 'join_command' && m.fields.deviceId !== this.deviceId) return 'other_device';
        return null;
      case 'join_server':
        return join !== null && join.server === m.senderId ? null : 'no_join_pending';
      case 'human_join':
        return join !== null && join.server === m.senderId && join.kind === 'human' ? null : 'no_human_join_pending';
      case 'observed_join':
        return join !== null && join.server === m.senderId && join.kind === 'observed' ? null : 'no_observed_join_pending';
      case 'never':
        return 'not_for_devices';
    }
  }

  /**
   * What the device owes for `m` until the broker has its answer: commands that are answered (action, ID
   * request, initiate). Undefined for anything else, and — answered as before but without the guarantee across a
   * power cut, and logged — when the token is longer than MAX_OWED_TOKEN or the store already owes all it can keep.
   */
  private oweFor(m: Message): Owe | undefined {
    let owe: Owe;
    if (m.type === 'action') owe = { kind: 'action', token: m.token, actionId: m.fields.actionId };
    else if (m.type === 'id_request') owe = { kind: 'id_request', token: m.token, actionId: 0 };
    else if (m.type === 'initiate') owe = { kind: 'initiate', token: m.token, actionId: 0 };
    else return undefined;
    const { sequences } = this.host;
    if (m.token.length > MAX_OWED_TOKEN || sequences.owed().length >= sequences.owedCapacity) {
      this.host.log('warn', 'answer_not_durable', { type: m.type, tokenLength: m.token.length, owed: sequences.owed().length });
      return undefined;
    }
    return owe;
  }

  /** Hands an accepted message to its handler, then tells the application and sends the answer it returned. */
  private async dispatch(m: Message): Promise<void> {
    const ctx = this.ctx;
    switch (m.type) {
      case 'action':
        return this.apply(await commands.onAction(ctx, m));
      case 'data': {
        const h = commands.onData(ctx, m);
        if (h.event !== null && h.event.type === 'data') {
          this.events.emit(h.event);
          commands.deliverData(ctx, h.event.dataId, m.fields.data);
        }
        return;
      }
      case 'id_request':
        return this.apply(commands.onIdRequest(ctx, m));
      case 'terminate_command':
        return this.apply(commands.onTerminate(ctx, m));
      case 'deregister_command':
        return this.apply(commands.onDeregisterCommand(ctx, m));
      case 'initiate':
        return void (await this.sendReply(await this.update.onInitiate(m)));
      case 'activate':
        return void (await this.sendReply(this.update.onActivate(m)));
      case 'join_command':
        return this.joins.onJoinCommand(m);
      case 'response':
        return this.joins.onResponse(m);
      case 'human_join_response':
      case 'observed_join_response':
        return this.joins.onChallenge(m);
      case 'observation_request':
        return void (await this.sendReply(await this.joins.onObservationRequest(m)));
      default:
        // The permission table lets no other type through.
        this.host.log('error', 'no_handler', { type: m.type });
    }
  }

  /** What a command handler returned: its event, then its answer. */
  private async apply(h: Handled): Promise<void> {
    if (h.event !== null) this.events.emit(h.event);
    await this.sendReply(h.reply);
  }

  /** Runs a handler, counting it for idle() and logging anything it throws. */
  private track(run: () => Promise<unknown> | void): void {
    this.inFlight++;
    let p: Promise<unknown>;
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

  /** Sends what a flow returned (nothing for null); resolves with whether the broker took it. */
  private sendReply(r: Reply | null): Promise<boolean> {
    if (r === null) return Promise.resolve(false);
    return this.send(r.type, r.peer, r.token, r.fields as never, r.answering);
  }

  /** A new conversation's token (modules/srup/session.ts, as the server makes them). */
  private newToken(): Uint8Array {
    return conversationToken(this.host.random);
  }

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

  private requireServer(): bigint {
    if (this.state !== 'started') throw new AgentError('not_started', 'the agent is not running');
    const server = this.host.keys.serverId();
    if (server === null) throw new AgentError('no_server', 'this device has no server');
    return server;
  }
}

function about(m: Message): { type: TypeName; sender: string; seq: string } {
  return { type: m.type, sender: idHex16(m.senderId), seq: m.sequenceId.toString() };
}
