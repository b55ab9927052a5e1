/**
 * Transport over the SDK's MQTT.js-style client (`mqtt/js`, on the ECMA-419 MQTT client): QoS 1 both ways,
 * persistent session (clean session false) under the device id as client id, reconnect with backoff.
 * The sockets (and the TLS trust anchor, the CA from the key-store record) come from network-config.ts.
 */
import { Client } from 'mqtt/js';
import Timer from 'timer';
import type { Transport, TransportHandlers } from '../../modules/agent/host.js';


export interface MqttTransportOptions {
  readonly url: string;
  readonly clientId: string;
  readonly keepaliveSeconds?: number;
}

const BACKOFF_MS = [1000, 2000, 5000, 10000, 30000, 60000];

export class MqttTransport implements Transport {
  private readonly options: MqttTransportOptions;
  private handlers: TransportHandlers | null = null;
  private client: Client | null = null;
  private readonly topics = new Set<string>();
  private attempt = 0;
  private timer: Timer | null = null;
  private closed = false;
  private connected = false;

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
    if (this.client !== null || this.closed) return;
    this.connect();
  }

  private connect(): void {
    this.timer = null;
    const client = new Client(this.options.url, {
      clientId: this.options.clientId,
      keepalive: this.options.keepaliveSeconds ?? 60,
      reconnectPeriod: 0, // our own backoff below
    });
    this.client = client;
    client.on('connect', () => {
      this.attempt = 0;
      this.connected = true;
      // The CONNACK session-present flag is not surfaced by this client: report false, so the agent
      // subscribes again (harmless with a persistent session).
      this.handlers?.connected(false);
    });
    client.on('message', (topic: string, payload: ArrayBuffer) => {
      this.handlers?.message(topic, new Uint8Array(payload));
    });
    client.on('close', () => this.lost('closed'));
    client.on('error', (reason?: unknown) => this.lost(String(reason ?? 'error')));
  }

  private lost(reason: string): void {
    if (this.client === null) return;
    const c = this.client;
    this.client = null;
    try {
      c.end(true);
    } catch {
      // already gone
    }
    if (this.connected) {
      this.connected = false;
      this.handlers?.disconnected(reason);
    }
    if (this.closed) return;
    const delay = BACKOFF_MS[Math.min(this.attempt++, BACKOFF_MS.length - 1)];
    this.timer = Timer.set(() => this.connect(), delay);
  }

  publish(topic: string, payload: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => {
      const c = this.client;
      if (c === null || !this.connected) return reject(new Error('not connected'));
      c.publish(topic, payload.slice().buffer as ArrayBuffer, { qos: 1 }, (err?: unknown) => (err ? reject(new Error(String(err))) : resolve()));
    });
  }

  subscribe(topic: string): Promise<void> {
    this.topics.add(topic);
    return new Promise((resolve, reject) => {
      const c = this.client;
      if (c === null || !this.connected) return reject(new Error('not connected'));
      c.subscribe(topic, { qos: 1 }, (err?: unknown) => (err ? reject(new Error(String(err))) : resolve()));
    });
  }

  unsubscribe(topic: string): Promise<void> {
    this.topics.delete(topic);
    return new Promise((resolve, reject) => {
      const c = this.client;
      if (c === null || !this.connected) return reject(new Error('not connected'));
      c.unsubscribe(topic, {}, (err?: unknown) => (err ? reject(new Error(String(err))) : resolve()));
    });
  }

  close(): Promise<void> {
    this.closed = true;
    if (this.timer !== null) Timer.clear(this.timer);
    const c = this.client;
    this.client = null;
    this.connected = false;
    if (c !== null) c.end(true);
    return Promise.resolve();
  }
}
