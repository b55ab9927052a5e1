/**
 * The behaviour every Registry implementation (modules/c2/registry.ts) must have, as a reusable jest suite:
 * registryContract('MemoryRegistry', () => new MemoryRegistry()). Values must round-trip exactly (u64 ids and
 * sequence IDs up to 2^64-1, raw token bytes), reads return copies, and the audit log numbers entries 1, 2, 3...
 */
import type { RsaPublicKey } from '../../crypto/types.js';
import type { Registry } from '../../modules/c2/registry.js';
import { testKeys } from './c2-wire.js';

const U64_MAX = (1n << 64n) - 1n;

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

    test('a provisioned device has defaults; unknown ids read as null', () => {
      const d = reg.addDevice(A, keyA, 100);
      expect({ ...d, publicKey: null }).toEqual({
        id: A,
        publicKey: null,
        state: 'provisioned',
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
  });
}
