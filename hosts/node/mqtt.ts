/**
 * Transport over mqtt.js: MQTT 3.1.1, QoS 1 both ways, persistent session (clean: false) under a stable client
 * id, TCP no-delay, TLS with a CA and an optional client certificate, and reconnection with exponential backoff
 * and jitter that this class drives itself (mqtt.js only knows a fixed reconnect period).
 */
import net from 'node:net';
import tls from 'node:tls';
import { MqttClient, type IClientOptions } from 'mqtt';
import type { Log, Transport, TransportHandlers } from '../../modules/agent/host.js';

export interface MqttBackoff {
  /** First delay after a lost connection or a failed attempt (default 500 ms). */
  initialMs?: number;
  /** Ceiling of the doubling (default 30 000 ms). */
  maxMs?: number;
  /** A connection that stayed up this long resets the backoff (default 5000 ms). */
  stableMs?: number;
}

export interface MqttTransportOptions {
  /** `mqtt://host[:port]` (default port 1883) or `mqtts://host[:port]` (default 8883). */
  url: string;
  /** Stable client id; the broker keeps the session under it. See `srupClientId`. */
  clientId: string;
  username?: string;
  password?: string;
  /** PEM trust anchor(s) for the broker's certificate (mqtts). Without it, the system CAs are used. */
  ca?: string | Uint8Array;
  /** PEM client certificate and key (mqtts), when the broker asks for one. */
  cert?: string | Uint8Array;
  key?: string | Uint8Array;
  /** Seconds (default 60, as pySRUP). */
  keepalive?: number;
  /**
   * Start a clean MQTT session (default false: the broker keeps the session and what arrives while offline).
   * Server nodes sharing a subscription use clean sessions, so that a dead node's share is not queued for it.
   */
  cleanSession?: boolean;
  /** Milliseconds to wait for CONNACK (default 10 000). */
  connectTimeoutMs?: number;
  backoff?: MqttBackoff;
  /** TCP_NODELAY (default true). Only for measuring what Nagle costs; leave it on. */
  noDelay?: boolean;
  /** Source of jitter in [0, 1) (default Math.random; tests may fix it). */
  random?: () => number;
  log?: Log;
}

/** The client id rule of both hosts (modules/srup/topics.ts), here for the callers of this module. */
export { srupClientId } from '../../modules/srup/topics.js';

/** The delay before reconnect attempt number `failures` (0-based): doubling, capped, with ±25 % jitter. */
export function backoffDelay(failures: number, initialMs: number, maxMs: number, random: number): number {
  const base = Math.min(maxMs, initialMs * 2 ** Math.min(failures, 30));
  return Math.round(base * (0.75 + 0.5 * random));
}

interface Endpoint {
  secure: boolean;
  host: string;
  port: number;
}

function parseUrl(url: string): Endpoint {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`bad broker URL "${url}"`);
  }
  const scheme = u.protocol.replace(/:$/, '');
  const secure = scheme === 'mqtts' || scheme === 'ssl' || scheme === 'tls';
  if (!secure && scheme !== 'mqtt' && scheme !== 'tcp') {
    throw new Error(`bad broker URL "${url}": scheme must be mqtt:// or mqtts://`);
  }
  const host = u.hostname.replace(/^\[|\]$/g, '');
  if (!host) throw new Error(`bad broker URL "${url}": no host`);
  return { secure, host, port: u.port ? Number(u.port) : secure ? 8883 : 1883 };
}

const toPem = (v: string | Uint8Array | undefined): string | Buffer | undefined =>
  v === undefined ? undefined : typeof v === 'string' ? v : Buffer.from(v);

interface Pending {
  reject(e: Error): void;
}

