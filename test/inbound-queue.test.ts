/**
 * The bounded inbound queue (modules/srup/inbox.ts) in front of the device's receive steps: a flood of forged
 * commands with the server's sender id costs forged commands, never more than the bound in memory or in signature
 * checks, and the server's genuine command behind the flood is still answered.
 *
 * No timing here: the clock is virtual and moves only while a signature is checked (VERIFY_MS each), so what the
 * queue decides is exact.
 */
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { parsePrivateKeyPem, parsePublicKeyPem } from '../crypto/keys.js';
import type { Crypto } from '../crypto/types.js';
import { nodeCrypto } from '../hosts/node/crypto.js';
import { Agent } from '../modules/agent/agent.js';
import { DEVICE_INBOX_MESSAGES } from '../modules/agent/inbound.js';
import { MemoryKeyStore, MemorySequenceStore } from '../modules/agent/memory.js';
import { decode, encode } from '../modules/srup/codec.js';
import { utf8 } from '../modules/srup/bytes.js';
import { InboundQueue, PLAUSIBLE_STEP, REPORT_MS, SLICE_MS } from '../modules/srup/inbox.js';
import type { Clock } from '../modules/srup/ports.js';
import { Status } from '../modules/srup/schema.js';
import { sealMessage } from '../modules/srup/session.js';
import { C2Engine } from '../modules/c2/engine.js';
import { SERVER_INBOX_MESSAGES } from '../modules/c2/inbound.js';
import { MemoryRegistry } from '../modules/c2/memory-registry.js';
import { deviceTopic } from '../modules/srup/topics.js';
import { DEV_A, SERVER_ID, deviceMessage, testKeys } from './support/c2-wire.js';
import { MemoryBroker } from './support/memory-broker.js';
import { CollectingLog, FakeDownloader, FakeUpdater, RecordingPresenter, seededRandom } from './support/fakes.js';

const KEYS = path.join(__dirname, 'data', 'srup-vectors', 'keys');
const pem = (f: string) => fs.readFileSync(path.join(KEYS, f), 'utf8');
const devicePriv = parsePrivateKeyPem(pem('recipient-1.private.pem'));
const serverPriv = parsePrivateKeyPem(pem('signer-1.private.pem'));
const serverPub = parsePublicKeyPem(pem('signer-1.public.pem'));
const DEVICE = 0x04a0f1b2c3d4e5f6n;
const DEVICE_TOPIC = 'SRUP/4a0f1b2c3d4e5f6';
const SERVER = 0x5e12d3c4b5a69788n;
const VERIFY_MS = 5;

/**
 * Virtual time that passes only while a signature is checked (VERIFY_MS each), for timers due within a second
 * (they run one per turn of the event loop, the earliest first, the clock moving on to it), and by advance().
 */
function virtualTime(): { clock: Clock; crypto: Crypto & { verifies: number }; advance(ms: number): Promise<void>; close(): void } {
  let now = 0;
  let seq = 0;
  const timers = new Map<number, { at: number; fn: () => void }>();
  let pump: ReturnType<typeof setTimeout> | null = null;
  const schedule = () => {
    if (pump !== null || timers.size === 0) return;
    pump = setTimeout(() => {
      pump = null;
      let next: [number, { at: number; fn: () => void }] | null = null;
      for (const e of timers) if (next === null || e[1].at < next[1].at) next = e;
      if (next !== null && next[1].at <= now + 1000) {
        timers.delete(next[0]);
        now = Math.max(now, next[1].at);
        next[1].fn();
      }
      if (next !== null && next[1].at <= now + 1000) schedule();
    }, 0);
  };
  const due = () => [...timers.values()].some((t) => t.at <= now + 1000);
  const crypto = { ...nodeCrypto, verifies: 0 } as Crypto & { verifies: number };
  crypto.verify = (k, m, s) => {
    crypto.verifies++;
    now += VERIFY_MS;
    return nodeCrypto.verify(k, m, s);
  };
  const clock: Clock = {
    now: () => now,
    setTimeout: (fn, ms) => {
      const id = ++seq;
      timers.set(id, { at: now + ms, fn });
      schedule();
      return id;
    },
    clearTimeout: (h) => void timers.delete(h as number),
  };
  return {
    clock,
    crypto,
    async advance(ms: number) {
      now += ms;
      schedule();
      while (pump !== null || due()) await new Promise((r) => setImmediate(r));
    },
    close: () => {
      timers.clear();
      if (pump !== null) clearTimeout(pump);
    },
  };
}

