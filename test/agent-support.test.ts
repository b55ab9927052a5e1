/**
 * The shared test support (test/support/memory-broker.ts, test/support/fakes.ts) and the agent's memory stores:
 * other suites rely on these behaving like the real things.
 */
import { MemoryKeyStore, MemorySequenceStore } from '../modules/agent/memory.js';
import type { TransportHandlers } from '../modules/agent/host.js';
import { MemoryBroker, MemoryTransport, topicMatches } from './support/memory-broker.js';
import {
  CollectingLog,
  FakeDownloader,
  FakeUpdater,
  ManualClock,
  RecordingPresenter,
  fakeHost,
  realClock,
  seededRandom,
} from './support/fakes.js';
import { pureCrypto } from '../crypto/pure.js';
import type { RsaPrivateKey, RsaPublicKey } from '../crypto/types.js';

const b = (...xs: number[]) => Uint8Array.from(xs);

interface Recorder {
  messages: [string, number[]][];
  connects: boolean[];
  drops: string[];
  handlers: TransportHandlers;
}

function recorder(): Recorder {
  const r: Recorder = {
    messages: [],
    connects: [],
    drops: [],
    handlers: {
      message: (t, p) => r.messages.push([t, [...p]]),
      connected: (s) => r.connects.push(s),
      disconnected: (why) => r.drops.push(why),
    },
  };
  return r;
}

async function connected(broker: MemoryBroker, id: string, opts = {}): Promise<[MemoryTransport, Recorder]> {
  const t = broker.client(id, opts);
  const rec = recorder();
  t.listen(rec.handlers);
  t.start();
  await broker.settle();
  return [t, rec];
}

describe('topicMatches', () => {
  test.each([
    ['SRUP/#', 'SRUP/4a0f', true],
    ['SRUP/#', 'SRUP', true],
    ['SRUP/#', 'SRUP/servers/1/2', true],
    ['#', 'anything/at/all', true],
    ['SRUP/+', 'SRUP/4a0f', true],
    ['SRUP/+', 'SRUP/servers/1/2', false],
    ['SRUP/servers/5e/+', 'SRUP/servers/5e/4a0f', true],
    ['SRUP/servers/5e/+', 'SRUP/servers/5f/4a0f', false],
    ['SRUP/+/+/4a0f', 'SRUP/servers/5e/4a0f', true],
    ['SRUP/4a0f', 'SRUP/4a0f', true],
    ['SRUP/4a0f', 'SRUP/4a0f/x', false],
    ['SRUP/4a0f/#', 'SRUP/4a0f', true],
    ['SRUP/4a0f', 'SRUP/4a0', false],
  ])('%s matches %s: %s', (filter, topic, want) => {
    expect(topicMatches(filter, topic)).toBe(want);
  });
});

