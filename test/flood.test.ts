/**
 * Forged floods cost forged messages, never unbounded delay (modules/srup/flood.ts): while a side is behind, a
 * message far past the sequence ID expected next (a forger's random one) is refused without a signature check;
 * plausible ones are always checked. The signature check is made to cost what it costs on an ESP32 (the shared
 * manual clock moves 25 ms per verify), and the checks are counted.
 */
import type { Crypto } from '../crypto/types.js';
import { pureCrypto } from '../crypto/pure.js';
import { utf8 } from '../modules/srup/bytes.js';
import { BEHIND_MS, FloodGate, GAP_MS, LOG_EVERY_MS, PLAUSIBLE_STEPS } from '../modules/srup/flood.js';
import { deviceTopic } from '../modules/srup/topics.js';
import { CollectingLog, ManualClock } from './portable/fakes.js';
import { DEV_A, SERVER_ID, deviceMessage } from './support/c2-wire.js';
import { World } from './support/c2-world.js';

/** An ESP32-priced signature check: 25 ms of the world's clock each, counted. */
function slowCrypto(clock: ManualClock): Crypto & { verifies: number } {
  const c = { ...pureCrypto, verifies: 0 } as Crypto & { verifies: number };
  c.verify = (k, m, s) => {
    c.verifies++;
    clock.advance(25);
    return pureCrypto.verify(k, m, s);
  };
  return c;
}

/** A random 64-bit sequence ID from a fixed stream (a forger's guess). */
function randomSeqs(n: number): bigint[] {
  let x = 0x9e3779b97f4a7c15n;
  const out: bigint[] = [];
  for (let i = 0; i < n; i++) {
    x ^= (x << 13n) & 0xffffffffffffffffn;
    x ^= x >> 7n;
    x ^= (x << 17n) & 0xffffffffffffffffn;
    out.push(x | 1n << 62n); // far past anything a device has seen
  }
  return out;
}

/** An action that claims to be from the server, signed with the wrong key (a forgery). */
function forgedAction(w: World, seq: bigint): Uint8Array {
  return deviceMessage(w.keys.stranger, 'action', SERVER_ID, seq, 'forged', { actionId: 7 });
}

describe('FloodGate', () => {
  test('keeps up: no ceiling; behind after BEHIND_MS of back-to-back checks: a ceiling PLAUSIBLE_STEPS past the next', () => {
    const clock = new ManualClock(1000);
    const log = new CollectingLog();
    const g = new FloodGate(clock, log.log);
    g.begin();
    expect(g.ceiling(10n, 4n)).toBeNull();
    clock.advance(BEHIND_MS); // one long check
    g.end();
    g.begin(); // arrives at once: the run goes on, and has lasted BEHIND_MS
    expect(g.ceiling(10n, 4n)).toBe(10n + PLAUSIBLE_STEPS);
    expect(g.ceiling(3n, 40n)).toBe(40n + PLAUSIBLE_STEPS);
    g.end();
    clock.advance(GAP_MS + 1); // a pause: a new run, keeping up again
    g.begin();
    expect(g.ceiling(10n, 4n)).toBeNull();
    g.end();
  });

  test('a side with time to spare is not behind, however long its run of messages (a busy server with many devices)', () => {
    const clock = new ManualClock(1000);
    const g = new FloodGate(clock, new CollectingLog().log);
    let behind = 0;
    for (let i = 0; i < 1000; i++) {
      g.begin(); // a message every 5 ms, each checked in 2 ms: 40 % busy for 5 s
      if (g.behind) behind++;
      clock.advance(2);
      g.end();
      clock.advance(3);
    }
    expect(behind).toBe(0);
    // Then a flood: 3 ms checks 1 ms apart (75 % busy). Hours of steady traffic before do not hide it: behind
    // within two windows.
    let firstBehindAt = -1;
    for (let i = 0; i < 30; i++) {
      g.begin();
      if (g.behind && firstBehindAt < 0) firstBehindAt = i * 4;
      clock.advance(3);
      g.end();
      clock.advance(1);
    }
    expect(firstBehindAt).toBeGreaterThan(0);
    expect(firstBehindAt).toBeLessThanOrEqual(2 * BEHIND_MS);
    clock.advance(GAP_MS + 1); // a pause: keeping up again
    g.begin();
    expect(g.behind).toBe(false);
    g.end();
  });

  test('a window that refused forgeries keeps the side behind while they come, though refusing them is cheap', () => {
    const clock = new ManualClock(1000);
    const g = new FloodGate(clock, new CollectingLog().log);
    g.begin();
    clock.advance(25); // one ESP32-priced check
    g.end();
    let checked = 1;
    for (let i = 0; i < 1000; i++) {
      g.begin();
      if (g.behind) g.shed(); // refused after a header read: no time
      else {
        checked++;
        clock.advance(25);
      }
      g.end();
      clock.advance(1); // the next forgery is read from the socket
    }
    expect(checked).toBe(1);
  });

  test('refusals: the first logged at once, then a line every LOG_EVERY_MS while they go on, none after', () => {
    const clock = new ManualClock(1000);
    const log = new CollectingLog();
    const g = new FloodGate(clock, log.log);
    for (let i = 0; i < 500; i++) {
      g.begin();
      g.shed();
      clock.advance(i % 10 === 0 ? 300 : 1); // 15.5 s in all
      g.end();
    }
    expect(log.events('flood_shed').map((l) => l.detail)).toEqual([{ shed: 1, total: 1 }, expect.objectContaining({})]);
    clock.advance(LOG_EVERY_MS); // the rest of the count
    const all = log.events('flood_shed');
    expect(all).toHaveLength(3);
    expect(all.reduce((n, l) => n + Number(l.detail.shed), 0)).toBe(500);
    expect(all[2].detail.total).toBe(500);
    clock.advance(10 * LOG_EVERY_MS);
    expect(log.events('flood_shed')).toHaveLength(3); // nothing more to tell: no more lines, no timer left
    expect(clock.pending).toBe(0);
    expect(g.shedTotal).toBe(500);
  });

  test('close() tells the refusals not yet logged and leaves no timer (a device or server that stops mid-flood)', () => {
    const clock = new ManualClock(1000);
    const log = new CollectingLog();
    const g = new FloodGate(clock, log.log);
    for (let i = 0; i < 7; i++) g.shed();
    expect(clock.pending).toBe(1);
    g.close();
    expect(log.events('flood_shed').map((l) => l.detail)).toEqual([{ shed: 1, total: 1 }, { shed: 6, total: 7 }]);
    expect(clock.pending).toBe(0);
  });
});

