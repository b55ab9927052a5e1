/**
 * The behaviour every Registry implementation (modules/c2/registry.ts) must have, as a reusable jest suite:
 * registryContract('MemoryRegistry', () => new MemoryRegistry()). Values must round-trip exactly (u64 ids and
 * sequence IDs up to 2^64-1, raw token bytes), reads return copies, and the audit log numbers entries 1, 2, 3...
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parsePublicKeyPem } from '../../crypto/keys.js';
import type { RsaPublicKey } from '../../crypto/types.js';
import { READINGS_PER_DATA_ID, type Registry } from '../../modules/c2/registry.js';
import { testKeys } from './c2-wire.js';

const U64_MAX = (1n << 64n) - 1n;

/** The vector set's public keys, as the C2 application reads them from PEM files. */
const vectorPublicKey = (name: string): RsaPublicKey =>
  parsePublicKeyPem(readFileSync(join(__dirname, '..', 'data', 'srup-vectors', 'keys', `${name}.public.pem`), 'utf8'));

export function registryContract(name: string, make: () => Registry, cleanup: (r: Registry) => void = () => {}): void {
  describe(`Registry contract: ${name}`, () => {
    let reg: Registry;
    const keys = testKeys();
    const keyA: RsaPublicKey = keys.a.publicKey;
    const keyB: RsaPublicKey = keys.b.publicKey;
    const A = 0x0123456789abcdefn;
    const B = U64_MAX;
    const C = 1n;

    beforeEach(() => {
      reg = make();
    });
    afterEach(() => cleanup(reg));

    const sameKey = (k: RsaPublicKey, want: RsaPublicKey) => {
      expect([k.kind, k.n, k.e, k.size]).toEqual([want.kind, want.n, want.e, want.size]);
    };

    test('data history: readings in order per data id, the last READINGS_PER_DATA_ID of each kept, copies out, gone with the device', () => {
      reg.addDevice(A, keyA, 1);
      reg.addDevice(B, keyB, 1);
      for (let i = 0; i < READINGS_PER_DATA_ID + 5; i++) {
        reg.appendReading({ device: A, dataId: 'temperature', at: 1000 + i, token: Uint8Array.of(i & 255), data: Uint8Array.of(i & 255, 0, 0, 0) });
        if (i % 50 === 0) reg.appendReading({ device: A, dataId: 'label', at: 2000 + i, token: Uint8Array.of(1), data: Uint8Array.of(0x61 + i / 50) });
      }
      reg.appendReading({ device: B, dataId: 'temperature', at: 5, token: new Uint8Array(0), data: Uint8Array.of(9) });
      const t = reg.readings(A, 'temperature');
      expect(t).toHaveLength(READINGS_PER_DATA_ID);
      expect([t[0].at, t.at(-1)!.at]).toEqual([1005, 1000 + READINGS_PER_DATA_ID + 4]);
      expect(t[0].data).toEqual(Uint8Array.of(5, 0, 0, 0));
      for (let i = 1; i < t.length; i++) expect(t[i].seq).toBeGreaterThan(t[i - 1].seq);
      expect(reg.readings(A, 'label').map((x) => [x.dataId, x.at, x.data[0]])).toEqual([['label', 2000, 0x61], ['label', 2050, 0x62], ['label', 2100, 0x63]]);
      expect(reg.readings(A)).toHaveLength(READINGS_PER_DATA_ID + 3);
      expect(reg.readings(B).map((x) => [x.device, x.dataId, x.at])).toEqual([[B, 'temperature', 5]]);
      reg.readings(A, 'label')[0].data[0] = 0;
      expect(reg.readings(A, 'label')[0].data[0]).toBe(0x61);
      expect(reg.removeDevice(A)).toBe(true);
      expect(reg.readings(A)).toEqual([]);
      expect(reg.readings(B)).toHaveLength(1);
    });

    test('a provisioned device has defaults; unknown ids read as null', () => {
      const d = reg.addDevice(A, keyA, 100);
      expect({ ...d, publicKey: null }).toEqual({
        id: A,
        publicKey: null,
        state: 'provisioned',
        profile: 'srup',
        joinKind: null,
        joinToken: null,
        joinSecret: null,
        observerId: null,
        observationToken: null,
        lastSeen: null,
        identification: null,
        firmwareName: null,
        firmwareVersion: null,
        lastResponse: null,
        createdAt: 100,
        updatedAt: 100,
      });
      sameKey(d.publicKey, keyA);
      sameKey(reg.device(A)!.publicKey, keyA);
      expect(reg.device(B)).toBeNull();
    });

    test('every device field round-trips exactly, u64 ids included', () => {
      reg.addDevice(B, keyB, 1);
      const patch = {
        state: 'pending' as const,
        profile: 'reference' as const,
        joinKind: 'observed' as const,
        joinToken: Uint8Array.of(0, 1, 2, 255),
        joinSecret: '0123456789abcdef0123456789abcdef',
        observerId: U64_MAX - 1n,
        observationToken: Uint8Array.of(9, 8, 7),
        lastSeen: 1_700_000_000_123,
        identification: 'srup-esp32 1.4.2',
        firmwareName: 'srup-esp32',
        firmwareVersion: '1.4.2',
        lastResponse: { status: 0xff, token: Uint8Array.of(0xde, 0xad), at: 42 },
      };
      const out = reg.updateDevice(B, patch, 2);
      for (const d of [out, reg.device(B)!]) {
        expect({ ...d, publicKey: null }).toEqual({ ...patch, id: B, publicKey: null, createdAt: 1, updatedAt: 2 });
      }
      // Clearing back to null works too.
      const cleared = reg.updateDevice(B, { joinToken: null, observerId: null, lastResponse: null }, 3);
      expect([cleared.joinToken, cleared.observerId, cleared.lastResponse, cleared.joinSecret]).toEqual([null, null, null, patch.joinSecret]);
    });

    test('updating an unknown device throws and creates nothing', () => {
      expect(() => reg.updateDevice(A, { state: 'joined' }, 1)).toThrow();
      expect(reg.device(A)).toBeNull();
    });

    test('devices() is ordered by id and filters by state', () => {
      reg.addDevice(B, keyB, 1);
      reg.addDevice(A, keyA, 1);
      reg.addDevice(C, keyA, 1);
      reg.updateDevice(A, { state: 'joined' }, 2);
      expect(reg.devices().map((d) => d.id)).toEqual([C, A, B]);
      expect(reg.devices('joined').map((d) => d.id)).toEqual([A]);
      expect(reg.devices('resigned')).toEqual([]);
    });

    test('re-provisioning replaces the key and ends any join in progress', () => {
      reg.addDevice(A, keyA, 1);
      reg.updateDevice(A, { state: 'pending', joinKind: 'human', joinToken: Uint8Array.of(1), joinSecret: 'x' }, 2);
      const d = reg.addDevice(A, keyB, 3);
      expect([d.state, d.joinToken, d.joinSecret, d.updatedAt]).toEqual(['provisioned', null, null, 3]);
      sameKey(reg.device(A)!.publicKey, keyB);
      expect(reg.devices()).toHaveLength(1);
    });

    test('reads are copies: changing a returned record changes nothing stored', () => {
      reg.addDevice(A, keyA, 1);
      reg.updateDevice(A, { joinToken: Uint8Array.of(1, 2, 3) }, 2);
      const d = reg.device(A)!;
      d.joinToken!.fill(0);
      (d as { state: string }).state = 'joined';
      expect(reg.device(A)!.joinToken).toEqual(Uint8Array.of(1, 2, 3));
      expect(reg.device(A)!.state).toBe('provisioned');
    });

    test('sequence counters start at 0, move independently, hold u64 values, and can be forgotten', () => {
      expect(reg.sequence(A)).toEqual({ lastSent: 0n, lastAccepted: 0n });
      reg.setLastSent(A, 5n);
      expect(reg.sequence(A)).toEqual({ lastSent: 5n, lastAccepted: 0n });
      reg.setLastAccepted(A, U64_MAX);
      expect(reg.sequence(A)).toEqual({ lastSent: 5n, lastAccepted: U64_MAX });
      reg.setLastSent(A, 1n << 63n);
      expect(reg.sequence(A)).toEqual({ lastSent: 1n << 63n, lastAccepted: U64_MAX });
      expect(reg.sequence(B)).toEqual({ lastSent: 0n, lastAccepted: 0n });
      reg.forgetSequence(A);
      expect(reg.sequence(A)).toEqual({ lastSent: 0n, lastAccepted: 0n });
    });

    test('allocateSequence: max(lastSent, lastAccepted) + 1, stored as lastSent at once', () => {
      expect(reg.allocateSequence(A)).toBe(1n);
      expect(reg.allocateSequence(A)).toBe(2n);
      expect(reg.sequence(A)).toEqual({ lastSent: 2n, lastAccepted: 0n });
      reg.setLastAccepted(A, 10n);
      expect(reg.allocateSequence(A)).toBe(11n);
      expect(reg.sequence(A)).toEqual({ lastSent: 11n, lastAccepted: 10n });
      reg.setLastSent(B, U64_MAX - 1n);
      expect(reg.allocateSequence(B)).toBe(U64_MAX);
      expect(reg.sequence(C)).toEqual({ lastSent: 0n, lastAccepted: 0n });
    });

    test('setLastAccepted refuses an ID accepted already and never moves back; a window registry takes older unseen IDs', () => {
      const reason = (f: () => void): unknown => {
        try {
          f();
        } catch (e) {
          return (e as { reason?: unknown }).reason;
        }
        return null;
      };
      reg.setLastAccepted(A, 7n);
      expect(reason(() => reg.setLastAccepted(A, 7n))).toBe('already_accepted');
      expect(reg.sequence(A)).toEqual({ lastSent: 0n, lastAccepted: 7n });
      if (reg.replayFloor === undefined) {
        // One server: each message newer than every one before.
        expect([reason(() => reg.setLastAccepted(A, 6n)), reason(() => reg.setLastAccepted(A, 0n))]).toEqual(['already_accepted', 'already_accepted']);
      } else {
        // Several nodes: an older ID not seen yet is taken once; the floor trails the newest by the window.
        expect(reg.replayFloor(A)).toBe(0n);
        expect(reason(() => reg.setLastAccepted(A, 6n))).toBeNull();
        expect(reason(() => reg.setLastAccepted(A, 6n))).toBe('already_accepted');
        expect(reg.sequence(A).lastAccepted).toBe(7n);
        reg.setLastAccepted(A, 100n);
        expect(reg.replayFloor(A)).toBe(36n);
        expect(reg.allocateSequence(A)).toBe(101n);
      }
      reg.setLastAccepted(A, 1000n);
      expect(reg.sequence(A).lastAccepted).toBe(1000n);
      reg.forgetSequence(A);
      expect(reg.sequence(A)).toEqual({ lastSent: 0n, lastAccepted: 0n });
      reg.setLastAccepted(A, 1n);
      expect(reg.sequence(A).lastAccepted).toBe(1n);
    });

    test('group: runs now, its writes are read back at once, resolves with its value; a throw rejects', async () => {
      let ran = false;
      const p = reg.group(() => {
        ran = true;
        reg.addDevice(A, keyA, 1);
        return reg.allocateSequence(A);
      });
      expect(ran).toBe(true);
      expect(reg.device(A)?.state).toBe('provisioned');
      expect(reg.sequence(A).lastSent).toBe(1n);
      await expect(p).resolves.toBe(1n);
      const q = [reg.group(() => reg.allocateSequence(A)), reg.group(() => reg.allocateSequence(A)), reg.group(() => reg.allocateSequence(B))];
      await expect(Promise.all(q)).resolves.toEqual([2n, 3n, 1n]);
      await expect(reg.group(() => { throw new RangeError('refused'); })).rejects.toThrow('refused');
      expect(reg.sequence(A)).toEqual({ lastSent: 3n, lastAccepted: 0n });
    });

    test('updates: added as initiated, listed oldest first, patched, unknown tokens refused', () => {
      reg.addDevice(A, keyA, 1);
      reg.addDevice(B, keyB, 1);
      const t1 = 'e7074345-ff94-4a57-af0a-fde4a8fe4535';
      const t2 = '00000000-0000-4000-8000-000000000000';
      const t3 = 'ffffffff-ffff-4fff-bfff-ffffffffffff';
      const u1 = reg.addUpdate({ token: t1, device: A, url: 'https://h/f1', digest: 'ab'.repeat(32) }, 10);
      expect(u1).toEqual({
        token: t1,
        device: A,
        url: 'https://h/f1',
        digest: 'ab'.repeat(32),
        state: 'initiated',
        status: null,
        failure: null,
        createdAt: 10,
        updatedAt: 10,
      });
      reg.addUpdate({ token: t2, device: B, url: 'https://h/f2', digest: 'cd'.repeat(32) }, 11);
      reg.addUpdate({ token: t3, device: A, url: 'https://h/f3', digest: 'ef'.repeat(32) }, 12);
      expect(() => reg.addUpdate({ token: t1, device: B, url: 'x', digest: 'y' }, 13)).toThrow();
      expect(reg.updates().map((u) => u.token)).toEqual([t1, t2, t3]);
      expect(reg.updates(A).map((u) => u.token)).toEqual([t1, t3]);
      expect(reg.updates(C)).toEqual([]);

      const s = reg.setUpdate(t1, { state: 'staged', status: 0 }, 20);
      expect([s.state, s.status, s.failure, s.updatedAt, s.createdAt]).toEqual(['staged', 0, null, 20, 10]);
      reg.setUpdate(t1, { state: 'failed', status: null, failure: 'activate_timeout' }, 21);
      expect(reg.update(t1)).toMatchObject({ state: 'failed', status: null, failure: 'activate_timeout', updatedAt: 21 });
      reg.setUpdate(t1, { state: 'confirmed', status: 0x10, failure: null }, 22);
      expect(reg.update(t1)).toMatchObject({ state: 'confirmed', status: 0x10, failure: null });
      expect(() => reg.setUpdate('no-such-token', { state: 'failed' }, 23)).toThrow();
      expect(reg.update('no-such-token')).toBeNull();
    });

    test('removeDevice forgets the device, its counters and its updates', () => {
      reg.addDevice(A, keyA, 1);
      reg.addDevice(B, keyB, 1);
      reg.setLastSent(A, 3n);
      reg.addUpdate({ token: 'ta', device: A, url: 'u', digest: 'd' }, 2);
      reg.addUpdate({ token: 'tb', device: B, url: 'u', digest: 'd' }, 2);
      expect(reg.removeDevice(A)).toBe(true);
      expect(reg.removeDevice(A)).toBe(false);
      expect(reg.device(A)).toBeNull();
      expect(reg.sequence(A)).toEqual({ lastSent: 0n, lastAccepted: 0n });
      expect(reg.updates().map((u) => u.token)).toEqual(['tb']);
    });

    test('markSeen sets lastSeen, updatedAt and (when given) lastResponse, and nothing else; unknown ids change nothing', async () => {
      reg.addDevice(A, keyA, 1);
      const before = reg.updateDevice(A, { state: 'joined', identification: 'x 1', lastResponse: { status: 0x20, token: Uint8Array.of(1), at: 2 } }, 2);
      reg.markSeen(A, 5, null);
      expect(reg.device(A)).toEqual({ ...before, lastSeen: 5, updatedAt: 5 });
      const token = Uint8Array.of(7, 0, 7);
      await reg.group(() => reg.markSeen(A, 6, { status: 0x2f, token, at: 6 }));
      token.fill(0);
      expect(reg.device(A)).toEqual({ ...before, lastSeen: 6, updatedAt: 6, lastResponse: { status: 0x2f, token: Uint8Array.of(7, 0, 7), at: 6 } });
      reg.markSeen(B, 7, null);
      expect(reg.device(B)).toBeNull();
      expect(reg.devices().map((d) => d.id)).toEqual([A]);
    });

    test('recordAudit appends as appendAudit does, in a group or not', async () => {
      const e1 = reg.appendAudit({ at: 1, direction: 'out', device: A, type: 'action', sequenceId: 1n, token: Uint8Array.of(0x61), status: null, bytes: Uint8Array.of(5, 4, 0) });
      const bytes = Uint8Array.of(5, 2);
      reg.recordAudit({ at: 2, direction: 'in', device: B, type: 'response', sequenceId: U64_MAX, token: new Uint8Array(0), status: 0x20, bytes });
      await reg.group(() => reg.recordAudit({ at: 3, direction: 'out', device: A, type: 'id_request', sequenceId: 2n, token: Uint8Array.of(0), status: null, bytes: Uint8Array.of(6) }));
      bytes.fill(0);
      expect(reg.audit()).toEqual([
        e1,
        { seq: 2, at: 2, direction: 'in', device: B, type: 'response', sequenceId: U64_MAX, token: new Uint8Array(0), status: 0x20, bytes: Uint8Array.of(5, 2) },
        { seq: 3, at: 3, direction: 'out', device: A, type: 'id_request', sequenceId: 2n, token: Uint8Array.of(0), status: null, bytes: Uint8Array.of(6) },
      ]);
    });

    test('removeDevice with keepCounters forgets the device but keeps its counters', () => {
      reg.addDevice(A, keyA, 1);
      reg.setLastSent(A, 3n);
      reg.setLastAccepted(A, 5n);
      reg.addUpdate({ token: 'ta', device: A, url: 'u', digest: 'd' }, 2);
      expect(reg.removeDevice(A, { keepCounters: true })).toBe(true);
      expect(reg.device(A)).toBeNull();
      expect(reg.updates()).toEqual([]);
      expect(reg.sequence(A)).toEqual({ lastSent: 3n, lastAccepted: 5n });
      reg.addDevice(A, keyA, 3);
      expect(reg.allocateSequence(A)).toBe(6n);
    });

    test('audit log: numbered in order, exact bytes, queries by device, after and limit', () => {
      const e1 = reg.appendAudit({ at: 1, direction: 'out', device: A, type: 'action', sequenceId: 1n, token: Uint8Array.of(0x61), status: null, bytes: Uint8Array.of(5, 4, 0) });
      const e2 = reg.appendAudit({ at: 2, direction: 'in', device: B, type: 'response', sequenceId: U64_MAX, token: new Uint8Array(0), status: 0x20, bytes: Uint8Array.of(5, 2) });
      const e3 = reg.appendAudit({ at: 3, direction: 'in', device: A, type: 'response', sequenceId: 2n, token: Uint8Array.of(0), status: 0, bytes: Uint8Array.of(5, 2, 0) });
      expect([e1.seq, e2.seq, e3.seq]).toEqual([1, 2, 3]);
      expect(reg.audit()).toEqual([e1, e2, e3]);
      expect(reg.audit()[1]).toEqual({ seq: 2, at: 2, direction: 'in', device: B, type: 'response', sequenceId: U64_MAX, token: new Uint8Array(0), status: 0x20, bytes: Uint8Array.of(5, 2) });
      expect(reg.audit({ device: A }).map((e) => e.seq)).toEqual([1, 3]);
      expect(reg.audit({ after: 1 }).map((e) => e.seq)).toEqual([2, 3]);
      expect(reg.audit({ limit: 2 }).map((e) => e.seq)).toEqual([1, 2]);
      expect(reg.audit({ device: A, after: 1, limit: 5 }).map((e) => e.seq)).toEqual([3]);
      reg.audit()[0].bytes.fill(9);
      expect(reg.audit()[0].bytes).toEqual(Uint8Array.of(5, 4, 0));
    });

    describe('as the C2 application uses it', () => {
      const KEY1 = vectorPublicKey('signer-1');
      const KEY2 = vectorPublicKey('signer-2');
      const BIG = 0xfedcba9876543210n;
      const SMALL = 0x0000000000000042n;
      const MAX = 0xffffffffffffffffn;

      test('a new device is provisioned with no join, and unknown ids read as null', () => {
        const r = reg;
        expect(r.device(BIG)).toBeNull();
        const d = r.addDevice(BIG, KEY1, 1000);
        expect(d).toEqual({
          id: BIG,
          publicKey: KEY1,
          state: 'provisioned',
          profile: 'srup',
          joinKind: null,
          joinToken: null,
          joinSecret: null,
          observerId: null,
          observationToken: null,
          lastSeen: null,
          identification: null,
          firmwareName: null,
          firmwareVersion: null,
          lastResponse: null,
          createdAt: 1000,
          updatedAt: 1000,
        });
        expect(r.device(BIG)).toEqual(d);
        expect(r.device(BIG)!.publicKey.n).toBe(KEY1.n);
      });

      test('devices are listed in id order across the whole u64 range, filtered by state', () => {
        const r = reg;
        r.addDevice(MAX, KEY1, 1);
        r.addDevice(SMALL, KEY1, 2);
        r.addDevice(BIG, KEY2, 3);
        r.updateDevice(BIG, { state: 'joined' }, 4);
        expect(r.devices().map((d) => d.id)).toEqual([SMALL, BIG, MAX]);
        expect(r.devices('joined').map((d) => d.id)).toEqual([BIG]);
        expect(r.devices('provisioned').map((d) => d.id)).toEqual([SMALL, MAX]);
        expect(r.devices('refused')).toEqual([]);
      });

      test('updateDevice changes only the given fields and keeps id and createdAt', () => {
        const r = reg;
        r.addDevice(BIG, KEY1, 10);
        const token = new Uint8Array([1, 2, 3]);
        const d = r.updateDevice(
          BIG,
          {
            state: 'pending',
            joinKind: 'human',
            joinToken: token,
            joinSecret: '0123456789abcdef0123456789abcdef',
            observerId: SMALL,
            observationToken: new Uint8Array([9]),
            lastSeen: 20,
            lastResponse: { status: 0x50, token: new Uint8Array([7, 7]), at: 21 },
          },
          22,
        );
        expect(d.state).toBe('pending');
        expect(d.joinKind).toBe('human');
        expect(d.joinToken).toEqual(token);
        expect(d.observerId).toBe(SMALL);
        expect(d.lastResponse).toEqual({ status: 0x50, token: new Uint8Array([7, 7]), at: 21 });
        expect(d.createdAt).toBe(10);
        expect(d.updatedAt).toBe(22);
        const e = r.updateDevice(BIG, { identification: 'srup-agent 1.2.3', firmwareName: 'srup-agent', firmwareVersion: '1.2.3' }, 30);
        expect(e.joinSecret).toBe('0123456789abcdef0123456789abcdef');
        expect(e.firmwareVersion).toBe('1.2.3');
        const f = r.updateDevice(BIG, { joinToken: null, joinSecret: null, observerId: null, lastResponse: null }, 31);
        expect(f.joinToken).toBeNull();
        expect(f.joinSecret).toBeNull();
        expect(f.observerId).toBeNull();
        expect(f.lastResponse).toBeNull();
        expect(f.identification).toBe('srup-agent 1.2.3');
      });

      test('updating an unknown device throws unknown_device', () => {
        const r = reg;
        expect(() => r.updateDevice(BIG, { state: 'joined' }, 1)).toThrow(expect.objectContaining({ reason: 'unknown_device' }));
      });

      test('returned records are copies: changing them changes nothing stored', () => {
        const r = reg;
        r.addDevice(BIG, KEY1, 1);
        r.updateDevice(BIG, { joinToken: new Uint8Array([1, 2]) }, 2);
        const d = r.device(BIG)!;
        d.joinToken![0] = 99;
        expect(r.device(BIG)!.joinToken).toEqual(new Uint8Array([1, 2]));
        const a = r.appendAudit({ at: 1, direction: 'out', device: BIG, type: 'action', sequenceId: 1n, token: new Uint8Array([5]), status: null, bytes: new Uint8Array([6]) });
        a.token[0] = 0;
        expect(r.audit()[0].token).toEqual(new Uint8Array([5]));
      });

      test('re-registering a device replaces its key, resets its join and keeps its history fields', () => {
        const r = reg;
        r.addDevice(BIG, KEY1, 1);
        r.updateDevice(BIG, { state: 'joined', joinKind: 'simple', lastSeen: 5, identification: 'x 1', lastResponse: { status: 0, token: new Uint8Array([1]), at: 5 } }, 6);
        const d = r.addDevice(BIG, KEY2, 7);
        expect(d.publicKey).toEqual(KEY2);
        expect(d.state).toBe('provisioned');
        expect(d.joinKind).toBeNull();
        expect(d.lastSeen).toBe(5);
        expect(d.identification).toBe('x 1');
        expect(d.createdAt).toBe(1);
        expect(d.updatedAt).toBe(7);
      });

      test('sequence counters start at zero, are kept per peer, hold u64 values and are forgotten', () => {
        const r = reg;
        expect(r.sequence(BIG)).toEqual({ lastSent: 0n, lastAccepted: 0n });
        r.setLastSent(BIG, 5n);
        r.setLastAccepted(BIG, MAX);
        r.setLastAccepted(SMALL, 3n);
        expect(r.sequence(BIG)).toEqual({ lastSent: 5n, lastAccepted: MAX });
        expect(r.sequence(SMALL)).toEqual({ lastSent: 0n, lastAccepted: 3n });
        r.forgetSequence(BIG);
        expect(r.sequence(BIG)).toEqual({ lastSent: 0n, lastAccepted: 0n });
        expect(r.sequence(SMALL)).toEqual({ lastSent: 0n, lastAccepted: 3n });
      });

      test('updates: created initiated, patched, listed oldest first, duplicate and unknown tokens refused', () => {
        const r = reg;
        const u = r.addUpdate({ token: 't-1', device: BIG, url: 'http://h/a.bin', digest: 'ab'.repeat(32) }, 100);
        expect(u).toEqual({ token: 't-1', device: BIG, url: 'http://h/a.bin', digest: 'ab'.repeat(32), state: 'initiated', status: null, failure: null, createdAt: 100, updatedAt: 100 });
        r.addUpdate({ token: 't-0', device: SMALL, url: 'http://h/b.bin', digest: 'cd'.repeat(32) }, 101);
        r.addUpdate({ token: 't-2', device: BIG, url: 'http://h/c.bin', digest: 'ef'.repeat(32) }, 102);
        expect(() => r.addUpdate({ token: 't-1', device: BIG, url: 'u', digest: 'd' }, 103)).toThrow(expect.objectContaining({ reason: 'duplicate_token' }));
        expect(r.updates().map((x) => x.token)).toEqual(['t-1', 't-0', 't-2']);
        expect(r.updates(BIG).map((x) => x.token)).toEqual(['t-1', 't-2']);
        const s = r.setUpdate('t-1', { state: 'staged', status: 0 }, 110);
        expect(s).toMatchObject({ state: 'staged', status: 0, failure: null, updatedAt: 110, createdAt: 100 });
        const f = r.setUpdate('t-1', { state: 'failed', failure: 'activate_timeout' }, 120);
        expect(f).toMatchObject({ state: 'failed', status: 0, failure: 'activate_timeout' });
        expect(r.update('nope')).toBeNull();
        expect(() => r.setUpdate('nope', { state: 'failed' }, 1)).toThrow(expect.objectContaining({ reason: 'unknown_update' }));
      });

      test('removeDevice forgets the record, its counters and its updates but keeps the audit log', () => {
        const r = reg;
        r.addDevice(BIG, KEY1, 1);
        r.addDevice(SMALL, KEY1, 1);
        r.setLastSent(BIG, 4n);
        r.addUpdate({ token: 'a', device: BIG, url: 'u', digest: 'd' }, 2);
        r.addUpdate({ token: 'b', device: SMALL, url: 'u', digest: 'd' }, 2);
        r.appendAudit({ at: 3, direction: 'in', device: BIG, type: 'response', sequenceId: 2n, token: new Uint8Array(0), status: 0, bytes: new Uint8Array([1]) });
        expect(r.removeDevice(BIG)).toBe(true);
        expect(r.removeDevice(BIG)).toBe(false);
        expect(r.device(BIG)).toBeNull();
        expect(r.sequence(BIG)).toEqual({ lastSent: 0n, lastAccepted: 0n });
        expect(r.updates().map((u) => u.token)).toEqual(['b']);
        expect(r.audit()).toHaveLength(1);
      });

      test('the audit log numbers entries 1, 2, 3 and filters by device, after and limit', () => {
        const r = reg;
        const mk = (device: bigint, i: number) => ({
          at: i,
          direction: (i % 2 ? 'in' : 'out') as 'in' | 'out',
          device,
          type: i % 2 ? 'response' : 'initiate',
          sequenceId: BigInt(i) + 0xfffffffffffff000n,
          token: new Uint8Array([i]),
          status: i % 2 ? 0xff : null,
          bytes: new Uint8Array([i, i]),
        });
        const seqs = [];
        for (let i = 1; i <= 6; i++) seqs.push(r.appendAudit(mk(i <= 3 ? BIG : SMALL, i)).seq);
        expect(seqs).toEqual([1, 2, 3, 4, 5, 6]);
        expect(r.audit()[0]).toEqual({ ...mk(BIG, 1), seq: 1 });
        expect(r.audit({ device: SMALL }).map((e) => e.seq)).toEqual([4, 5, 6]);
        expect(r.audit({ after: 2, limit: 2 }).map((e) => e.seq)).toEqual([3, 4]);
        expect(r.audit({ device: BIG, after: 1 }).map((e) => e.seq)).toEqual([2, 3]);
        expect(r.audit({ after: 6 })).toEqual([]);
      });
    });
  });
}
