/**
 * The in-memory MQTT-like broker for tests, with Transport (modules/agent/host.ts) clients. It runs on any
 * engine: by default it schedules nothing but promise jobs (no setImmediate, no setTimeout), so a flow over it
 * runs the same way, job for job, under jest and on XS. test/support/memory-broker.ts is this broker with
 * settle() counting event-loop turns instead (see BrokerScheduler) and a waitFor() with a time limit.
 *
 *   const broker = new MemoryBroker();
 *   const device = broker.client('SRUP Client: 4a0f');   // a Transport; hand it to the agent
 *   const c2 = broker.client('c2');
 *   c2.listen({ message: (t, p) => ..., connected: () => {}, disconnected: () => {} });
 *   c2.start();
 *   await c2.subscribe('SRUP/#');
 *   await c2.publish('SRUP/4a0f', bytes);
 *   await broker.settle();                                // every queued delivery made, handlers run
 *   broker.log                                            // every publish, in order: {client, topic, payload}
 *
 * Semantics (MQTT 3.1.1 at QoS 1, as the hosts use it):
 *   - Topic filters with `+` (one level) and `#` (the rest, including the parent level), as topicMatches().
 *   - Each client id has a session: its subscriptions, and (unless cleanSession) a queue of messages that
 *     arrived while it was disconnected, delivered in order on reconnect. The session outlives the Transport:
 *     a new broker.client() with the same id (a rebooted device) gets it back with sessionPresent = true.
 *     A second connection with the same id takes the session over from the first (which is disconnected).
 *   - Publishing resolves once the broker has routed the message (PUBACK). While disconnected, publishes wait in
 *     the client's offline queue and go out, in order, on reconnect (as mqtt.js does); close() rejects those
 *     still waiting, and any publish after it.
 *   - Delivery is asynchronous (never inside publish()) and in publish order: one FIFO for the whole broker, one
 *     message per promise job, so messages from one publisher arrive in the order sent. A subscriber receives
 *     its own publishes (no "no local" in MQTT 3.1.1); SRUP peers drop their own messages.
 *   - Payloads are copied on publish and on delivery.
 *   - With `redeliverUnacked` (the power-cut tests), a message counts as acknowledged only once the subscriber's
 *     handler has returned with the connection still up: what was on its way to a connection that ended, and the
 *     message whose handler the connection ended in (the device lost power), goes back to the front of the
 *     session's queue and is delivered again, first, on reconnect, as an MQTT broker does with unacknowledged QoS 1
 *     messages. Without it, such messages are dropped.
 *   - Test controls: client.disconnect(reason) / client.reconnect(); broker.inject(topic, payload) publishes as
 *     no client (an attacker or a foreign peer); broker.settle() waits until nothing is left to deliver;
 *     broker.watch(predicate, found) reports the first logged publish that matches.
 */
import type { Transport, TransportHandlers } from '../../modules/agent/host.js';

/** True when `topic` matches the MQTT filter `filter` (`+` one level, `#` the rest). */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return i === f.length - 1;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

export interface Published {
  /** Publishing client id, or null for broker.inject(). */
  readonly client: string | null;
  readonly topic: string;
  readonly payload: Uint8Array;
  /** Position in broker.log (0-based). */
  readonly index: number;
}

export interface ClientOptions {
  /** MQTT clean session: no queueing while disconnected, no session kept (default false: persistent). */
  cleanSession?: boolean;
}

/**
 * How settle() waits. Deliveries are always one per promise job; what differs between engines is what a
 * "turn" of waiting is: a promise job (any engine; the default), or a turn of Node's event loop, which also
 * lets I/O and Node timers started by a handler run.
 */
export interface BrokerScheduler {
  /** Resolves after one turn. */
  turn(): Promise<void>;
  /** Turns in a row with nothing to deliver before settle() returns. */
  readonly quiet: number;
  /** Turns after which settle() gives up (its default limit). */
  readonly maxTurns: number;
  /** Names the broker in settle()'s error. */
  readonly name: string;
}

/** Promise jobs only: runs the same on XS and Node. */
export const PROMISE_JOBS: BrokerScheduler = {
  turn: () => Promise.resolve(),
  quiet: 8,
  maxTurns: 200_000,
  name: 'MemoryBroker',
};

interface Session {
  readonly clientId: string;
  readonly subscriptions: Set<string>;
  /** Messages that arrived while no client was connected (persistent sessions only). */
  queued: { topic: string; payload: Uint8Array }[];
  /** redeliverUnacked: messages handed to the connection and not yet acknowledged, in order. */
  inflight: { topic: string; payload: Uint8Array }[];
  readonly clean: boolean;
  connection: MemoryTransport | null;
}

export class MemoryBroker {
  /** Every message published, in order. */
  readonly log: Published[] = [];
  private readonly sessions = new Map<string, Session>();
  private readonly fifo: (() => void)[] = [];
  private pumping = false;
  private readonly watchers: { match: (p: Published) => boolean; found: (p: Published) => void }[] = [];