/**
 * A world with DEV_A joined to the engine and a rogue client on the broker, idle for a second after the join; the
 * signature checks of `slow` (the device or the server) priced as on an ESP32 and counted.
 */
async function joinedWorld(slow: 'device' | 'server') {
  const w = new World();
  const crypto = slowCrypto(w.clock);
  if (slow === 'server') w.engineCrypto = crypto;
  await w.startEngine();
  const d = await w.addDevice(DEV_A, w.keys.a, slow === 'device' ? { crypto } : {});
  const joined = d.agent.join('simple');
  await w.settle();
  expect(await joined).toBe('joined');
  const rogue = w.broker.client('rogue');
  rogue.start();
  await w.settle();
  w.clock.advance(1000); // idle for a second: the join's own checks are over
  return { w, d, crypto, rogue };
}

describe('a flooded device', () => {
  const joinedDevice = () => joinedWorld('device');

  test('1,000 forgeries with random sequence IDs cost a few signature checks; the genuine command behind them is answered', async () => {
    const { w, d, crypto, rogue } = await joinedDevice();
    const before = crypto.verifies;
    for (const seq of randomSeqs(1000)) void rogue.publish(deviceTopic(DEV_A), forgedAction(w, seq));
    const answer = w.engine.sendAction(DEV_A, 3);
    await w.settle();
    expect(await answer).toBe(0x2e);
    // The first forgery (its 25 ms check makes the device behind) and the genuine command; the other 999 are shed.
    // Without the gate: 1,001 checks (25 s of an ESP32's time before the genuine one).
    expect(crypto.verifies - before).toBe(2);
    w.clock.advance(LOG_EVERY_MS); // the gate's last count
    const shed = d.log.events('flood_shed');
    expect(shed[shed.length - 1].detail.total).toBe(999);
    // The counters did not move for the forgeries: the next genuine command is accepted as well.
    expect(await Promise.all([w.engine.sendAction(DEV_A, 4), w.settle()]).then(([r]) => r)).toBe(0x2e);
  });

  test('plausible sequence IDs are never shed: each is checked (a burst of genuine commands is answered in full)', async () => {
    const { w, d, crypto, rogue } = await joinedDevice();
    const last = d.seqs.lastAccepted(SERVER_ID);
    const before = crypto.verifies;
    for (let i = 1n; i <= 50n; i++) void rogue.publish(deviceTopic(DEV_A), forgedAction(w, last + i * 1000n));
    await w.settle();
    expect(crypto.verifies - before).toBe(50);
    expect(d.log.events('flood_shed')).toEqual([]);
    expect(d.log.rejections().filter((r) => r === 'bad_signature')).toHaveLength(50);
    const answer = w.engine.sendAction(DEV_A, 3);
    await w.settle();
    expect(await answer).toBe(0x2e);
  });

  test('a device that keeps up checks a far sequence ID as before (only a flood sheds)', async () => {
    const { w, d, crypto, rogue } = await joinedDevice();
    const before = crypto.verifies;
    for (const seq of randomSeqs(3)) {
      void rogue.publish(deviceTopic(DEV_A), forgedAction(w, seq));
      await w.settle();
      w.clock.advance(1000); // one at a time, a second apart
    }
    expect(crypto.verifies - before).toBe(3);
    expect(d.log.rejections().filter((r) => r === 'bad_signature')).toHaveLength(3);
  });
});

describe('a flooded server', () => {
  test('1,000 forged data messages with random sequence IDs cost a few checks; the genuine answer behind them is taken', async () => {
    const { w, crypto, rogue } = await joinedWorld('server');
    const before = crypto.verifies;
    for (const seq of randomSeqs(1000)) {
      const forged = deviceMessage(w.keys.stranger, 'data', DEV_A, seq, 'forged', { dataId: utf8('t'), data: utf8('1') });
      void rogue.publish(deviceTopic(DEV_A), forged);
    }
    const answer = w.engine.sendAction(DEV_A, 3);
    await w.settle();
    expect(await answer).toBe(0x2e);
    expect(crypto.verifies - before).toBe(2); // the first forgery and the device's genuine answer
    w.clock.advance(LOG_EVERY_MS); // the gate's last count
    const shed = w.log.events('flood_shed');
    expect(shed[shed.length - 1].detail.total).toBe(999);
    expect(w.events.filter((e) => e.type === 'rejected' && e.reason === 'implausible')).toEqual([]);
  });
});
