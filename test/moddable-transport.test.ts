/**
 * hosts/moddable/transport.ts and network-config.ts against stand-ins for the SDK modules they import (jest
 * virtual modules, per test, so no other suite sees them): `mqtt/js` is a fake of the SDK's MQTT.js-style
 * client that behaves as its source does where the transport depends on it (end() throws while connecting; a
 * QoS 1 publish pending when the connection drops is kept by that client object and its callback never runs;
 * pending SUBACK/UNSUBACK callbacks get an error; 'error' only for a failed attempt, 'close' always), and
 * `timer` runs on jest's fake timers.
 */
import { srupClientId as nodeClientId } from '../hosts/node/mqtt.js';
import type { Transport, TransportHandlers } from '../modules/agent/host.js';
import { srupClientId } from '../modules/srup/topics.js';

type Listener = (...args: unknown[]) => void;
type Callback = (err?: unknown, granted?: unknown) => void;

/** The SDK's `mqtt/js` Client, as far as the transport can tell. */
class FakeClient {
  static instances: FakeClient[] = [];
  state: 'connecting' | 'connected' | 'ending' | 'closing' | 'closed' = 'connecting';
  readonly listeners = new Map<string, Listener[]>();
  /** Every PUBLISH written on this connection: topic and payload text. */
  readonly published: [string, string][] = [];
  /** Waiting for their acks, in order. */
  acks: { op: 'PUBACK' | 'SUBACK' | 'UNSUBACK'; id: number; callback?: Callback; topic: string }[] = [];
  endCalls = 0;
  private id = 0;

  constructor(readonly url: string, readonly options: Record<string, unknown>) {
    FakeClient.instances.push(this);
  }

  on(event: string, listener: Listener): this {
    this.listeners.set(event, [...(this.listeners.get(event) ?? []), listener]);
    return this;
  }

  private emit(event: string, ...args: unknown[]): void {
    for (const l of this.listeners.get(event) ?? []) l(...args);
  }

  private disconnecting(callback?: Callback): boolean {
    if (this.state !== 'ending' && this.state !== 'closing') return false;
    callback?.(new Error('MQTT client disconnecting'));
    return true;
  }

  publish(topic: string, message: ArrayBuffer, options: { qos?: number }, callback?: Callback): this {
    if (this.disconnecting(callback)) return this;
    const id = ++this.id;
    if (options.qos === 1) this.acks.push({ op: 'PUBACK', id, callback, topic });
    this.published.push([topic, new TextDecoder().decode(message)]);
    return this;
  }

  subscribe(topic: string, _options: object, callback?: Callback): this {
    if (this.disconnecting(callback)) return this;
    this.acks.push({ op: 'SUBACK', id: ++this.id, callback, topic });
    return this;
  }

  unsubscribe(topic: string, _options: object, callback?: Callback): this {
    if (this.disconnecting(callback)) return this;
    this.acks.push({ op: 'UNSUBACK', id: ++this.id, callback, topic });
    return this;
  }

  end(force?: boolean): this {
    this.endCalls++;
    if (this.state === 'connecting') throw new Error('MQTT client connecting');
    if (this.state === 'connected') {
      this.state = 'closing';
      expect(force).toBe(true);
      // As the SDK's #close(): on the next turn, closed; acks dropped (publishes silently), then 'close', 'end'.
      setTimeout(() => {
        this.state = 'closed';
        this.restore(false);
        this.emit('close');
        this.emit('end');
      }, 0);
    }
    return this;
  }

  // -- what the network does

  connack(): void {
    expect(this.state).toBe('connecting');
    this.state = 'connected';
    this.emit('connect', null);
  }

  /** The broker acknowledges the oldest waiting ack of `op`. */
  ack(op: 'PUBACK' | 'SUBACK' | 'UNSUBACK'): void {
    const i = this.acks.findIndex((a) => a.op === op);
    expect(i).toBeGreaterThanOrEqual(0);
    const [a] = this.acks.splice(i, 1);
    if (op === 'SUBACK') a.callback?.(null, [{ qos: 1, topic: a.topic }]);
    else a.callback?.(null);
  }