/** An action "from the server" with a random sequence ID and a random 256-byte signature. */
function forgedAction(): Uint8Array {
  const seq = BigInt('0x' + randomBytes(8).toString('hex')) | 1n;
  return encode({ type: 'action', sequenceId: seq, senderId: SERVER, token: utf8('forged'), signature: new Uint8Array(randomBytes(256)), fields: { actionId: 1 } });
}

describe('device: a flood of forged commands behind which the server sends a genuine one', () => {
  test('the queue never holds more than its bound, the excess is dropped and reported, and the genuine command is answered', async () => {
    const time = virtualTime();
    const broker = new MemoryBroker();
    const logs = new CollectingLog();
    const transport = broker.client('SRUP Client: 4a0f1b2c3d4e5f6');
    const agent = new Agent(
      {
        transport,
        keys: new MemoryKeyStore({ deviceId: DEVICE, privateKey: devicePriv, serverId: SERVER, peers: [[SERVER, serverPub]] }),
        sequences: new MemorySequenceStore(),
        clock: time.clock,
        crypto: time.crypto,
        random: seededRandom(3),
        presenter: new RecordingPresenter(),
        downloader: new FakeDownloader(),
        updater: new FakeUpdater(new Uint8Array([1])),
        log: logs.log,
      },
      { firmwareName: 'flood', firmwareVersion: '1.0.0', actions: { 7: () => true } },
    );
    const c2 = broker.client('c2');
    const attacker = broker.client('attacker');
    for (const c of [c2, attacker]) {
      c.listen({ message: () => undefined, connected: () => undefined, disconnected: () => undefined });
      c.start();
    }
    agent.start();
    await broker.settle();

    const FLOOD = 1000;
    const genuine = sealMessage(nodeCrypto, serverPriv, { type: 'action', sequenceId: 1n, senderId: SERVER, token: utf8('genuine'), fields: { actionId: 7 } });
    // All in one go: the broker delivers them to the device in this order, the genuine command last.
    const published = Array.from({ length: FLOOD }, () => attacker.publish(DEVICE_TOPIC, forgedAction()));
    published.push(c2.publish(DEVICE_TOPIC, genuine));
    await Promise.all(published);
    await broker.settle();
    await agent.idle();
    await broker.settle();
    await time.advance(REPORT_MS); // the last report of drops

    // Answered: the device's one publish is the response to the genuine command.
    const answers = broker.log.filter((p) => p.client?.startsWith('SRUP Client') === true).map((p) => decode(p.payload));
    expect(answers.map((m) => [m.type, Buffer.from(m.token).toString()])).toEqual([['response', 'genuine']]);
    expect(answers[0].type === 'response' && answers[0].fields.status).toBe(Status.ACTION_SUCCESS);

    // Processed at once while the device kept up: SLICE_MS of signature checks (4 forgeries). Then queued, at most
    // DEVICE_INBOX_MESSAGES, the genuine command (next sequence ID) taking the place of the worst forgery.
    const inline = SLICE_MS / VERIFY_MS;
    const dropped = FLOOD - inline - DEVICE_INBOX_MESSAGES + 1;
    const reports = logs.events('inbound_dropped');
    expect(reports[0].detail).toEqual({ dropped: 1, queued: DEVICE_INBOX_MESSAGES, total: 1 });
    expect(reports.reduce((n, l) => n + Number(l.detail.dropped), 0)).toBe(dropped);
    // Every forgery is either checked (and refused, nothing changed) or dropped; none beyond the bound was checked.
    expect(logs.rejections().filter((r) => r === 'bad_signature').length).toBe(FLOOD - dropped);
    expect(time.crypto.verifies).toBe(FLOOD - dropped + 1);
    expect(logs.events('accepted').map((l) => l.detail.seq)).toEqual(['1']);

    await agent.close();
    time.close();
  });
});

