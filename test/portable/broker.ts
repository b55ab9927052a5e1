/**
 * An MQTT-like broker in memory, with Transport clients (modules/agent/host.ts), that runs on any engine: it
 * schedules nothing but promise jobs (no setImmediate, no setTimeout), so a flow over it runs the same way,
 * job for job, under jest and on XS.
 *
 *   const broker = new PortableBroker();
 *   const t = broker.client('SRUP Client: c2');     // a Transport for an agent or the C2 engine
 *   broker.inject(topic, bytes);                    // publish as nobody (an attacker, a foreign peer)
 *   await broker.settle();                          // every queued delivery made
 *   broker.log                                      // every publish, in order
 *
 * Semantics (the subset of test/support/memory-broker.ts the flows need): topic filters with `+` and `#`;
 * persistent sessions per client id (subscriptions, and messages queued while no connection holds the session,
 * delivered on reconnect with sessionPresent = true; a new connection takes the session over); publish
 * resolves once routed (PUBACK); delivery is later, one message per promise job, in publish order; a client
 * receives its own publishes; payloads are copied.
 */
import type { Transport, TransportHandlers } from '../../modules/agent/host.js';

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
  /** Publishing client id; null for inject(). */
  readonly client: string | null;
  readonly topic: string;
  readonly payload: Uint8Array;
}

interface Session {
  readonly subscriptions: Set<string>;
  readonly queued: { topic: string; payload: Uint8Array }[];
  connection: PortableTransport | null;
}

export class PortableBroker {
  readonly log: Published[] = [];
  private readonly sessions = new Map<string, Session>();
  private readonly fifo: (() => void)[] = [];
  private pumping = false;

  client(clientId: string): PortableTransport {
    return new PortableTransport(this, clientId);
  }

  inject(topic: string, payload: Uint8Array): void {
    this.route(null, topic, payload);
  }

  /** Publishes whose topic matches `filter`, in order. */
  published(filter = '#'): Published[] {
    return this.log.filter((p) => topicMatches(filter, p.topic));
  }

  /** True while deliveries are queued. */
  get busy(): boolean {
    return this.pumping || this.fifo.length > 0;
  }

  /**
   * Waits, promise job by promise job, until nothing is left to deliver and `quiet` further jobs went by
   * without a new delivery (so that handlers have run a few steps). Throws if it never gets quiet.
   */
  async settle(quiet = 8, maxJobs = 200_000): Promise<void> {
    let still = 0;
    for (let i = 0; i < maxJobs; i++) {
      await Promise.resolve();
      if (this.busy) still = 0;
      else if (++still >= quiet) return;
    }
    throw new Error('PortableBroker.settle(): still delivering');
  }

  /** @internal */
  attach(t: PortableTransport): boolean {
    let s = this.sessions.get(t.clientId);
    const present = s !== undefined;
    if (s === undefined) {
      s = { subscriptions: new Set(), queued: [], connection: null };
      this.sessions.set(t.clientId, s);
    } else if (s.connection !== null && s.connection !== t) {
      s.connection.dropped('session taken over');
    }
    s.connection = t;
    return present;
  }

  /** @internal */
  detach(t: PortableTransport): void {
    const s = this.sessions.get(t.clientId);
    if (s !== undefined && s.connection === t) s.connection = null;
  }

  /** @internal */
  flushQueued(t: PortableTransport): void {
    const s = this.sessions.get(t.clientId);
    if (s === undefined || s.connection !== t) return;
    for (const q of s.queued.splice(0)) this.enqueue(() => t.deliver(q.topic, q.payload));
  }

  /** @internal */
  subscribe(t: PortableTransport, filter: string, on: boolean): void {
    const s = this.sessions.get(t.clientId);
    if (s === undefined || s.connection !== t) throw new Error('not connected');
    if (on) s.subscriptions.add(filter);
    else s.subscriptions.delete(filter);
  }

  /** @internal */
  route(client: string | null, topic: string, payload: Uint8Array): void {
    if (topic.length === 0 || topic.includes('+') || topic.includes('#')) throw new Error(`bad topic ${topic}`);
    const copy = payload.slice();
    this.log.push({ client, topic, payload: copy });
    for (const s of this.sessions.values()) {
      let match = false;
      for (const f of s.subscriptions) if (topicMatches(f, topic)) match = true;
      if (!match) continue;
      const conn = s.connection;
      if (conn !== null) this.enqueue(() => conn.deliver(topic, copy));
      else s.queued.push({ topic, payload: copy });
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

export class PortableTransport implements Transport {
  private handlers: TransportHandlers | null = null;
  private connectedNow = false;
  private closed = false;
  private started = false;
  private readonly desired = new Set<string>();
  private readonly offline: { topic: string; payload: Uint8Array; done: () => void; fail: (e: Error) => void }[] = [];

  constructor(
    private readonly broker: PortableBroker,
    readonly clientId: string,
  ) {}

  get isConnected(): boolean {
    return this.connectedNow;
  }

  listen(handlers: TransportHandlers): void {
    this.handlers = handlers;
  }

  start(): void {
    if (this.closed) throw new Error('transport closed');
    if (this.started) return;
    this.started = true;
    this.broker.enqueue(() => this.connect());
  }

  publish(topic: string, payload: Uint8Array): Promise<void> {
    if (this.closed) return Promise.reject(new Error('transport closed'));
    if (!this.connectedNow) {
      return new Promise((done, fail) => this.offline.push({ topic, payload: payload.slice(), done, fail }));
    }
    try {
      this.broker.route(this.clientId, topic, payload);
    } catch (e) {
      return Promise.reject(e);
    }
    return Promise.resolve();
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
    if (this.connectedNow) {
      this.connectedNow = false;
      this.broker.detach(this);
    }
    for (const o of this.offline.splice(0)) o.fail(new Error('transport closed before the message went out'));
  }

  /** @internal */
  deliver(topic: string, payload: Uint8Array): void {
    if (this.connectedNow && this.handlers !== null) this.handlers.message(topic, payload.slice());
  }

  /** @internal */
  dropped(reason: string): void {
    if (!this.connectedNow) return;
    this.connectedNow = false;
    this.handlers?.disconnected(reason);
  }

  private connect(): void {
    if (this.closed || this.connectedNow) return;
    const present = this.broker.attach(this);
    this.connectedNow = true;
    for (const f of this.desired) this.broker.subscribe(this, f, true);
    this.handlers?.connected(present);
    this.broker.flushQueued(this);
    for (const o of this.offline.splice(0)) {
      this.broker.route(this.clientId, o.topic, o.payload);
      o.done();
    }
  }
}