  /** The socket fails (DNS, connect, TLS, reset): the SDK's onError. */
  fail(reason = 'socket error'): void {
    const was = this.state;
    this.state = 'closed';
    if (was === 'connecting') this.emit('error', reason);
    if (was === 'connected') {
      this.restore(true);
      this.emit('offline');
    }
    this.emit('close');
  }

  deliver(topic: string, text: string): void {
    this.emit('message', topic, new TextEncoder().encode(text).buffer);
  }

  private restore(republish: boolean): void {
    const acks = this.acks;
    this.acks = [];
    for (const a of acks) {
      if (a.op !== 'PUBACK') a.callback?.(new Error('MQTT client disconnected'));
      else if (republish) this.acks.push(a); // kept for this object's own reconnect; the callback waits
    }
  }
}

interface TransportModule {
  MqttTransport: new (o: { url: string; deviceId: bigint; keepaliveSeconds?: number }) => Transport;
  MAX_QUEUED: number;
  MAX_SENDS: number;
}

function loadTransport(): TransportModule {
  let mod: unknown;
  jest.isolateModules(() => {
    jest.doMock('mqtt/js', () => ({ __esModule: true, Client: FakeClient }), { virtual: true });
    jest.doMock('timer', () => ({
      __esModule: true,
      default: {
        set: (fn: () => void, ms = 0) => setTimeout(fn, ms),
        clear: (t: ReturnType<typeof setTimeout> | undefined) => clearTimeout(t),
      },
    }), { virtual: true });
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    mod = require('../hosts/moddable/transport');
  });
  return mod as TransportModule;
}

const DEVICE = 0x004a0fn;
const te = (s: string): Uint8Array => new TextEncoder().encode(s);

interface Rig {
  t: Transport;
  mod: TransportModule;
  /** What the agent heard, in order. */
  heard: string[];
  /** The client of the newest connection attempt. */
  client(): FakeClient;
  /** Each publish's outcome by name: 'pending', 'ok' or the rejection's message. */
  outcomes: Map<string, string>;
  publish(name: string): void;
}

function rig(): Rig {
  FakeClient.instances = [];
  const mod = loadTransport();
  const t = new mod.MqttTransport({ url: 'mqtts://broker.lan:8883', deviceId: DEVICE });
  const heard: string[] = [];
  const handlers: TransportHandlers = {
    message: (topic, payload) => heard.push(`message ${topic} ${new TextDecoder().decode(payload)}`),
    connected: (sp) => heard.push(`connected ${sp} published=${JSON.stringify(FakeClient.instances.at(-1)!.published.map((p) => p[1]))}`),
    disconnected: (reason) => heard.push(`disconnected ${reason}`),
  };
  t.listen(handlers);
  const outcomes = new Map<string, string>();
  return {
    t,
    mod,
    heard,
    client: () => FakeClient.instances.at(-1)!,
    outcomes,
    publish(name: string): void {
      outcomes.set(name, 'pending');
      t.publish('SRUP/4a0f', te(name)).then(
        () => outcomes.set(name, 'ok'),
        (e: Error) => outcomes.set(name, e.message),
      );
    },
  };
}

/** Lets promise callbacks run (no time passes). */
const flush = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await Promise.resolve();
};