export class MqttTransport implements Transport {
  private readonly options: MqttTransportOptions;
  private readonly endpoint: Endpoint;
  private readonly client: MqttClient;
  private handlers: TransportHandlers | null = null;
  private started = false;
  private closed = false;
  private connected = false;
  private connectedAt = 0;
  private failures = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private lastError = '';
  /** Topics the agent wants, and those the broker confirmed within the current session. */
  private readonly wanted = new Set<string>();
  private readonly confirmed = new Set<string>();
  /** subscribe() calls made while offline, settled when the topic is confirmed after the next connect. */
  private readonly waiting = new Map<string, Array<{ resolve(): void; reject(e: Error): void }>>();
  private readonly pending = new Set<Pending>();

  constructor(options: MqttTransportOptions) {
    this.options = options;
    this.endpoint = parseUrl(options.url);
    if (!options.clientId) throw new Error('MqttTransport: clientId is required (persistent session)');
    const clientOptions: IClientOptions = {
      clientId: options.clientId,
      protocolVersion: 4,
      clean: options.cleanSession === true ? true : false,
      keepalive: options.keepalive ?? 60,
      connectTimeout: options.connectTimeoutMs ?? 10000,
      reconnectPeriod: 0, // reconnection is ours (backoff)
      resubscribe: false, // so are resubscriptions (we know whether the session was present)
      manualConnect: true,
      username: options.username,
      password: options.password,
    };
    this.client = new MqttClient(() => this.openSocket(), clientOptions);
    this.client.on('connect', (packet) => this.onConnect(packet.sessionPresent === true));
    this.client.on('close', () => this.onClose());
    this.client.on('error', (e) => {
      this.lastError = e.message;
      this.log('warn', 'mqtt_error', { message: e.message });
    });
    this.client.on('message', (topic, payload) => {
      // A copy: no Buffer (or its shared pool) leaks into the agent.
      const bytes = new Uint8Array(payload.byteLength);
      bytes.set(payload);
      try {
        this.handlers?.message(topic, bytes);
      } catch (e) {
        this.log('error', 'mqtt_handler_threw', { topic, message: (e as Error).message });
      }
    });
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
    this.connectNow();
  }

