/**
 * The audit log and what devices may send: bounded summaries of large messages, retention by age and size, and
 * per-device rate limits on unasked messages.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AUDIT_MAX_BYTES } from '../modules/c2/engine.js';
import { utf8 } from '../modules/srup/bytes.js';
import { deviceTopic } from '../modules/srup/topics.js';
import { SqliteRegistry } from '../hosts/node/sqlite-registry.js';
import { DEV_A, DEV_B, deviceMessage, startRig } from './support/c2-wire.js';

const data = (key: Parameters<typeof deviceMessage>[0], id: bigint, seq: bigint, size: number, token = `t${seq}`) =>
  deviceMessage(key, 'data', id, seq, token, { dataId: utf8('blob'), data: new Uint8Array(size).fill(0x41) });

describe('audit summaries', () => {
  test('a message up to 1 KiB is kept whole; of a 60 KB one only its first 1 KiB', async () => {
    const r = await startRig({}, (rig) => rig.provision(DEV_A, 'joined'));
    const small = data(r.keys.a, DEV_A, 1n, 100);
    const big = data(r.keys.a, DEV_A, 2n, 60 * 1024);
    await r.inject(deviceTopic(DEV_A), small);
    await r.inject(deviceTopic(DEV_A), big);
    expect(r.eventsOf('data').map((e) => e.data.length)).toEqual([100, 60 * 1024]);
    const audit = r.registry.audit({ device: DEV_A });
    expect(audit.map((a) => a.bytes.length)).toEqual([small.length, AUDIT_MAX_BYTES]);
    expect(audit[0].bytes).toEqual(small);
    expect(audit[1].bytes).toEqual(big.subarray(0, AUDIT_MAX_BYTES));
  });
});

describe('per-device rate limits', () => {
  test('past its burst a device\'s unasked messages are dropped before RSA until its allowance refills; others are not affected', async () => {
    const r = await startRig({ deviceRate: { burst: 5, perSecond: 2 } }, (rig) => {
      rig.provision(DEV_A, 'joined');
      rig.provision(DEV_B, 'joined');
    });
    for (let i = 1n; i <= 7n; i++) await r.inject(deviceTopic(DEV_A), data(r.keys.a, DEV_A, i, 4));
    expect(r.eventsOf('data')).toHaveLength(5);
    expect(r.eventsOf('rejected').map((e) => [e.reason, e.sender])).toEqual([['rate_limited', DEV_A], ['rate_limited', DEV_A]]);
    // The dropped ones changed nothing: their sequence IDs can still be used.
    expect(r.registry.sequence(DEV_A).lastAccepted).toBe(5n);
    await r.inject(deviceTopic(DEV_B), data(r.keys.b, DEV_B, 1n, 4));
    expect(r.eventsOf('data')).toHaveLength(6);
    r.clock.advance(1000); // two more
    for (let i = 8n; i <= 10n; i++) await r.inject(deviceTopic(DEV_A), data(r.keys.a, DEV_A, i, 4));
    expect(r.eventsOf('data').filter((e) => e.device === DEV_A)).toHaveLength(7);
    expect(r.log.events('rejected').filter((l) => l.detail?.reason === 'rate_limited')).toHaveLength(1); // one line a minute
  });

  test('forgeries in a device\'s name do not use up its allowance', async () => {
    const r = await startRig({ deviceRate: { burst: 3, perSecond: 1 } }, (rig) => rig.provision(DEV_A, 'joined'));
    for (let i = 1n; i <= 10n; i++) await r.inject(deviceTopic(DEV_A), data(r.keys.b, DEV_A, i, 4));
    expect(r.eventsOf('rejected').map((e) => e.reason)).toEqual(Array(10).fill('bad_signature'));
    await r.inject(deviceTopic(DEV_A), data(r.keys.a, DEV_A, 1n, 4));
    expect(r.eventsOf('data')).toHaveLength(1);
  });
});

describe('audit retention (SQLite registry)', () => {
  test('entries older than the age limit go, then the oldest until the rest fit the size limit', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2-audit-'));
    const reg = new SqliteRegistry(path.join(dir, 'c2.db'));
    try {
      for (let i = 1; i <= 10; i++) {
        reg.appendAudit({ at: i * 1000, direction: 'in', device: 0x12n, type: 'data', sequenceId: BigInt(i), token: new Uint8Array(0), status: null, bytes: new Uint8Array(100) });
      }
      expect(reg.pruneAudit(3000, 1e9)).toBe(2); // at 1000 and 2000
      expect(reg.audit().map((a) => a.seq)).toEqual([3, 4, 5, 6, 7, 8, 9, 10]);
      expect(reg.pruneAudit(0, 450)).toBe(4); // the newest four hold 400 bytes
      expect(reg.audit().map((a) => a.seq)).toEqual([7, 8, 9, 10]);
      expect(reg.pruneAudit(0, 450)).toBe(0);
    } finally {
      reg.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the broker delivering again', () => {
  test('a message delivered twice is refused as a replay at info level, not as a warning', async () => {
    const r = await startRig({}, (rig) => rig.provision(DEV_A, 'joined'));
    const m = data(r.keys.a, DEV_A, 1n, 4);
    await r.inject(deviceTopic(DEV_A), m);
    await r.inject(deviceTopic(DEV_A), m);
    expect(r.log.events('rejected').map((l) => [l.level, l.detail.reason])).toEqual([['info', 'replay']]);
  });
});