describe('server: a flood of forged messages "from a device" ahead of its genuine answer', () => {
  test('the queue never holds more than its bound, and the genuine answer is taken', async () => {
    const time = virtualTime();
    const keys = testKeys();
    const broker = new MemoryBroker();
    const logs = new CollectingLog();
    const registry = new MemoryRegistry();
    registry.addDevice(DEV_A, keys.a.publicKey, 0);
    registry.updateDevice(DEV_A, { state: 'joined' }, 0);
    const engine = new C2Engine(
      { transport: broker.client('SRUP Client: c2'), registry, crypto: time.crypto, random: seededRandom(5), clock: time.clock, log: logs.log, serverId: SERVER_ID, privateKey: keys.server },
      {},
    );
    await Promise.all([engine.start(), broker.settle()]);
    const device = broker.client('device');
    const attacker = broker.client('attacker');
    for (const c of [device, attacker]) {
      c.listen({ message: () => undefined, connected: () => undefined, disconnected: () => undefined });
      c.start();
    }
    await broker.settle();
    const asked = engine.sendAction(DEV_A, 7);
    await broker.settle();
    const action = broker.log.filter((p) => p.topic === deviceTopic(DEV_A)).map((p) => decode(p.payload))[0];

    // More forgeries than the server's bound, with the device's id and random sequence IDs and signatures.
    const FLOOD = SERVER_INBOX_MESSAGES + 500;
    const forged = () =>
      encode({ type: 'data', sequenceId: BigInt('0x' + randomBytes(8).toString('hex')) | 1n, senderId: DEV_A, token: utf8('forged'), signature: new Uint8Array(randomBytes(256)), fields: { dataId: utf8('x'), data: utf8('y') } });
    const published = Array.from({ length: FLOOD }, () => attacker.publish(deviceTopic(DEV_A), forged()));
    published.push(device.publish(deviceTopic(DEV_A), deviceMessage(keys.a, 'response', DEV_A, action.sequenceId + 1n, action.token, { status: Status.ACTION_SUCCESS })));
    await Promise.all(published);
    await broker.settle();
    await engine.idle();
    expect(await asked).toBe(Status.ACTION_SUCCESS);
    await time.advance(REPORT_MS);

    const inline = SLICE_MS / VERIFY_MS;
    const dropped = FLOOD - inline - SERVER_INBOX_MESSAGES + 1;
    const reports = logs.events('inbound_dropped');
    expect(reports[0].detail).toEqual({ dropped: 1, queued: SERVER_INBOX_MESSAGES, total: 1 });
    expect(reports.reduce((n, l) => n + Number(l.detail.dropped), 0)).toBe(dropped);
    expect(logs.rejections().filter((r) => r === 'bad_signature').length).toBe(FLOOD - dropped);
    // Taken before any queued forgery was checked: the answer was the best in the queue.
    const order = logs.lines.filter((l) => l.event === 'accepted' || (l.event === 'rejected' && l.detail.reason === 'bad_signature'));
    expect(order.findIndex((l) => l.event === 'accepted')).toBe(inline);
    engine.stop();
    time.close();
  });
});