  publish(topic: string, payload: Uint8Array): Promise<void> {
    if (this.closed) return Promise.reject(new Error('transport closed'));
    return new Promise<void>((resolve, reject) => {
      const entry: Pending = { reject };
      this.pending.add(entry);
      // While offline mqtt.js keeps QoS 1 messages in its outgoing store and sends them after the next CONNACK;
      // the callback runs on PUBACK.
      this.client.publish(topic, Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength), { qos: 1 },
        (err) => {
          if (!this.pending.delete(entry)) return;
          if (err) reject(err);
          else resolve();
        });
    });
  }

  subscribe(topic: string): Promise<void> {
    if (this.closed) return Promise.reject(new Error('transport closed'));
    this.wanted.add(topic);
    if (this.confirmed.has(topic)) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const list = this.waiting.get(topic) ?? [];
      list.push({ resolve, reject });
      this.waiting.set(topic, list);
      if (this.connected) this.sendSubscribe([topic]);
    });
  }

  async unsubscribe(topic: string): Promise<void> {
    if (this.closed) throw new Error('transport closed');
    this.wanted.delete(topic);
    for (const w of this.waiting.get(topic) ?? []) w.reject(new Error('unsubscribed'));
    this.waiting.delete(topic);
    this.confirmed.delete(topic);
    // Offline, the broker's copy of the session may still hold it: it then delivers a few messages on a topic
    // the agent no longer wants, which the agent ignores (it checks topics).
    if (this.connected) await this.client.unsubscribeAsync(topic);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    // Give in-flight publishes a moment to be acknowledged, then say goodbye.
    const deadline = Date.now() + 1000;
    while (this.connected && this.pending.size > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    const graceful = this.connected && this.pending.size === 0;
    if (this.started) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 2000);
        try {
          this.client.end(!graceful, {}, () => { clearTimeout(t); resolve(); });
        } catch {
          // no socket was ever made (e.g. the TLS key could not be loaded): nothing to end
          clearTimeout(t);
          resolve();
        }
      });
    }
    const err = new Error('transport closed');
    for (const p of this.pending) p.reject(err);
    this.pending.clear();
    for (const list of this.waiting.values()) for (const w of list) w.reject(err);
    this.waiting.clear();
    if (this.connected) {
      this.connected = false;
      this.handlers?.disconnected('closed');
    }
  }

  // ---------------------------------------------------------------------------------------------- internals

  private log(level: 'debug' | 'info' | 'warn' | 'error', event: string,
    detail?: Record<string, string | number | boolean | null>): void {
    this.options.log?.(level, event, detail);
  }

  /** The stream builder: one socket per connection attempt, Nagle off (else each QoS 1 leg waits ~40 ms). */
  private openSocket(): net.Socket {
    const { host, port, secure } = this.endpoint;
    const o = this.options;
    const noDelay = o.noDelay !== false;
    if (!secure) return net.createConnection({ host, port, noDelay });
    const socket = tls.connect({
      host,
      port,
      servername: net.isIP(host) === 0 ? host : undefined,
      ca: toPem(o.ca),
      cert: toPem(o.cert),
      key: toPem(o.key),
      rejectUnauthorized: true,
    });
    // tls.connect ignores the noDelay option; setNoDelay before the connection is up is applied on connect.
    if (noDelay) socket.setNoDelay(true);
    return socket;
  }

  private connectNow(): void {
    this.timer = null;
    if (this.closed) return;
    this.log('debug', 'mqtt_connecting', { url: this.options.url, attempt: this.failures + 1 });
    try {
      this.client.connect();
    } catch (e) {
      // e.g. a malformed CA or key: the socket could not even be made. Keep trying with backoff.
      this.lastError = (e as Error).message;
      this.log('error', 'mqtt_connect_failed', { message: this.lastError });
      this.onClose();
    }
  }

  private onConnect(sessionPresent: boolean): void {
    if (this.closed) return;
    this.connected = true;
    this.connectedAt = Date.now();
    this.lastError = '';
    if (!sessionPresent) this.confirmed.clear();
    this.log('info', 'mqtt_connected', { sessionPresent });
    const missing = [...this.wanted].filter((t) => !this.confirmed.has(t));
    if (missing.length > 0) this.sendSubscribe(missing);
    this.handlers?.connected(sessionPresent);
  }

  private sendSubscribe(topics: string[]): void {
    const settle = (topic: string, err: Error | null) => {
      const list = this.waiting.get(topic) ?? [];
      this.waiting.delete(topic);
      for (const w of list) (err ? w.reject(err) : w.resolve());
    };
    this.client.subscribe(topics, { qos: 1 }, (err, granted) => {
      if (err) {
        // A lost connection: the next connect retries them; a refusal is reported to the callers.
        if (this.connected && !this.closed) for (const t of topics) settle(t, err);
        return;
      }
      for (const g of granted ?? []) {
        if (g.qos === 128) {
          this.wanted.delete(g.topic);
          this.log('warn', 'mqtt_subscribe_refused', { topic: g.topic });
          settle(g.topic, new Error(`broker refused the subscription to ${g.topic}`));
        } else if (this.wanted.has(g.topic)) {
          this.confirmed.add(g.topic);
          settle(g.topic, null);
        }
      }
    });
  }

  private onClose(): void {
    const wasConnected = this.connected;
    this.connected = false;
    if (this.closed) return;
    if (wasConnected) {
      if (Date.now() - this.connectedAt >= (this.options.backoff?.stableMs ?? 5000)) this.failures = 0;
      const reason = this.lastError || 'connection lost';
      this.log('warn', 'mqtt_disconnected', { reason });
      this.handlers?.disconnected(reason);
    }
    if (this.timer || !this.started) return;
    const b = this.options.backoff ?? {};
    const delay = backoffDelay(this.failures, b.initialMs ?? 500, b.maxMs ?? 30000, (this.options.random ?? Math.random)());
    this.failures++;
    this.log('debug', 'mqtt_reconnect_scheduled', { delayMs: delay, reason: this.lastError || null });
    this.timer = setTimeout(() => this.connectNow(), delay);
  }
}
