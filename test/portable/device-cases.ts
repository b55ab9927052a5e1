/**
 * The device API (modules/device) against the C2 engine over the in-memory broker, on any engine: readiness,
 * action handlers by id (sync, async, false, throw, none), typed data handlers, sendData with its kinds, the
 * bounded offline queue, the ID response from the application's name and version, rejected messages as events.
 */
import { pureCrypto } from '../../crypto/pure.js';
import { MemoryKeyStore, MemorySequenceStore } from '../../modules/agent/memory.js';
import { AgentError, Device, defaultDataKind, type DeviceEvent } from '../../modules/device/device.js';
import { toHex } from '../../modules/srup/bytes.js';
import { decodeData } from '../../modules/srup/data.js';
import { Status } from '../../modules/srup/schema.js';
import { deviceTopic } from '../../modules/srup/topics.js';
import { CollectingLog, fakeHost } from './fakes.js';
import { DEVICE, FlowWorld, SERVER, type FlowKeys } from './flow-world.js';
import { type AsyncCase, deepEqual, equal, fail, throwsReason } from './harness.js';
import type { MemoryTransport } from './broker.js';

interface Rig {
  w: FlowWorld;
  device: Device;
  transport: MemoryTransport;
  events: DeviceEvent[];
  log: CollectingLog;
  settle(): Promise<void>;
}

async function rig(keys: FlowKeys, options: { join?: 'simple' | 'none'; joined?: boolean; queueLimit?: number } = {}): Promise<Rig> {
  const w = new FlowWorld(keys);
  await w.start();
  w.engine.provision(DEVICE, keys.device.publicKey);
  const transport = w.broker.client('SRUP Client: device-api');
  const log = new CollectingLog();
  const events: DeviceEvent[] = [];
  const seqs = new MemorySequenceStore();
  const device = new Device(
    fakeHost({
      transport,
      keys: new MemoryKeyStore({ deviceId: DEVICE, privateKey: keys.device, serverId: SERVER, peers: [[SERVER, keys.server.publicKey]] }),
      sequences: seqs,
      crypto: pureCrypto,
      log: log.log,
    }),
    { name: 'greenhouse', version: '2.1.0', join: options.join ?? 'simple', queueLimit: options.queueLimit, onEvent: (e) => events.push(e) },
  );
  const settle = async (): Promise<void> => {
    for (let i = 0; i < 20; i++) {
      await w.broker.settle();
      await w.engine.idle();
      await device.agent.idle();
      await w.broker.settle();
      if (!w.broker.busy) return;
    }
  };
  return { w, device, transport, events, log, settle };
}

async function during<T>(r: Rig, p: Promise<T>): Promise<T> {
  let done = false;
  const q = p.finally(() => {
    done = true;
  });
  for (let i = 0; i < 20 && !done; i++) await r.settle();
  if (!done) fail('never settled');
  return q;
}

