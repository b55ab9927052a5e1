/**
 * The ports both sides of SRUP use, the device agent (modules/agent) and the C2 engine (modules/c2): MQTT
 * transport, clock and log. Declared here, in the neutral protocol layer, so that neither side imports the
 * other. Hosts (hosts/node, hosts/moddable) implement them. Types only: nothing here exists at run time.
 */

// ------------------------------------------------------------------------------------------------ transport

export interface TransportHandlers {
  /** One MQTT message (QoS 1, so it may be a duplicate: the replay check handles that). */
  message(topic: string, payload: Uint8Array): void;
  /** Connected (again) to the broker. `sessionPresent` is the broker's CONNACK flag. */
  connected(sessionPresent: boolean): void;
  /** Lost the broker; the transport reconnects by itself with backoff. */
  disconnected(reason: string): void;
}

/** MQTT with QoS 1 both ways and a persistent session under a stable client id. */
export interface Transport {
  /** Installs the handlers; called once by the agent before start(). */
  listen(handlers: TransportHandlers): void;
  /** Starts connecting (and keeps reconnecting until close()). */
  start(): void;
  /**
   * Publishes with QoS 1; resolves when the broker acknowledged it (PUBACK). Made while offline, or in flight
   * when the connection dropped, it is published after the next connect (a host may bound how many wait and
   * reject beyond that). Rejects on close().
   */
  publish(topic: string, payload: Uint8Array): Promise<void>;
  /** Subscribes with QoS 1; resolves on SUBACK. Subscriptions survive reconnects. */
  subscribe(topic: string): Promise<void>;
  unsubscribe(topic: string): Promise<void>;
  readonly isConnected: boolean;
  close(): Promise<void>;
}

// ------------------------------------------------------------------------------------------------ clock, log

export interface Clock {
  /** Milliseconds, monotonic enough for timeouts and backoff. */
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** One line per event: `event` is a stable machine-readable name, `detail` small and flat. */
export type Log = (level: LogLevel, event: string, detail?: Record<string, string | number | boolean | null>) => void;