describe('Moddable transport (hosts/moddable/transport.ts) over a fake of the SDK mqtt/js client', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  test('connects with the client id rule both hosts use, no SDK reconnect, and reconnects with its own backoff', () => {
    const r = rig();
    r.t.start();
    expect(FakeClient.instances).toHaveLength(1);
    expect(r.client().url).toBe('mqtts://broker.lan:8883');
    expect(r.client().options).toEqual({ clientId: 'SRUP Client: 4a0f', keepalive: 60, reconnectPeriod: 0, resubscribe: false });
    expect(srupClientId(DEVICE)).toBe('SRUP Client: 4a0f');
    expect(nodeClientId).toBe(srupClientId);

    r.client().fail('dns');
    expect(r.heard).toEqual([]); // never connected: nothing to tell the agent
    jest.advanceTimersByTime(999);
    expect(FakeClient.instances).toHaveLength(1);
    jest.advanceTimersByTime(1);
    expect(FakeClient.instances).toHaveLength(2);
    r.client().fail('dns');
    jest.advanceTimersByTime(1999);
    expect(FakeClient.instances).toHaveLength(2);
    jest.advanceTimersByTime(1);
    expect(FakeClient.instances).toHaveLength(3);
    r.client().connack();
    expect(r.t.isConnected).toBe(true);
    r.client().fail('reset');
    expect(r.t.isConnected).toBe(false);
    expect(r.heard).toEqual(['connected false published=[]', 'disconnected connection closed']);
    jest.advanceTimersByTime(1000); // a connection that came up resets the backoff
    expect(FakeClient.instances).toHaveLength(4);
  });

  test('a publish resolves on its PUBACK, not before', async () => {
    const r = rig();
    r.t.start();
    r.client().connack();
    r.publish('a');
    await flush();
    expect(r.client().published).toEqual([['SRUP/4a0f', 'a']]);
    expect(r.outcomes.get('a')).toBe('pending');
    r.client().ack('PUBACK');
    await flush();
    expect(r.outcomes.get('a')).toBe('ok');
  });

  test('a publish in flight when the connection drops is published again after the reconnect and settles on that PUBACK', async () => {
    const r = rig();
    r.t.start();
    r.client().connack();
    r.publish('a');
    r.publish('b');
    r.client().ack('PUBACK'); // a
    r.client().fail();
    await flush();
    expect(r.outcomes.get('a')).toBe('ok');
    expect(r.outcomes.get('b')).toBe('pending'); // the SDK client never calls back; the transport carries it over
    jest.advanceTimersByTime(1000);
    const second = r.client();
    expect(second.published).toEqual([]);
    second.connack();
    // Sent on the new connection before the agent hears `connected` (and subscribes).
    expect(r.heard).toEqual(['connected false published=[]', 'disconnected connection closed', 'connected false published=["b"]']);
    second.ack('PUBACK');
    await flush();
    expect(r.outcomes.get('b')).toBe('ok');
  });

  test('publishes made while offline wait, in order, and go out after the (re)connect', async () => {
    const r = rig();
    r.publish('before-start');
    r.t.start();
    r.publish('connecting');
    r.client().connack();
    r.publish('online');
    r.client().fail();
    r.publish('offline');
    await flush();
    expect([...r.outcomes.values()]).toEqual(['pending', 'pending', 'pending', 'pending']);
    jest.advanceTimersByTime(1000);
    r.client().connack();
    expect(r.client().published.map((p) => p[1])).toEqual(['before-start', 'connecting', 'online', 'offline']);
    for (let i = 0; i < 4; i++) r.client().ack('PUBACK');
    await flush();
    expect([...r.outcomes.values()]).toEqual(['ok', 'ok', 'ok', 'ok']);
  });

  test('at most MAX_QUEUED (8) publishes wait for a connection; the next one is rejected at once', async () => {
    const r = rig();
    expect(r.mod.MAX_QUEUED).toBe(8);
    r.t.start();
    for (let i = 0; i < 9; i++) r.publish(`m${i}`);
    await flush();
    expect(r.outcomes.get('m7')).toBe('pending');
    expect(r.outcomes.get('m8')).toBe('outgoing queue full (8 messages waiting for the broker)');
    r.client().connack();
    expect(r.client().published.map((p) => p[1])).toEqual(['m0', 'm1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7']);
  });

  test('online publishes are not limited; in flight beyond MAX_QUEUED when the connection drops, the newest are rejected', async () => {
    const r = rig();
    r.t.start();
    r.client().connack();
    for (let i = 0; i < 10; i++) r.publish(`m${i}`);
    expect(r.client().published).toHaveLength(10);
    r.client().fail();
    await flush();
    expect(r.outcomes.get('m7')).toBe('pending');
    expect(r.outcomes.get('m8')).toBe('outgoing queue full (8 messages)');
    expect(r.outcomes.get('m9')).toBe('outgoing queue full (8 messages)');
    jest.advanceTimersByTime(1000);
    r.client().connack();
    expect(r.client().published.map((p) => p[1])).toEqual(['m0', 'm1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7']);
  });

  test('a publish sent on MAX_SENDS (3) connections without a PUBACK is rejected, and the queue moves on', async () => {
    const r = rig();
    expect(r.mod.MAX_SENDS).toBe(3);
    r.t.start();
    r.client().connack();
    r.publish('poison');
    for (let i = 0; i < 2; i++) {
      r.client().fail();
      jest.advanceTimersByTime(1000);
      r.client().connack();
      expect(r.client().published.map((p) => p[1])).toEqual(['poison']);
    }
    r.client().fail();
    r.publish('next');
    jest.advanceTimersByTime(1000);
    r.client().connack();
    await flush();
    expect(r.outcomes.get('poison')).toBe('no PUBACK after 3 connections');
    expect(r.client().published.map((p) => p[1])).toEqual(['next']);
  });

  test('close() while connected: ends the client, rejects what waits, tells the agent, later events change nothing', async () => {
    const r = rig();
    r.t.start();
    const c = r.client();
    c.connack();
    r.publish('in-flight');
    let sub = 'pending';
    r.t.subscribe('SRUP/4a0f').then(() => (sub = 'ok'), (e: Error) => (sub = e.message));
    await expect(r.t.close()).resolves.toBeUndefined();
    await flush();
    expect(c.endCalls).toBe(1);
    expect(r.outcomes.get('in-flight')).toBe('transport closed');
    expect(sub).toBe('transport closed');
    expect(r.t.isConnected).toBe(false);
    jest.advanceTimersByTime(60_000); // the SDK's close runs; no reconnect is scheduled
    expect(c.state).toBe('closed');
    expect(FakeClient.instances).toHaveLength(1);
    expect(r.heard).toEqual(['connected false published=[]', 'disconnected closed']);
    r.publish('after');
    await flush();
    expect(r.outcomes.get('after')).toBe('transport closed');
    await expect(r.t.subscribe('x')).rejects.toThrow('transport closed');
  });

  test('close() while connecting never throws (the SDK end() does): the client is ended when it connects, unheard', async () => {
    const r = rig();
    r.t.start();
    r.publish('queued');
    const c = r.client();
    expect(() => c.end(true)).toThrow('MQTT client connecting'); // what the transport must not let out
    c.endCalls = 0;
    await expect(r.t.close()).resolves.toBeUndefined();
    await flush();
    expect(r.outcomes.get('queued')).toBe('transport closed');
    c.connack();
    expect(c.endCalls).toBe(2); // tried in close(), done once it connected
    expect(c.state).toBe('closing');
    c.deliver('SRUP/4a0f', 'late');
    jest.advanceTimersByTime(60_000);
    expect(r.heard).toEqual([]);
    expect(c.published).toEqual([]);
    expect(FakeClient.instances).toHaveLength(1);
  });

  test('close() during the backoff wait cancels the reconnect', async () => {
    const r = rig();
    r.t.start();
    r.client().fail();
    await r.t.close();
    jest.advanceTimersByTime(120_000);
    expect(FakeClient.instances).toHaveLength(1);
  });

  test('subscribe and unsubscribe settle: on their ack, on a lost connection, and at once when offline', async () => {
    const r = rig();
    r.t.start();
    await expect(r.t.subscribe('SRUP/4a0f')).rejects.toThrow('not connected');
    r.client().connack();
    const results: string[] = [];
    const track = (name: string, p: Promise<void>): void =>
      void p.then(() => results.push(`${name} ok`), (e: Error) => results.push(`${name} ${e.message}`));
    track('sub', r.t.subscribe('SRUP/4a0f'));
    track('unsub', r.t.unsubscribe('SRUP/old'));
    r.client().ack('SUBACK');
    await flush();
    expect(results).toEqual(['sub ok']);
    r.client().fail('reset');
    await flush();
    expect(results).toEqual(['sub ok', 'unsub MQTT client disconnected']);
    jest.advanceTimersByTime(1000);
    r.client().connack();
    track('sub2', r.t.subscribe('SRUP/4a0f'));
    r.client().fail('reset');
    await flush();
    expect(results).toEqual(['sub ok', 'unsub MQTT client disconnected', 'sub2 MQTT client disconnected']);
  });

  test('messages reach the agent as bytes; only from the current connection', () => {
    const r = rig();
    r.t.start();
    const first = r.client();
    first.connack();
    first.deliver('SRUP/4a0f', 'hello');
    first.fail();
    first.deliver('SRUP/4a0f', 'stale');
    expect(r.heard).toEqual(['connected false published=[]', 'message SRUP/4a0f hello', 'disconnected connection closed']);
  });
});

