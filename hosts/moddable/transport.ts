/**
 * Transport over the SDK's MQTT.js-style client (`mqtt/js`, on the ECMA-419 MQTT client): QoS 1 both ways,
 * persistent session (clean session false, set in network-config.ts) under the client id `srupClientId` builds
 * (modules/srup/topics.ts, the same rule as on Node), reconnect with backoff. The sockets (and the TLS trust
 * anchor, the CA from the key-store record) come from network-config.ts.
 *
 * One SDK client object per connection attempt (the SDK client's own reconnect is off). What that means, and
 * what this class does about it:
 *   - Publishes. The SDK client keeps a QoS 1 publish whose PUBACK has not come when the connection drops, for
 *     re-publication on that same object, and never calls its callback. This class keeps every publish until
 *     its PUBACK itself (`outgoing`, in order): one made while offline waits for the next connection, one in
 *     flight when the connection drops is carried over, and both are published on the next connection, before
 *     the agent hears `connected` — as the Node transport (mqtt.js's outgoing store) does. A publish resolves
 *     on its PUBACK and rejects on close(), when the queue is full, or after MAX_SENDS connections without a
 *     PUBACK (a message the broker keeps dropping the connection over must not block the queue for ever). A
 *     message sent again after a lost PUBACK may reach the server twice; the receiver's replay check drops the
 *     second copy.
 *   - Queue bound. While offline at most MAX_QUEUED publishes wait (a signed SRUP message is about 0.3-0.7 KiB:
 *     a few KiB of the device's ~160 KiB); the next one is rejected with "outgoing queue full". Online,
 *     publishes go straight to the client (the broker acknowledges them in milliseconds).
 *   - Subscriptions. subscribe()/unsubscribe() need a connection (the agent subscribes on every `connected`);
 *     one pending when the connection drops or the transport closes rejects.
 *   - close() never throws: the SDK client's end() throws while it is connecting, so such a client is
 *     abandoned and ended as soon as it connects (or it fails by itself); its events no longer reach the agent.
 */
import { Client } from 'mqtt/js';
import Timer from 'timer';
import type { Transport, TransportHandlers } from '../../modules/agent/host.js';
import { srupClientId } from '../../modules/srup/topics.js';

export interface MqttTransportOptions {
  readonly url: string;
  /** This device's id; the client id is `srupClientId(deviceId)`. */
  readonly deviceId: bigint;
  readonly keepaliveSeconds?: number;
}

const BACKOFF_MS = [1000, 2000, 5000, 10000, 30000, 60000];

/** Publishes that may wait for a connection (made offline, or in flight when it dropped). */
export const MAX_QUEUED = 8;
/** Connections a publish is sent on without a PUBACK before it is rejected. */
export const MAX_SENDS = 3;

interface Outgoing {
  readonly topic: string;
  readonly payload: ArrayBuffer;
  resolve(): void;
  reject(e: Error): void;
  /** Connections it was published on. */
  sends: number;
  /** The client it was last published on (a PUBACK from another one is stale). */
  client: Client | null;
}

function ignoreErrors(f: () => void): void {
  try {
    f();
  } catch {
    // see the callers
  }
}

export class MqttTransport implements Transport {
  private readonly options: MqttTransportOptions;
  private handlers: TransportHandlers | null = null;
  private client: Client | null = null;
  private attempt = 0;
  private timer: Timer | null = null;
  private started = false;
  private closed = false;
  private connected = false;
  private outgoing: Outgoing[] = [];
  /** Rejecters of subscribe/unsubscribe calls waiting for their SUBACK/UNSUBACK. */
  private readonly acks = new Set<(e: Error) => void>();

  constructor(options: MqttTransportOptions) {
    this.options = options;
  }

  get isConnected(): boolean {
    return this.connected;
  }

  listen(handlers: TransportHandlers): void {
    this.handlers = handlers;
  }

  start(): void {
    if (this.started || this.closed) return;
    this.started = true;
    this.connect();
  }