describe('MemoryBroker', () => {
  test('delivers asynchronously, in publish order, to every matching subscriber (and the publisher)', async () => {
    const broker = new MemoryBroker();
    const [a, ra] = await connected(broker, 'a');
    const [, rb] = await connected(broker, 'b');
    await a.subscribe('SRUP/#');
    const bT = broker.client('unused'); // never started: receives nothing
    void bT;
    const [c, rc] = await connected(broker, 'c');
    await c.subscribe('SRUP/+');
    const p1 = a.publish('SRUP/1', b(1));
    const p2 = a.publish('SRUP/servers/5/1', b(2));
    const p3 = a.publish('SRUP/1', b(3));
    expect(ra.messages).toEqual([]); // not inside publish()
    await Promise.all([p1, p2, p3]);
    await broker.settle();
    expect(ra.messages).toEqual([
      ['SRUP/1', [1]],
      ['SRUP/servers/5/1', [2]],
      ['SRUP/1', [3]],
    ]);
    expect(rc.messages).toEqual([
      ['SRUP/1', [1]],
      ['SRUP/1', [3]],
    ]);
    expect(rb.messages).toEqual([]);
    expect(broker.log.map((p) => [p.client, p.topic, p.index])).toEqual([
      ['a', 'SRUP/1', 0],
      ['a', 'SRUP/servers/5/1', 1],
      ['a', 'SRUP/1', 2],
    ]);
    expect(broker.published('SRUP/servers/#').map((p) => [...p.payload])).toEqual([[2]]);
  });

  test('payloads are copied: changing the sender\'s buffer afterwards changes nothing delivered', async () => {
    const broker = new MemoryBroker();
    const [a, ra] = await connected(broker, 'a');
    await a.subscribe('t');
    const buf = b(1, 2, 3);
    await a.publish('t', buf);
    buf[0] = 9;
    await broker.settle();
    expect(ra.messages).toEqual([['t', [1, 2, 3]]]);
  });

  test('a persistent session queues while disconnected and delivers in order on reconnect', async () => {
    const broker = new MemoryBroker();
    const [dev, rd] = await connected(broker, 'dev');
    const [c2] = await connected(broker, 'c2');
    await dev.subscribe('SRUP/1');
    dev.disconnect('wifi');
    expect(rd.drops).toEqual(['wifi']);
    expect(dev.isConnected).toBe(false);
    await c2.publish('SRUP/1', b(1));
    await c2.publish('SRUP/1', b(2));
    await broker.settle();
    expect(rd.messages).toEqual([]);
    expect(broker.queuedFor('dev')).toBe(2);
    dev.reconnect();
    await broker.settle();
    expect(rd.connects).toEqual([false, true]);
    expect(rd.messages).toEqual([
      ['SRUP/1', [1]],
      ['SRUP/1', [2]],
    ]);
    expect(broker.queuedFor('dev')).toBe(0);
  });

  test('the session outlives the transport: a new client with the same id gets it (a rebooted device)', async () => {
    const broker = new MemoryBroker();
    const [dev] = await connected(broker, 'dev');
    const [c2] = await connected(broker, 'c2');
    await dev.subscribe('SRUP/1');
    await dev.close();
    await c2.publish('SRUP/1', b(7));
    const [, rd2] = await connected(broker, 'dev');
    await broker.settle();
    expect(rd2.connects).toEqual([true]);
    expect(rd2.messages).toEqual([['SRUP/1', [7]]]);
    expect(broker.subscriptionsOf('dev')).toEqual(['SRUP/1']);
  });

  test('a clean session keeps nothing', async () => {
    const broker = new MemoryBroker();
    const [dev] = await connected(broker, 'dev', { cleanSession: true });
    const [c2] = await connected(broker, 'c2');
    await dev.subscribe('SRUP/1');
    await dev.close();
    await c2.publish('SRUP/1', b(7));
    expect(broker.queuedFor('dev')).toBe(0);
    const [, rd2] = await connected(broker, 'dev', { cleanSession: true });
    await broker.settle();
    expect(rd2.connects).toEqual([false]);
    expect(rd2.messages).toEqual([]);
    expect(broker.subscriptionsOf('dev')).toEqual([]);
  });

  test('a second connection with the same id takes the session over', async () => {
    const broker = new MemoryBroker();
    const [, r1] = await connected(broker, 'dev');
    const [, r2] = await connected(broker, 'dev');
    expect(r1.drops).toEqual(['session taken over']);
    expect(r2.connects).toEqual([true]);
    expect(broker.connectedClients()).toEqual(['dev']);
  });

  test('publishes while disconnected wait and go out on reconnect; close() rejects waiting and later ones', async () => {
    const broker = new MemoryBroker();
    const [dev] = await connected(broker, 'dev');
    const [c2, rc] = await connected(broker, 'c2');
    await c2.subscribe('#');
    dev.disconnect();
    let done = false;
    const p = dev.publish('SRUP/1', b(5)).then(() => (done = true));
    await broker.settle();
    expect(done).toBe(false);
    expect(broker.log).toHaveLength(0);
    dev.reconnect();
    await p;
    await broker.settle();
    expect(rc.messages).toEqual([['SRUP/1', [5]]]);
    dev.disconnect();
    const waiting = dev.publish('SRUP/1', b(6));
    await dev.close();
    await expect(waiting).rejects.toThrow('closed');
    await expect(dev.publish('SRUP/1', b(7))).rejects.toThrow('closed');
    await expect(dev.subscribe('x')).rejects.toThrow('closed');
  });

  test('subscriptions made before connecting apply on connect; unsubscribe stops delivery', async () => {
    const broker = new MemoryBroker();
    const t = broker.client('dev');
    const rec = recorder();
    t.listen(rec.handlers);
    await t.subscribe('a/+');
    t.start();
    await broker.settle();
    expect(broker.subscriptionsOf('dev')).toEqual(['a/+']);
    broker.inject('a/1', b(1));
    await broker.settle();
    await t.unsubscribe('a/+');
    broker.inject('a/2', b(2));
    await broker.settle();
    expect(rec.messages).toEqual([['a/1', [1]]]);
    expect(broker.log.map((p) => p.client)).toEqual([null, null]);
  });

  test('waitFor resolves with a past or future publish, and times out', async () => {
    const broker = new MemoryBroker();
    broker.inject('x/1', b(1));
    expect((await broker.waitFor((p) => p.topic === 'x/1')).index).toBe(0);
    const later = broker.waitFor((p) => p.topic === 'x/2');
    broker.inject('x/2', b(2));
    expect([...(await later).payload]).toEqual([2]);
    await expect(broker.waitFor(() => false, 10)).rejects.toThrow('no matching publish');
  });

  test('wildcards are refused in a published topic', () => {
    const broker = new MemoryBroker();
    expect(() => broker.inject('SRUP/#', b(1))).toThrow('bad topic');
  });
});

