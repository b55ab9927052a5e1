/**
 * The C2 application under hostile or careless load, on loopback with a private Mosquitto (the section is
 * skipped with a notice when Mosquitto is not installed):
 *
 *   auth flood       an authenticated API request made while 40 requests with wrong bearer tokens run in
 *                    parallel (median and worst of 5 rounds), next to the same request without the flood
 *   slow readers     the server's memory growth while 4 event-stream readers stop reading and a device sends
 *                    500 data messages of 60 KB (each one an event)
 *   audit            the database's growth per 1,500 data messages of 60 KB from one device
 *   forged flood     a genuine action's round trip (C2 -> device -> C2) behind 10,000 forged commands for the
 *                    device (the server's sender id, random sequence IDs and signatures): sent while the flood
 *                    streams in, and queued at the broker behind the whole flood while the device was offline
 *                    (timed from its reconnect); median of 3 rounds each, next to the same action without the
 *                    flood, and how many of the queued forgeries the device checked and how many it refused
 *                    unchecked (modules/srup/flood.ts)
 *
 * Self-contained (prints its rows):
 *   npx esbuild bench/c2-abuse.bench.ts --bundle --platform=node --format=esm --packages=external --outfile=.tmp/c2-abuse.bench.mjs && node .tmp/c2-abuse.bench.mjs
 */
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { randomBytes } from 'node:crypto';
import { encode } from '../modules/srup/codec.js';
import { deviceTopic } from '../modules/srup/topics.js';
import type { Log } from '../modules/srup/ports.js';
import { C2App } from '../tools/c2/app.js';
import { provisionVirtualDevice, VirtualDevice } from '../tools/c2/virtual.js';
import { findMosquitto, startMosquitto } from '../test/support/mosquitto.js';
import { emit, progress } from './lib.js';

const SECTION = 'c2-abuse';

function get(base: string, p: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get(new URL(p, base), { headers, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', () => resolve(0));
  });
}

const spread = (xs: number[]) => ({ min: Math.min(...xs), max: Math.max(...xs) });

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function dirBytes(dir: string, prefix: string): number {
  let n = 0;
  for (const f of fs.readdirSync(dir)) if (f.startsWith(prefix)) n += fs.statSync(path.join(dir, f)).size;
  return n;
}