  private connect(): void {
    this.timer = null;
    if (this.closed) return;
    let client: Client;
    try {
      client = new Client(this.options.url, {
        clientId: srupClientId(this.options.deviceId),
        keepalive: this.options.keepaliveSeconds ?? 60,
        reconnectPeriod: 0, // our own backoff below
        resubscribe: false, // the agent subscribes on every connect
      });
    } catch {
      // A URL the client refuses (checked at provisioning) or no network configured: keep trying.
      this.retry();
      return;
    }
    this.client = client;
    client.on('connect', () => {
      if (client !== this.client) {
        // Abandoned while connecting (close()): end it now that it can be ended.
        ignoreErrors(() => client.end(true));
        return;
      }
      this.attempt = 0;
      this.connected = true;
      const waiting = this.outgoing;
      this.outgoing = [];
      for (const o of waiting) {
        if (o.sends >= MAX_SENDS) o.reject(new Error(`no PUBACK after ${MAX_SENDS} connections`));
        else this.send(o);
      }
      // The CONNACK session-present flag is not surfaced by this client: report false, so the agent
      // subscribes again (harmless with a persistent session).
      this.handlers?.connected(false);
    });
    client.on('message', (topic: string, payload: ArrayBuffer) => {
      if (client === this.client) this.handlers?.message(topic, new Uint8Array(payload));
    });
    client.on('close', () => {
      if (client === this.client) this.lost('connection closed');
    });
    client.on('error', (reason?: unknown) => {
      if (client === this.client) this.lost(reason === undefined ? 'connection failed' : String(reason));
    });
  }

  /** Publishes `o` on the current (connected) client; it stays in `outgoing` until its PUBACK. */
  private send(o: Outgoing): void {
    const c = this.client!;
    o.sends++;
    o.client = c;
    this.outgoing.push(o);
    c.publish(o.topic, o.payload, { qos: 1 }, (err?: unknown) => {
      // Only a PUBACK on the client it was last sent on counts; an error here means that client is ending, and
      // lost() or close() settles the message.
      if (err || o.client !== c || c !== this.client) return;
      const i = this.outgoing.indexOf(o);
      if (i < 0) return;
      this.outgoing.splice(i, 1);
      o.resolve();
    });
  }

  /** The connection (or the attempt) is gone: carry the publishes over, fail the rest, schedule a reconnect. */
  private lost(reason: string): void {
    const c = this.client;
    this.client = null;
    if (c !== null) ignoreErrors(() => c.end(true)); // the SDK client is closed by now; end() only tidies up
    this.failAcks(new Error(`connection lost: ${reason}`));
    for (const o of this.outgoing) o.client = null;
    for (const o of this.outgoing.splice(MAX_QUEUED)) o.reject(new Error(`outgoing queue full (${MAX_QUEUED} messages)`));
    if (this.connected) {
      this.connected = false;
      this.handlers?.disconnected(reason);
    }
    this.retry();
  }

  private retry(): void {
    if (this.closed) return;
    const delay = BACKOFF_MS[Math.min(this.attempt++, BACKOFF_MS.length - 1)];
    this.timer = Timer.set(() => this.connect(), delay);
  }

  private failAcks(e: Error): void {
    const acks = [...this.acks];
    this.acks.clear();
    for (const reject of acks) reject(e);
  }

  publish(topic: string, payload: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.closed) return reject(new Error('transport closed'));
      const o: Outgoing = { topic, payload: payload.slice().buffer as ArrayBuffer, resolve, reject, sends: 0, client: null };
      if (this.connected) return this.send(o);
      if (this.outgoing.length >= MAX_QUEUED) {
        return reject(new Error(`outgoing queue full (${MAX_QUEUED} messages waiting for the broker)`));
      }
      this.outgoing.push(o);
    });
  }

  subscribe(topic: string): Promise<void> {
    return this.ack((c, done) => c.subscribe(topic, { qos: 1 }, done));
  }

  unsubscribe(topic: string): Promise<void> {
    return this.ack((c, done) => c.unsubscribe(topic, {}, done));
  }

  /** A SUBSCRIBE or UNSUBSCRIBE on the connected client, settled by its ack, a lost connection or close(). */
  private ack(op: (c: Client, done: (err?: unknown) => void) => void): Promise<void> {
    return new Promise((resolve, reject) => {
      const c = this.client;
      if (this.closed) return reject(new Error('transport closed'));
      if (c === null || !this.connected) return reject(new Error('not connected'));
      let settled = false;
      const fail = (e: Error): void => {
        if (settled) return;
        settled = true;
        this.acks.delete(fail);
        reject(e);
      };
      this.acks.add(fail);
      op(c, (err?: unknown) => {
        if (settled) return;
        if (err) return fail(err instanceof Error ? err : new Error(String(err)));
        settled = true;
        this.acks.delete(fail);
        resolve();
      });
    });
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    if (this.timer !== null) Timer.clear(this.timer);
    this.timer = null;
    const c = this.client;
    this.client = null;
    // Connected: ends it. Connecting: the SDK throws; the 'connect' listener ends it later (see above).
    if (c !== null) ignoreErrors(() => c.end(true));
    const e = new Error('transport closed');
    this.failAcks(e);
    const pending = this.outgoing;
    this.outgoing = [];
    for (const o of pending) o.reject(e);
    if (this.connected) {
      this.connected = false;
      this.handlers?.disconnected('closed');
    }
    return Promise.resolve();
  }
}