describe('InboundQueue', () => {
  /** Topics starting with p rank as their number (plausible); others as their number × F (implausible). */
  const F = PLAUSIBLE_STEP + 1n;

  /** A queue over a side whose processing costs VERIFY_MS; push() does what a side does with admit() and done(). */
  function queue(maxMessages: number, maxBytes = 1 << 20) {
    const time = virtualTime();
    const done: string[] = [];
    const logs = new CollectingLog();
    const process = (topic: string) => {
      done.push(topic);
      time.crypto.verify(serverPub, new Uint8Array(1), new Uint8Array(256)); // costs VERIFY_MS
    };
    const inbox = new InboundQueue({
      clock: time.clock,
      log: logs.log,
      maxMessages,
      maxBytes,
      rank: (topic) => (topic.startsWith('cheap') ? null : BigInt(topic.split('/')[1]) * (topic.startsWith('p') ? 1n : F)),
      process,
    });
    const q = {
      push(topic: string, payload: Uint8Array) {
        if (!inbox.admit(topic, payload)) return;
        process(inbox.topic);
        inbox.done();
      },
      get queued() {
        return inbox.queued;
      },
      get dropped() {
        return inbox.dropped;
      },
      drained: () => inbox.drained(),
      close: () => inbox.close(),
    };
    return { q, done, logs, time };
  }

  test('saturated: best first (smallest step, then arrival), the worst dropped when full, refusals without a check at once', async () => {
    const { q, done, logs, time } = queue(3);
    // 4 × VERIFY_MS = SLICE_MS back to back: the next ones wait.
    for (let i = 0; i < 4; i++) q.push(`m${i}/9`, new Uint8Array(1));
    expect(done).toEqual(['m0/9', 'm1/9', 'm2/9', 'm3/9']);
    q.push('a/50', new Uint8Array(1));
    q.push('b/7', new Uint8Array(1));
    q.push('c/50', new Uint8Array(1));
    expect(q.queued).toBe(3);
    q.push('d/60', new Uint8Array(1)); // worse than everything queued: it goes
    q.push('e/1', new Uint8Array(1)); // better: the worst (c, the later of the two 50s) goes
    q.push('cheap', new Uint8Array(1)); // refused without a check: processed at once, never queued
    expect(q.queued).toBe(3);
    expect(q.dropped).toBe(2);
    expect(done.slice(4)).toEqual(['cheap']);
    await q.drained();
    expect(done.slice(5)).toEqual(['e/1', 'b/7', 'a/50']);
    expect(logs.events('inbound_dropped').map((l) => l.detail)).toEqual([{ dropped: 1, queued: 3, total: 1 }]);
    q.close();
    time.close();
  });

  test('plausible messages (a burst of genuine commands) are never dropped: with the queue full, the best is processed at once, in order', async () => {
    const { q, done, logs, time } = queue(3);
    for (let i = 0; i < 4; i++) q.push(`m${i}/9`, new Uint8Array(1));
    for (let i = 1; i <= 8; i++) q.push(`p${i}/${i}`, new Uint8Array(1));
    // p1..p3 filled the queue; each later one let the best waiting one through.
    expect(done.slice(4)).toEqual(['p1/1', 'p2/2', 'p3/3', 'p4/4', 'p5/5']);
    q.push('x/1', new Uint8Array(1)); // implausible, with a queue full of plausible ones: it goes
    expect([q.queued, q.dropped]).toEqual([3, 1]);
    await q.drained();
    expect(done.slice(4)).toEqual(['p1/1', 'p2/2', 'p3/3', 'p4/4', 'p5/5', 'p6/6', 'p7/7', 'p8/8']);
    expect(logs.events('inbound_dropped').map((l) => l.detail)).toEqual([{ dropped: 1, queued: 3, total: 1 }]);
    q.close();
    time.close();
  });

  test('one sender\'s messages keep their order, whatever rank they were given on arrival (counters move meanwhile)', async () => {
    const time = virtualTime();
    const done: bigint[] = [];
    const ranks = new Map<bigint, bigint>([[10n, 10n], [11n, 2n], [12n, 3n]]);
    const msg = (seq: bigint, sender = SERVER) =>
      encode({ type: 'action', sequenceId: seq, senderId: sender, token: utf8('t'), signature: new Uint8Array(8), fields: { actionId: 1 } });
    const inbox = new InboundQueue({
      clock: time.clock,
      log: new CollectingLog().log,
      maxMessages: 8,
      maxBytes: 1 << 20,
      rank: (_t, p) => ranks.get(decode(p).sequenceId) ?? 1n,
      process: (_t, p) => {
        done.push(decode(p).sequenceId);
        time.crypto.verify(serverPub, new Uint8Array(1), new Uint8Array(256));
      },
    });
    const push = (p: Uint8Array) => {
      if (!inbox.admit('t', p)) return;
      done.push(decode(inbox.payload).sequenceId);
      time.crypto.verify(serverPub, new Uint8Array(1), new Uint8Array(256));
      inbox.done();
    };
    for (let i = 1n; i <= 4n; i++) push(msg(i, DEVICE)); // another sender's run fills the slice
    push(msg(10n));
    push(msg(12n));
    push(msg(11n));
    push(msg(5n, DEVICE));
    await inbox.drained();
    expect(done).toEqual([1n, 2n, 3n, 4n, 5n, 10n, 11n, 12n]);
    inbox.close();
    time.close();
  });

  test('the byte bound: messages are dropped to stay within it, but one message always fits', async () => {
    const { q, done, time } = queue(100, 10);
    for (let i = 0; i < 4; i++) q.push(`m${i}/1`, new Uint8Array(1));
    q.push('big/5', new Uint8Array(50)); // larger than the bound, but the queue is empty: kept
    expect([q.queued, q.dropped]).toEqual([1, 0]);
    q.push('a/2', new Uint8Array(6)); // 56 > 10 bytes: the worse one (big) goes
    q.push('b/3', new Uint8Array(6)); // 12 > 10 bytes: the worse one (b itself) goes
    q.push('c/1', new Uint8Array(4)); // 10 bytes: fits
    expect([q.queued, q.dropped]).toEqual([2, 2]);
    await q.drained();
    expect(done.slice(4)).toEqual(['c/1', 'a/2']);
    q.close();
    time.close();
  });

  test('close() drops what waits, and later messages are ignored', async () => {
    const { q, done, time } = queue(10);
    for (let i = 0; i < 6; i++) q.push(`m${i}/1`, new Uint8Array(1));
    expect(q.queued).toBe(2);
    q.close();
    q.push('late/1', new Uint8Array(1));
    await q.drained();
    expect(done).toEqual(['m0/1', 'm1/1', 'm2/1', 'm3/1']);
    time.close();
  });
});