export function deviceCases(k: () => FlowKeys, label: string): AsyncCase[] {
  return [
    {
      name: `device API: start() joins a new device and resolves when ready; actions by id answer 0x20 / 0x2F / 0x2E [${label}]`,
      async run() {
        const r = await rig(k());
        const ran: string[] = [];
        r.device
          .onAction(1, () => void ran.push('sync'))
          .onAction(2, async () => {
            ran.push('async');
            return true;
          })
          .onAction(3, () => false)
          .onAction(4, () => {
            throw new Error('relay stuck');
          });
        equal(r.device.ready, false, 'not ready before start');
        await during(r, r.device.start());
        equal(r.device.ready, true, 'ready');
        deepEqual(r.events.map((e) => e.type), ['connected', 'join_requested', 'joined', 'ready'], 'events up to ready');
        equal(r.w.engine.device(DEVICE)?.state, 'joined', 'joined as the server sees it');
        const statuses: (number | null)[] = [];
        for (const id of [1, 2, 3, 4, 5]) statuses.push(await during(r, r.w.engine.sendAction(DEVICE, id)));
        deepEqual(statuses, [Status.ACTION_SUCCESS, Status.ACTION_SUCCESS, Status.ACTION_FAIL, Status.ACTION_FAIL, Status.ACTION_UNKNOWN], 'statuses');
        deepEqual(ran, ['sync', 'async'], 'handlers that ran');
        // A handler registered later is found by the next command.
        r.device.onAction(5, () => true);
        equal(await during(r, r.w.engine.sendAction(DEVICE, 5)), Status.ACTION_SUCCESS, 'late handler');
        equal(await during(r, r.w.engine.requestId(DEVICE)), 'greenhouse 2.1.0', 'ID response from name and version');
        throwsReason(() => r.device.onAction(256, () => true), AgentError, 'bad_argument', 'action id 256');
      },
    },
    {
      name: `device API: typed data handlers get decoded values; a payload of the wrong size is an event, not a call [${label}]`,
      async run() {
        const r = await rig(k());
        const got: unknown[] = [];
        r.device
          .onData('setpoint', 'double', (v) => void got.push(v))
          .onData('mode', 'string', (v) => void got.push(v))
          .onData('count', 'int32', (v) => void got.push(v))
          .onData('blob', 'bytes', (v) => void got.push(toHex(v)));
        await during(r, r.device.start());
        await during(r, r.w.engine.sendData(DEVICE, 'setpoint', 'double', 21.25));
        await during(r, r.w.engine.sendData(DEVICE, 'mode', 'string', 'night'));
        await during(r, r.w.engine.sendData(DEVICE, 'count', 'int32', -7));
        await during(r, r.w.engine.sendData(DEVICE, 'blob', 'bytes', Uint8Array.of(1, 2, 255)));
        await during(r, r.w.engine.sendData(DEVICE, 'count', 'double', 1.5)); // 8 bytes for an int32 handler
        await during(r, r.w.engine.sendData(DEVICE, 'other', 'string', 'x'));
        deepEqual(got, [21.25, 'night', -7, '0102ff'], 'values');
        deepEqual(r.events.filter((e) => e.type === 'bad_data'), [{ type: 'bad_data', dataId: 'count', kind: 'int32', length: 8 }], 'bad data');
        deepEqual(r.log.events('data_ignored').map((l) => l.detail?.dataId), ['other'], 'other data id');
      },
    },
    {
      name: `device API: sendData signs and sequences readings, kinds from the values; the C2 gets exactly the values [${label}]`,
      async run() {
        const r = await rig(k());
        await during(r, r.device.start());
        await during(r, r.device.sendData('temperature', 21.5));
        await during(r, r.device.sendData('humidity', 40));
        await during(r, r.device.sendData('label', 'bench'));
        await during(r, r.device.sendData('raw', Uint8Array.of(9, 8)));
        await during(r, r.device.sendData('level', 3, 'uint8'));
        const data = r.w.eventsOf('data').filter((e) => e.device === DEVICE);
        deepEqual(
          data.map((e) => [e.dataId, toHex(e.data)]),
          [
            ['temperature', toHex(Uint8Array.of(0, 0, 0, 0, 0, 0x80, 0x35, 0x40))],
            ['humidity', '28000000'],
            ['label', toHex(Uint8Array.of(0x62, 0x65, 0x6e, 0x63, 0x68))],
            ['raw', '0908'],
            ['level', '03'],
          ],
          'readings as the C2 received them',
        );
        equal(decodeData('double', data[0].data), 21.5, 'temperature decodes');
        deepEqual([defaultDataKind(1), defaultDataKind(2 ** 31), defaultDataKind(-1.5), defaultDataKind(5n)], ['int32', 'double', 'double', 'int64'], 'default kinds');
        deepEqual(r.w.log.rejections(), [], 'C2 rejections');
      },
    },
    {
      name: `device API: offline, readings wait (at most queueLimit) and go out after the reconnect; PUBACK resolves them [${label}]`,
      async run() {
        const r = await rig(k(), { queueLimit: 2 });
        await during(r, r.device.start());
        r.transport.disconnect('wifi lost');
        const settled: string[] = [];
        const a = r.device.sendData('t', 1).then(() => void settled.push('a'));
        const b = r.device.sendData('t', 2).then(() => void settled.push('b'));
        let refused = '';
        await r.device.sendData('t', 3).catch((e: unknown) => {
          refused = e instanceof AgentError ? e.reason : String(e);
        });
        equal(refused, 'queue_full', 'third reading while offline');
        equal(r.device.unsent, 2, 'waiting');
        await r.settle();
        deepEqual(settled, [], 'nothing taken while offline');
        r.transport.reconnect();
        await during(r, Promise.all([a, b]));
        deepEqual(settled, ['a', 'b'], 'taken after the reconnect, in order');
        deepEqual(r.w.eventsOf('data').map((e) => toHex(e.data)), ['01000000', '02000000'], 'C2 got both, in order');
        equal(r.device.unsent, 0, 'nothing waiting');
      },
    },
    {
      name: `device API: a forged message is a 'rejected' event; a device with no server rejects start() with no_server [${label}]`,
      async run() {
        const r = await rig(k(), { join: 'none' });
        // Joined already as far as the device knows (join none): ready at the first connection.
        await during(r, r.device.start());
        r.w.broker.inject(deviceTopic(DEVICE), Uint8Array.of(5, 4, 3));
        await r.settle();
        deepEqual(r.events.filter((e) => e.type === 'rejected'), [{ type: 'rejected', reason: 'truncated' }], 'rejected event');
        const keys = k();
        const w2 = new FlowWorld(keys);
        await w2.start();
        const lonely = new Device(
          fakeHost({
            transport: w2.broker.client('lonely'),
            keys: new MemoryKeyStore({ deviceId: DEVICE, privateKey: keys.device, serverId: null }),
            sequences: new MemorySequenceStore(),
            crypto: pureCrypto,
          }),
          { name: 'a', version: '1' },
        );
        let reason = '';
        const started = lonely.start().catch((e: unknown) => {
          reason = e instanceof AgentError ? e.reason : String(e);
        });
        await w2.broker.settle();
        await started;
        equal(reason, 'no_server', 'start() of a device without a server');
        throwsReason(() => new Device(fakeHost({ transport: w2.broker.client('x'), keys: new MemoryKeyStore({ deviceId: 1n, privateKey: keys.device }), sequences: new MemorySequenceStore(), crypto: pureCrypto }), { name: '', version: '1' }), AgentError, 'bad_argument', 'empty name');
      },
    },
  ];
}