// ------------------------------------------------------------------------------------------------ network config

interface NetworkModule {
  configureNetwork(ca: Uint8Array | null, log?: (m: string) => void, dns?: readonly string[] | null): void;
  FALLBACK_DNS: readonly string[];
}

describe('network configuration (hosts/moddable/network-config.ts): DNS servers', () => {
  let netDns: unknown;
  function load(): NetworkModule {
    let mod: unknown;
    jest.isolateModules(() => {
      const cls = (name: string) => ({ __esModule: true, default: class { static id = name; } });
      jest.doMock('embedded:io/socket/tcp', () => cls('TCP'), { virtual: true });
      jest.doMock('embedded:io/socket/tcp/tls', () => cls('TLS'), { virtual: true });
      jest.doMock('embedded:io/socket/udp', () => cls('UDP'), { virtual: true });
      jest.doMock('embedded:network/dns/resolver/udp', () => cls('Resolver'), { virtual: true });
      jest.doMock('embedded:network/http/client', () => cls('HTTP'), { virtual: true });
      jest.doMock('embedded:network/mqtt/client', () => cls('MQTT'), { virtual: true });
      jest.doMock('net', () => ({
        __esModule: true,
        default: {
          get: (what: string) => {
            if (what !== 'DNS') throw new Error(`unexpected Net.get(${what})`);
            return netDns;
          },
        },
      }), { virtual: true });
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      mod = require('../hosts/moddable/network-config');
    });
    return mod as NetworkModule;
  }
  type Dns = { servers: string[]; io: { id: string } };
  const network = (): Record<string, { dns: Dns }> =>
    (globalThis as unknown as { device: { network: Record<string, { dns: Dns }> } }).device.network;
  /** What a resolver made for a connection now would use, the same for all four entries. */
  const servers = (): string[] => {
    const n = network();
    const all = ['mqtt', 'mqtts', 'http', 'https'].map((k) => n[k].dns.servers);
    for (const s of all) expect(s).toEqual(all[0]);
    return all[0];
  };
  afterEach(() => {
    delete (globalThis as unknown as { device?: unknown }).device;
  });

  test('by default the network’s own servers (DHCP), read again for every connection', () => {
    netDns = ['192.168.1.1', '192.168.1.2'];
    load().configureNetwork(null, () => undefined);
    expect(network().mqtt.dns.io.id).toBe('Resolver');
    expect(servers()).toEqual(['192.168.1.1', '192.168.1.2']);
    netDns = ['10.0.0.53']; // another network, or a renewed lease
    expect(servers()).toEqual(['10.0.0.53']);
  });

  test('the record’s servers replace the network’s', () => {
    netDns = ['192.168.1.1'];
    load().configureNetwork(null, () => undefined, ['10.1.2.3', '10.1.2.4']);
    expect(servers()).toEqual(['10.1.2.3', '10.1.2.4']);
  });

  test.each([
    ['no DNS list (the simulator)', undefined],
    ['an empty list', []],
    ['IPv6 servers only', ['fe80::1']],
  ])('public resolvers only when neither names one: %s', (_name, value) => {
    netDns = value;
    const m = load();
    m.configureNetwork(null, () => undefined, null);
    expect(servers()).toEqual(['1.1.1.1', '8.8.8.8']);
    expect(m.FALLBACK_DNS).toEqual(['1.1.1.1', '8.8.8.8']);
  });

  test('an IPv6 server next to IPv4 ones is left out (the resolver writes to IPv4 only)', () => {
    netDns = ['fe80::1', '192.168.1.1'];
    load().configureNetwork(null, () => undefined);
    expect(servers()).toEqual(['192.168.1.1']);
  });
});