  constructor(
    private readonly scheduler: BrokerScheduler = PROMISE_JOBS,
    private readonly options: { readonly redeliverUnacked?: boolean } = {},
  ) {}

  /** A new Transport for `clientId` (not connected until start()). */
  client(clientId: string, options: ClientOptions = {}): MemoryTransport {
    return new MemoryTransport(this, clientId, options.cleanSession === true);
  }

  /** Publishes as no client: e.g. a message an attacker or an unrelated peer puts on a topic. */
  inject(topic: string, payload: Uint8Array): void {
    this.route(null, topic, payload);
  }

  /** Ids of the clients that currently hold a live connection. */
  connectedClients(): string[] {
    return [...this.sessions.values()].filter((s) => s.connection !== null).map((s) => s.clientId);
  }

  /** The subscriptions of a client id's session (empty if none). */
  subscriptionsOf(clientId: string): string[] {
    return [...(this.sessions.get(clientId)?.subscriptions ?? [])];
  }

  /** How many messages wait in a disconnected client's session. */
  queuedFor(clientId: string): number {
    return this.sessions.get(clientId)?.queued.length ?? 0;
  }

  /** Publishes on topics matching `filter`, in order. */
  published(filter = '#'): Published[] {
    return this.log.filter((p) => topicMatches(filter, p.topic));
  }

  /** True while deliveries are queued. */
  get busy(): boolean {
    return this.pumping || this.fifo.length > 0;
  }

  /**
   * Waits, turn by turn (see BrokerScheduler), until nothing is left to deliver and a few further turns went by
   * without a new delivery, so that asynchronous handlers (and the messages they publish) have run. Throws if
   * it is not quiet within `maxTurns`. Does not advance a ManualClock.
   */
  async settle(maxTurns = this.scheduler.maxTurns): Promise<void> {
    let quiet = 0;
    for (let i = 0; i < maxTurns; i++) {
      await this.scheduler.turn();
      if (this.busy) quiet = 0;
      else if (++quiet >= this.scheduler.quiet) return;
    }
    throw new Error(`${this.scheduler.name}.settle(): still busy`);
  }

  /**
   * Calls `found` with the first publish (already logged, now; or future, when routed) that satisfies `match`.
   * Returns a function that stops watching.
   */
  watch(match: (p: Published) => boolean, found: (p: Published) => void): () => void {
    const past = this.log.find(match);
    if (past !== undefined) {
      found(past);
      return () => undefined;
    }
    const w = { match, found };
    this.watchers.push(w);
    return () => {
      const i = this.watchers.indexOf(w);
      if (i >= 0) this.watchers.splice(i, 1);
    };
  }

  // ------------------------------------------------------------------------------------------ internals

  /** @internal */
  attach(t: MemoryTransport, clean: boolean): boolean {
    let s = this.sessions.get(t.clientId);
    const present = s !== undefined && !clean && !s.clean;
    if (s === undefined || clean || s.clean) {
      if (s?.connection && s.connection !== t) s.connection.dropByBroker('session taken over');
      s = { clientId: t.clientId, subscriptions: new Set(), queued: [], inflight: [], clean, connection: null };
      this.sessions.set(t.clientId, s);
    } else if (s.connection && s.connection !== t) {
      s.connection.dropByBroker('session taken over');
      s.queued = [...s.inflight.splice(0), ...s.queued];
    }
    s.connection = t;
    return present;
  }

  /** @internal Called right after connected(): delivers what the session queued. */
  flushQueued(t: MemoryTransport): void {
    const s = this.sessions.get(t.clientId);
    if (!s || s.connection !== t) return;
    const items = s.queued.splice(0);
    for (const item of items) this.handOver(s, t, item);
  }

  /** Queues the delivery of `item` to the connection `t` of session `s`. */
  private handOver(s: Session, t: MemoryTransport, item: { topic: string; payload: Uint8Array }): void {
    if (this.options.redeliverUnacked !== true) {
      this.enqueue(() => t.deliver(item.topic, item.payload));
      return;
    }
    s.inflight.push(item);
    this.enqueue(() => {
      if (s.connection !== t || s.inflight[0] !== item) return; // the connection ended: it went back to the queue
      t.deliver(item.topic, item.payload);
      if (s.connection === t && s.inflight[0] === item) s.inflight.shift(); // acknowledged
    });
  }

  /** @internal */
  detach(t: MemoryTransport): void {
    const s = this.sessions.get(t.clientId);
    if (!s || s.connection !== t) return;
    s.connection = null;
    s.queued = [...s.inflight.splice(0), ...s.queued];
    if (s.clean) this.sessions.delete(t.clientId);
  }

  /** @internal */
  subscribe(t: MemoryTransport, filter: string, on: boolean): void {
    const s = this.sessions.get(t.clientId);
    if (!s || s.connection !== t) throw new Error('not connected');
    if (on) s.subscriptions.add(filter);
    else s.subscriptions.delete(filter);
  }