describe('fakes', () => {
  test('FakeDownloader streams in chunks, cuts off, fails, 404s, and can hold', async () => {
    const d = new FakeDownloader()
      .serve('u1', b(1, 2, 3, 4, 5), { chunkSize: 2 })
      .serve('u2', b(1, 2, 3, 4, 5), { chunkSize: 2, cutOffAt: 3 })
      .fail('u3', { ok: false, error: 'unreachable', message: 'down' });
    const got: number[][] = [];
    expect(await d.download('u1', (c) => got.push([...c]))).toEqual({ ok: true, bytes: 5 });
    expect(got).toEqual([[1, 2], [3, 4], [5]]);
    got.length = 0;
    expect(await d.download('u2', (c) => got.push([...c]))).toEqual({
      ok: false,
      error: 'file',
      message: 'connection closed after 3 of 5 bytes',
    });
    expect(got).toEqual([[1, 2], [3]]);
    expect(await d.download('u3', () => {})).toEqual({ ok: false, error: 'unreachable', message: 'down' });
    expect(await d.download('nope', () => {})).toEqual({ ok: false, error: 'http_error', status: 404 });
    expect(
      await d.download('u1', () => {
        throw new Error('disk full');
      }),
    ).toEqual({ ok: false, error: 'file', message: 'sink refused: Error: disk full' });
    let release = () => {};
    d.serve('u4', b(9), { hold: new Promise<void>((r) => (release = r)) });
    let finished = false;
    const p = d.download('u4', () => {}).then(() => (finished = true));
    await new Promise((r) => setImmediate(r));
    expect(finished).toBe(false);
    release();
    await p;
    expect(d.requests).toEqual(['u1', 'u2', 'u3', 'nope', 'u1', 'u4']);
    expect(d.largestChunk).toBe(2);
  });

  test('FakeUpdater: begin/write/finish/activate, reboot into the new image, confirm; misuse throws', () => {
    const u = new FakeUpdater(b(0xaa));
    expect(() => u.write(b(1))).toThrow('without begin');
    expect(() => u.activate()).toThrow('without a finished image');
    u.begin();
    u.write(b(1, 2));
    u.write(b(3));
    u.finish();
    expect(u.inactive).toEqual(b(1, 2, 3));
    u.activate();
    expect(u.restartRequested).toBe(true);
    expect(u.running).toEqual(b(0xaa));
    u.reboot();
    expect(u.running).toEqual(b(1, 2, 3));
    expect(u.bootState()).toBe('unconfirmed');
    expect(u.confirm()).toBe(true);
    expect(u.bootState()).toBe('normal');
    expect(u.confirm()).toBe(false);
    expect(u.calls).toEqual([
      'write:1', 'activate', 'begin', 'write:2', 'write:1', 'finish', 'activate',
      'reboot', 'bootState', 'confirm', 'bootState', 'confirm',
    ]);
  });

  test('FakeUpdater: an unconfirmed image rolls back at the next reboot; a failing image rolls back at once', () => {
    const u = new FakeUpdater(b(0xaa));
    u.begin();
    u.write(b(1));
    u.finish();
    u.activate();
    u.reboot();
    expect(u.bootState()).toBe('unconfirmed');
    u.reboot();
    expect(u.bootState()).toBe('rolled_back');
    expect(u.running).toEqual(b(0xaa));
    const v = new FakeUpdater(b(0xaa));
    v.begin();
    v.finish();
    v.activate();
    v.reboot({ fail: true });
    expect([v.bootState(), [...v.running]]).toEqual(['rolled_back', [0xaa]]);
    v.abort();
    expect(v.inactive).toBeNull();
  });

  test('ManualClock fires due timers in time order only on advance(); clearTimeout cancels', () => {
    const c = new ManualClock(100);
    const fired: string[] = [];
    c.setTimeout(() => fired.push('b@300'), 200);
    const h = c.setTimeout(() => fired.push('x'), 50);
    c.setTimeout(() => {
      fired.push(`a@${c.now()}`);
      c.setTimeout(() => fired.push(`nested@${c.now()}`), 10);
    }, 100);
    c.clearTimeout(h);
    c.advance(99);
    expect(fired).toEqual([]);
    c.advance(1);
    expect(fired).toEqual(['a@200']);
    c.advance(200);
    expect(fired).toEqual(['a@200', 'nested@210', 'b@300']);
    expect(c.now()).toBe(400);
    expect(c.pending).toBe(0);
  });

  test('realClock uses the real timers', async () => {
    const t0 = realClock.now();
    const order: string[] = [];
    await new Promise<void>((r) => {
      realClock.setTimeout(() => { order.push('later'); r(); }, 5);
      realClock.setTimeout(() => order.push('sooner'), 0);
    });
    expect(order).toEqual(['sooner', 'later']);
    expect(realClock.now()).toBeGreaterThanOrEqual(t0);
    let fired = false;
    realClock.clearTimeout(realClock.setTimeout(() => (fired = true), 1));
    await new Promise((r) => setTimeout(r, 10));
    expect(fired).toBe(false);
  });

  test('RecordingPresenter, CollectingLog, seededRandom', () => {
    const p = new RecordingPresenter();
    p.showChallenge(b(1, 2));
    expect(p.current).toEqual(b(1, 2));
    p.clearChallenge();
    expect(p.current).toBeNull();
    expect(p.history).toEqual([{ op: 'show', secret: b(1, 2) }, { op: 'clear' }]);

    const l = new CollectingLog();
    l.log('warn', 'rejected', { reason: 'replay' });
    l.log('info', 'connected');
    expect(l.rejections()).toEqual(['replay']);
    expect(l.events('connected')).toEqual([{ level: 'info', event: 'connected', detail: {} }]);
    l.clear();
    expect(l.lines).toEqual([]);

    const r1 = seededRandom(42);
    const r2 = seededRandom(42);
    expect(r1(8)).toEqual(r2(8));
    expect(r1(8)).not.toEqual(seededRandom(43)(8));
  });

  test('fakeHost fills in the fakes', () => {
    const broker = new MemoryBroker();
    const keys = new MemoryKeyStore({ deviceId: 1n, privateKey: {} as RsaPrivateKey });
    const h = fakeHost({ transport: broker.client('x'), keys, sequences: new MemorySequenceStore(), crypto: pureCrypto });
    expect(h.clock).toBeInstanceOf(ManualClock);
    expect(h.updater).toBeInstanceOf(FakeUpdater);
    expect(h.downloader).toBeInstanceOf(FakeDownloader);
    expect(h.presenter).toBeInstanceOf(RecordingPresenter);
    expect(h.random(4)).toEqual(seededRandom(1)(4));
  });
});

