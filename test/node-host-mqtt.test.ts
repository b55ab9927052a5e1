/**
 * MqttTransport against a real Mosquitto (plain and TLS) on a free loopback port.
 */
import { MqttTransport, backoffDelay, srupClientId, type MqttTransportOptions } from '../hosts/node/mqtt.js';
import type { TransportHandlers } from '../modules/agent/host.js';
import { startMosquitto, type Mosquitto } from './support/mosquitto.js';

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

interface Received {
  topic: string;
  payload: Uint8Array;
}

/** A transport plus what it saw, with helpers to wait for things. */
class Probe {
  readonly t: MqttTransport;
  readonly messages: Received[] = [];
  readonly connects: boolean[] = [];
  readonly disconnects: string[] = [];
  private waiters: Array<() => void> = [];

  constructor(options: MqttTransportOptions) {
    this.t = new MqttTransport({ backoff: { initialMs: 50, maxMs: 400 }, ...options });
    const h: TransportHandlers = {
      message: (topic, payload) => { this.messages.push({ topic, payload }); this.poke(); },
      connected: (sp) => { this.connects.push(sp); this.poke(); },
      disconnected: (r) => { this.disconnects.push(r); this.poke(); },
    };
    this.t.listen(h);
  }

  private poke(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  async until(what: string, cond: () => boolean, ms = 10000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 50);
        this.waiters.push(() => { clearTimeout(t); r(); });
      });
    }
  }

  async started(): Promise<this> {
    this.t.start();
    await this.until('connect', () => this.t.isConnected);
    return this;
  }
}

let seq = 0;
const uniqueId = (name: string) => `srup-test-${process.pid}-${name}-${++seq}`;