async function main(): Promise<void> {
  if (!findMosquitto()) {
    progress(`${SECTION}: skipped (no mosquitto binary)`);
    return;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2-abuse-bench-'));
  const broker = await startMosquitto({ maxQueuedMessages: 100000 });
  // The device here is chatty on purpose: the rate limit is lifted so that every message is stored.
  const app = await C2App.start({ dataDir: path.join(dir, 'c2'), brokerUrl: broker.url, httpPort: 0, log: () => undefined, deviceRate: { burst: 1e9, perSecond: 1e9 } });
  const base = app.url;
  const cli = fs.readFileSync(path.join(dir, 'c2', 'cli-token'), 'utf8').trim();
  try {
    // ---- auth flood
    progress(`${SECTION}: authenticated request with and without 40 parallel wrong bearer tokens`);
    const calm: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      await get(base, '/api/devices', { Authorization: `Bearer ${cli}` });
      calm.push(performance.now() - t0);
    }
    const flooded: number[] = [];
    for (let round = 0; round < 5; round++) {
      const wrong = Array.from({ length: 40 }, (_, i) => get(base, '/api/devices', { Authorization: `Bearer wrong-${round}-${i}-${'x'.repeat(20)}` }));
      await new Promise((r) => setTimeout(r, 5));
      const t0 = performance.now();
      await get(base, '/api/devices', { Authorization: `Bearer ${cli}` });
      flooded.push(performance.now() - t0);
      await Promise.all(wrong);
    }
    emit({ section: SECTION, name: 'authenticated request, calm (median of 5)', value: median(calm), unit: 'ms', spread: spread(calm) });
    emit({ section: SECTION, name: 'authenticated request during 40 wrong tokens (median of 5)', value: median(flooded), unit: 'ms', spread: spread(flooded), target: '< 1000 ms (worst)', met: Math.max(...flooded) < 1000 });

    // ---- a device that sends data
    const p = provisionVirtualDevice(path.join(dir, 'device'), {
      brokerUrl: broker.url,
      serverId: app.identity.id,
      serverPublicPem: app.identity.publicPem,
      firmware: { name: 'bench', version: '1.0.0' },
    });
    app.addDevice(p.id, p.publicPem);
    const deviceEvents = { checked: 0, dropped: 0 };
    const deviceLog: Log = (_level, event, detail) => {
      if (event === 'rejected' && detail?.reason === 'bad_signature') deviceEvents.checked++;
      if (event === 'flood_shed') deviceEvents.dropped += Number(detail?.shed ?? 0);
    };
    let device = VirtualDevice.start(p.dir, { log: deviceLog });
    if ((await device.join('simple')) !== 'joined') throw new Error('the device did not join');

    // ---- forged flood
    progress(`${SECTION}: a genuine action behind 10,000 forged commands (live, and queued at the broker while the device was offline)`);
    const attacker = await mqtt.connectAsync(broker.url, { clientId: 'bench-forger', clean: true });
    const forged = (): Buffer => {
      const seq = randomBytes(8).readBigUInt64BE() | 1n;
      const bytes = encode({ type: 'action', sequenceId: seq, senderId: app.identity.id, token: randomBytes(18), signature: randomBytes(256), fields: { actionId: 1 } });
      return Buffer.from(bytes);
    };
    const answered = async (t0: number, status: Promise<number | null>) => {
      if ((await status) === null) throw new Error('the action was not answered');
      return performance.now() - t0;
    };
    /** Every forgery is either checked (and refused) or dropped; drops are reported at least every 10 s. */
    const settled = async (before: { checked: number; dropped: number }) => {
      const end = Date.now() + 60_000;
      while (deviceEvents.checked + deviceEvents.dropped - before.checked - before.dropped < 10_000 && Date.now() < end) {
        await new Promise((r) => setTimeout(r, 200));
      }
    };
    const flood = () => Array.from({ length: 10_000 }, () => attacker.publishAsync(deviceTopic(p.id), forged(), { qos: 1 }));
    /** The action is sent while the device is offline, behind `n` forgeries (or none), then the device comes back. */
    const offlineRound = async (withFlood: boolean) => {
      await device.close();
      if (withFlood) await Promise.all(flood());
      const status = app.action(p.id, 1);
      await new Promise((r) => setTimeout(r, 200)); // the broker has the action, behind the flood
      const t0 = performance.now();
      device = VirtualDevice.start(p.dir, { log: deviceLog });
      return answered(t0, status);
    };
    const calmLive: number[] = [];
    for (let i = 0; i < 5; i++) calmLive.push(await answered(performance.now(), app.action(p.id, 1)));
    const live: number[] = [];
    const calmOffline: number[] = [];
    const offline: number[] = [];
    const checks: number[] = [];
    const drops: number[] = [];
    for (let round = 0; round < 3; round++) {
      let before = { ...deviceEvents };
      const all = flood();
      await all[499]; // the broker has the first part of the flood; the action follows it
      live.push(await answered(performance.now(), app.action(p.id, 1)));
      await Promise.all(all);
      await settled(before);
      calmOffline.push(await offlineRound(false));
      before = { ...deviceEvents };
      offline.push(await offlineRound(true));
      await settled(before);
      checks.push(deviceEvents.checked - before.checked);
      drops.push(deviceEvents.dropped - before.dropped);
    }
    await attacker.endAsync();
    emit({ section: SECTION, name: 'genuine action round trip, calm (median of 5)', value: median(calmLive), unit: 'ms', spread: spread(calmLive) });
    emit({ section: SECTION, name: 'genuine action sent during a flood of 10,000 forged commands (median of 3)', value: median(live), unit: 'ms', spread: spread(live), target: '< 1000 ms (worst)', met: Math.max(...live) < 1000 });
    emit({ section: SECTION, name: 'genuine action queued while offline, from reconnect, calm (median of 3)', value: median(calmOffline), unit: 'ms', spread: spread(calmOffline) });
    emit({ section: SECTION, name: 'genuine action queued while offline behind 10,000 forged, from reconnect (median of 3)', value: median(offline), unit: 'ms', spread: spread(offline), target: '< 1000 ms (worst)', met: Math.max(...offline) < 1000 });
    emit({ section: SECTION, name: 'forged commands signature-checked by the device, of 10,000 queued (median of 3)', value: median(checks), unit: 'messages', spread: spread(checks) });
    emit({ section: SECTION, name: 'forged commands refused unchecked by the device (flood gate), of 10,000 queued (median of 3)', value: median(drops), unit: 'messages', spread: spread(drops) });

    const big = 'x'.repeat(60 * 1024);
    let dataEvents = 0;
    app.on((e) => {
      if (e.kind === 'c2' && (e.event.type === 'data' || e.event.type === 'identification')) dataEvents++;
    });
    const sendAll = async (n: number) => {
      const want = dataEvents + n;
      for (let i = 0; i < n; i++) await device.sendData('bench', big);
      const end = Date.now() + 120_000;
      while (dataEvents < want && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      return dataEvents >= want;
    };
    await sendAll(5);

    // ---- slow readers
    progress(`${SECTION}: 4 event-stream readers that stop reading, 500 data messages of 60 KB`);
    const sockets: net.Socket[] = [];
    const port = Number(new URL(base).port);
    for (let i = 0; i < 4; i++) {
      const s = net.connect(port, '127.0.0.1');
      s.write(`GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer ${cli}\r\n\r\n`);
      s.once('data', () => s.pause());
      sockets.push(s);
    }
    await new Promise((r) => setTimeout(r, 200));
    const rss0 = process.memoryUsage().rss;
    await sendAll(500);
    await new Promise((r) => setTimeout(r, 200));
    const rss1 = process.memoryUsage().rss;
    for (const s of sockets) s.destroy();
    emit({ section: SECTION, name: 'memory growth, 4 stalled readers, 500 × 60 KB data', value: (rss1 - rss0) / 1e6, unit: 'MB' });

    // ---- audit
    progress(`${SECTION}: database growth for 1,500 data messages of 60 KB`);
    const db0 = dirBytes(path.join(dir, 'c2'), 'c2.db');
    await sendAll(1500);
    const db1 = dirBytes(path.join(dir, 'c2'), 'c2.db');
    emit({ section: SECTION, name: 'database growth, 1,500 × 60 KB data', value: (db1 - db0) / 1e6, unit: 'MB' });
    await device.close();
  } finally {
    await app.stop();
    await broker.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