  /** @internal Routes a publish to every matching session, now; delivery happens later, in order. */
  route(client: string | null, topic: string, payload: Uint8Array): void {
    if (topic.includes('+') || topic.includes('#') || topic.length === 0) throw new Error(`bad topic ${topic}`);
    const copy = payload.slice();
    const rec: Published = { client, topic, payload: copy, index: this.log.length };
    this.log.push(rec);
    for (const s of this.sessions.values()) {
      let match = false;
      for (const f of s.subscriptions) if (topicMatches(f, topic)) match = true;
      if (!match) continue;
      const conn = s.connection;
      if (conn !== null) this.handOver(s, conn, { topic, payload: copy });
      else if (!s.clean) s.queued.push({ topic, payload: copy });
    }
    for (const w of this.watchers.splice(0)) {
      if (w.match(rec)) w.found(rec);
      else this.watchers.push(w);
    }
  }

  /** @internal */
  enqueue(job: () => void): void {
    this.fifo.push(job);
    if (this.pumping) return;
    this.pumping = true;
    void Promise.resolve().then(() => this.pump());
  }

  private pump(): void {
    // One delivery per promise job, so that work a handler starts can interleave like on a network.
    const job = this.fifo.shift();
    if (job === undefined) {
      this.pumping = false;
      return;
    }
    try {
      job();
    } finally {
      void Promise.resolve().then(() => this.pump());
    }
  }
}

/** A Transport on a MemoryBroker. Extra test controls: disconnect(), reconnect(). */
export class MemoryTransport implements Transport {
  private handlers: TransportHandlers | null = null;
  private connectedNow = false;
  private closed = false;
  private wanted = false;
  private readonly offline: { topic: string; payload: Uint8Array; done: () => void; fail: (e: Error) => void }[] = [];
  private readonly desired = new Set<string>();

  constructor(
    private readonly broker: MemoryBroker,
    readonly clientId: string,
    private readonly clean: boolean,
  ) {}

  get isConnected(): boolean {
    return this.connectedNow;
  }

  listen(handlers: TransportHandlers): void {
    this.handlers = handlers;
  }

  start(): void {
    if (this.closed) throw new Error('transport closed');
    if (this.wanted) return;
    this.wanted = true;
    this.broker.enqueue(() => this.connect());
  }

  /** Test control: the connection drops (the session stays on the broker). */
  disconnect(reason = 'test disconnect'): void {
    if (!this.connectedNow) return;
    this.connectedNow = false;
    this.broker.detach(this);
    this.handlers?.disconnected(reason);
  }

  /** Test control: connects again (as the real transports do by themselves after a drop). */
  reconnect(): void {
    if (this.closed || this.connectedNow) return;
    this.wanted = true;
    this.broker.enqueue(() => this.connect());
  }

  publish(topic: string, payload: Uint8Array): Promise<void> {
    if (this.closed) return Promise.reject(new Error('transport closed'));
    if (this.connectedNow) {
      try {
        this.broker.route(this.clientId, topic, payload);
      } catch (e) {
        return Promise.reject(e);
      }
      return Promise.resolve();
    }
    return new Promise((resolve, reject) =>
      this.offline.push({ topic, payload: payload.slice(), done: resolve, fail: reject }),
    );
  }

  async subscribe(topic: string): Promise<void> {
    if (this.closed) throw new Error('transport closed');
    this.desired.add(topic);
    if (this.connectedNow) this.broker.subscribe(this, topic, true);
  }

  async unsubscribe(topic: string): Promise<void> {
    if (this.closed) throw new Error('transport closed');
    this.desired.delete(topic);
    if (this.connectedNow) this.broker.subscribe(this, topic, false);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.wanted = false;
    if (this.connectedNow) {
      this.connectedNow = false;
      this.broker.detach(this);
    }
    for (const o of this.offline.splice(0)) o.fail(new Error('transport closed before the message went out'));
  }

  /** @internal */
  deliver(topic: string, payload: Uint8Array): void {
    if (!this.connectedNow || this.handlers === null) return;
    this.handlers.message(topic, payload.slice());
  }

  /** @internal The broker ended this connection (another client took the session). */
  dropByBroker(reason: string): void {
    if (!this.connectedNow) return;
    this.connectedNow = false;
    this.handlers?.disconnected(reason);
  }

  private connect(): void {
    if (this.closed || this.connectedNow || !this.wanted) return;
    const present = this.broker.attach(this, this.clean);
    this.connectedNow = true;
    // Subscriptions made while offline are (re)sent, as clients do on connect.
    for (const f of this.desired) this.broker.subscribe(this, f, true);
    this.handlers?.connected(present);
    this.broker.flushQueued(this);
    for (const o of this.offline.splice(0)) {
      this.broker.route(this.clientId, o.topic, o.payload);
      o.done();
    }
  }
}