describe('MqttTransport over plain MQTT', () => {
  let broker: Mosquitto;
  const probes: Probe[] = [];
  const probe = (o: Partial<MqttTransportOptions> & { clientId: string }) => {
    const p = new Probe({ url: broker.url, ...o });
    probes.push(p);
    return p;
  };

  beforeAll(async () => { broker = await startMosquitto(); });
  afterEach(async () => { await Promise.all(probes.splice(0).map((p) => p.t.close())); });
  afterAll(async () => { await broker?.dispose(); });

  test('publish and subscribe round trip delivers plain Uint8Array payloads', async () => {
    const a = await probe({ clientId: uniqueId('a') }).started();
    const b = await probe({ clientId: uniqueId('b') }).started();
    expect(b.connects).toEqual([false]);
    await b.t.subscribe('SRUP/4a0f');
    const bytes = new Uint8Array([0, 1, 2, 250, 255]);
    await a.t.publish('SRUP/4a0f', bytes);
    await b.until('message', () => b.messages.length === 1);
    const m = b.messages[0];
    expect(m.topic).toBe('SRUP/4a0f');
    expect(Array.from(m.payload)).toEqual([0, 1, 2, 250, 255]);
    expect(Object.getPrototypeOf(m.payload)).toBe(Uint8Array.prototype);
    expect(Buffer.isBuffer(m.payload)).toBe(false);
  });

  test('an offline client receives each message published meanwhile exactly once after it reconnects', async () => {
    const id = uniqueId('offline');
    const first = await probe({ clientId: id }).started();
    await first.t.subscribe('SRUP/feed');
    await first.t.close();

    const pub = await probe({ clientId: uniqueId('pub') }).started();
    for (let i = 0; i < 50; i++) await pub.t.publish('SRUP/feed', enc(`m${i}`));

    const again = probe({ clientId: id });
    await again.started();
    expect(again.connects).toEqual([true]); // session present: no subscribe needed
    await again.until('50 messages', () => again.messages.length >= 50);
    await new Promise((r) => setTimeout(r, 300)); // and nothing more arrives
    expect(again.messages.map((m) => dec(m.payload))).toEqual(Array.from({ length: 50 }, (_, i) => `m${i}`));
  });

  test('publishing while offline is delivered after the connection comes up', async () => {
    const sub = await probe({ clientId: uniqueId('sub') }).started();
    await sub.t.subscribe('SRUP/queued');
    const pub = probe({ clientId: uniqueId('late') });
    const done = pub.t.publish('SRUP/queued', enc('early'));
    pub.t.start();
    await done;
    await sub.until('message', () => sub.messages.length === 1);
    expect(dec(sub.messages[0].payload)).toBe('early');
  });

  test('after a broker restart the transport reconnects by itself and traffic resumes', async () => {
    const sub = await probe({ clientId: uniqueId('r-sub') }).started();
    await sub.t.subscribe('SRUP/restart');
    const pub = await probe({ clientId: uniqueId('r-pub') }).started();
    await broker.restart();
    await sub.until('reconnect', () => sub.connects.length === 2);
    await pub.until('reconnect', () => pub.connects.length === 2);
    expect(sub.disconnects.length).toBe(1);
    expect(sub.connects).toEqual([false, true]); // the broker saved the session
    await pub.t.publish('SRUP/restart', enc('after'));
    await sub.until('message', () => sub.messages.length === 1);
    expect(dec(sub.messages[0].payload)).toBe('after');
  });

  test('when the broker lost the session, subscriptions are made again', async () => {
    const sub = await probe({ clientId: uniqueId('w-sub') }).started();
    await sub.t.subscribe('SRUP/wiped');
    const pub = await probe({ clientId: uniqueId('w-pub') }).started();
    await broker.restart({ wipe: true });
    await sub.until('reconnect', () => sub.connects.length === 2);
    await pub.until('reconnect', () => pub.connects.length === 2);
    expect(sub.connects).toEqual([false, false]);
    // The resubscription is in flight right after CONNACK; publish until it lands.
    for (let i = 0; i < 40 && sub.messages.length === 0; i++) {
      await pub.t.publish('SRUP/wiped', enc('again'));
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(dec(sub.messages[0].payload)).toBe('again');
  });

  test('subscribe made while offline is sent at the next connection', async () => {
    const sub = probe({ clientId: uniqueId('o-sub') });
    const subscribed = sub.t.subscribe('SRUP/later');
    sub.t.start();
    await subscribed;
    const pub = await probe({ clientId: uniqueId('o-pub') }).started();
    await pub.t.publish('SRUP/later', enc('x'));
    await sub.until('message', () => sub.messages.length === 1);
  });

  test('unsubscribe stops delivery', async () => {
    const sub = await probe({ clientId: uniqueId('u-sub') }).started();
    const pub = await probe({ clientId: uniqueId('u-pub') }).started();
    await sub.t.subscribe('SRUP/u');
    await pub.t.publish('SRUP/u', enc('1'));
    await sub.until('first', () => sub.messages.length === 1);
    await sub.t.unsubscribe('SRUP/u');
    await pub.t.publish('SRUP/u', enc('2'));
    await new Promise((r) => setTimeout(r, 200));
    expect(sub.messages.map((m) => dec(m.payload))).toEqual(['1']);
  });

  test('with no broker it retries with doubling delays up to the ceiling', async () => {
    const { freePort } = await import('./support/mosquitto.js');
    const port = await freePort();
    const delays: number[] = [];
    const t = new MqttTransport({
      url: `mqtt://127.0.0.1:${port}`, clientId: uniqueId('nobroker'), random: () => 0.5,
      backoff: { initialMs: 10, maxMs: 80 },
      log: (_l, event, d) => { if (event === 'mqtt_reconnect_scheduled') delays.push(Number(d?.delayMs)); },
    });
    t.start();
    const deadline = Date.now() + 5000;
    while (delays.length < 6 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await t.close();
    expect(delays.slice(0, 6)).toEqual([10, 20, 40, 80, 80, 80]);
  });

  test('publish after close rejects', async () => {
    const a = await probe({ clientId: uniqueId('closed') }).started();
    await a.t.close();
    await expect(a.t.publish('SRUP/x', enc('x'))).rejects.toThrow('transport closed');
    expect(a.t.isConnected).toBe(false);
  });

  test('request/response round trip through the broker, no-delay on and off (printed, not asserted)', async () => {
    // A device publishes, a server answers on another topic, the device receives the answer: 4 QoS 1 legs.
    const rtt = async (noDelay: boolean) => {
      const dev = await probe({ clientId: uniqueId('rtt-dev'), noDelay }).started();
      const srv = await probe({ clientId: uniqueId('rtt-srv'), noDelay }).started();
      await dev.t.subscribe('SRUP/rtt/resp');
      await srv.t.subscribe('SRUP/rtt/req');
      srv.t.listen({
        message: (_topic, payload) => { srv.t.publish('SRUP/rtt/resp', payload).catch(() => {}); },
        connected: () => {},
        disconnected: () => {},
      });
      const times: number[] = [];
      for (let i = 0; i < 40; i++) {
        const n = dev.messages.length;
        const t0 = process.hrtime.bigint();
        await dev.t.publish('SRUP/rtt/req', new Uint8Array(300));
        await dev.until('answer', () => dev.messages.length > n);
        times.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
      times.sort((x, y) => x - y);
      return `median ${times[20].toFixed(2)} ms, p90 ${times[36].toFixed(2)} ms, max ${times[39].toFixed(2)} ms`;
    };
    const on = await rtt(true);
    const off = await rtt(false);
    // eslint-disable-next-line no-console
    console.log('MQTT request/response (300 bytes, QoS 1, loopback Mosquitto with set_tcp_nodelay):\n' +
      `  transport noDelay on : ${on}\n  transport noDelay off: ${off}`);
    expect(on).toMatch(/^median/);
  });
});

describe('MqttTransport over TLS', () => {
  let broker: Mosquitto;
  beforeAll(async () => { broker = await startMosquitto({ tls: { requireCertificate: true } }); });
  afterAll(async () => { await broker?.dispose(); });

  test('round trip with a CA and a client certificate', async () => {
    const tls = broker.tls!;
    const opts = { url: broker.url, ca: tls.ca, cert: tls.clientCert, key: tls.clientKey };
    const a = await new Probe({ ...opts, clientId: uniqueId('tls-a') }).started();
    const b = await new Probe({ ...opts, clientId: uniqueId('tls-b') }).started();
    try {
      await b.t.subscribe('SRUP/tls');
      await a.t.publish('SRUP/tls', enc('secret'));
      await b.until('message', () => b.messages.length === 1);
      expect(dec(b.messages[0].payload)).toBe('secret');
    } finally {
      await a.t.close();
      await b.t.close();
    }
  });

  test('without a client certificate the broker refuses the connection', async () => {
    const errors: string[] = [];
    const p = new Probe({
      url: broker.url, clientId: uniqueId('tls-nocert'), ca: broker.tls!.ca,
      log: (_l, event, d) => { if (event === 'mqtt_error' || event === 'mqtt_reconnect_scheduled') errors.push(event); },
    });
    p.t.start();
    try {
      await p.until('a failed attempt', () => errors.includes('mqtt_reconnect_scheduled'), 5000);
      expect(p.t.isConnected).toBe(false);
      expect(p.connects).toEqual([]);
    } finally {
      await p.t.close();
    }
  });

  test('a broker certificate from another CA is refused and the transport keeps retrying', async () => {
    const { makeTestPki } = await import('./support/mosquitto.js');
    const os = await import('node:os');
    const path = await import('node:path');
    const fs = await import('node:fs');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'srup-otherca-'));
    const other = makeTestPki(dir);
    const errors: string[] = [];
    const p = new Probe({
      url: broker.url, clientId: uniqueId('tls-bad'), ca: other.ca, cert: other.clientCert, key: other.clientKey,
      log: (_l, event, d) => { if (event === 'mqtt_error') errors.push(String(d?.message)); },
    });
    p.t.start();
    try {
      await p.until('two failed attempts', () => errors.length >= 2, 5000);
      expect(p.t.isConnected).toBe(false);
      expect(errors[0]).toMatch(/certificate/i);
    } finally {
      await p.t.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('helpers', () => {
  test('srupClientId writes the id in lowercase hex', () => {
    expect(srupClientId(0x004a0fn)).toBe('SRUP Client: 4a0f');
  });

  test('backoff doubles from 0.5 s to a 30 s ceiling with ±25 % jitter', () => {
    expect([0, 1, 2, 3, 6, 7, 20].map((f) => backoffDelay(f, 500, 30000, 0.5)))
      .toEqual([500, 1000, 2000, 4000, 30000, 30000, 30000]);
    expect(backoffDelay(0, 500, 30000, 0)).toBe(375);
    expect(backoffDelay(0, 500, 30000, 0.999999)).toBe(625);
  });
});