describe('memory stores', () => {
  const k1 = { kind: 'rsa-public', n: 1n, e: 3n, size: 1 } as RsaPublicKey;
  const k2 = { kind: 'rsa-public', n: 2n, e: 3n, size: 1 } as RsaPublicKey;

  test('MemoryKeyStore: server, peer keys', () => {
    const s = new MemoryKeyStore({ deviceId: 9n, privateKey: {} as RsaPrivateKey, serverId: 5n, peers: [[5n, k1]] });
    expect(s.deviceId).toBe(9n);
    expect(s.serverId()).toBe(5n);
    expect(s.peerKey(5n)).toBe(k1);
    expect(s.peerKey(6n)).toBeNull();
    s.setPeerKey(6n, k2);
    s.setPeerKey(5n, null);
    s.setServerId(null);
    expect([s.serverId(), s.peerKey(5n), s.peerKey(6n), s.peerIds()]).toEqual([null, null, k2, [6n]]);
  });

  test('MemorySequenceStore: counters per peer, forget, pending update copied in and out', () => {
    const s = new MemorySequenceStore();
    expect([s.lastAccepted(1n), s.lastSent(1n), s.pendingUpdate()]).toEqual([0n, 0n, null]);
    s.setLastAccepted(1n, 5n);
    s.setLastSent(1n, 7n);
    s.setLastSent(2n, 1n);
    expect([s.lastAccepted(1n), s.lastSent(1n), s.lastSent(2n)]).toEqual([5n, 7n, 1n]);
    s.forget(1n);
    expect([s.lastAccepted(1n), s.lastSent(1n), s.lastSent(2n)]).toEqual([0n, 0n, 1n]);
    const token = b(1, 2);
    s.setPendingUpdate({ server: 3n, token, state: 'staged' });
    token[0] = 9;
    const p = s.pendingUpdate();
    expect(p).toEqual({ server: 3n, token: b(1, 2), state: 'staged' });
    (p?.token as Uint8Array)[1] = 9;
    expect(s.pendingUpdate()?.token).toEqual(b(1, 2));
    s.setPendingUpdate(null);
    expect(s.pendingUpdate()).toBeNull();
  });
});
