/**
 * A large registered fleet, made fast (one transaction, no RSA work per device), for the fleet tests, the
 * browser tests and the benchmarks: device i has a predictable id, label, firmware, tags, state and last-seen
 * time, so that a test can compute what a search must answer.
 *
 *   registerFleet(app, 10_000, { now: Date.now() });
 */
import type { C2App } from '../../tools/c2/app.js';
import type { DeviceState } from '../../modules/c2/registry.js';

/** The id of fleet device i: spread over the u64 range, 16 hex digits when printed. */
export function fleetId(i: number): bigint {
  return 0x4000000000000000n + BigInt(i) * 7919n;
}

export interface FleetDevice {
  id: bigint;
  label: string;
  firmwareVersion: string;
  tags: string[];
  state: DeviceState;
  /** ms before `now` it was last heard from (null: never). */
  silentFor: number | null;
}

/**
 * What device i is: label "sensor-<i>" (every 10th "pump-<i>"); firmware 1.0.<i mod 5>; tags "site-<i mod 4>"
 * and, for every 3rd, "critical"; state 'joined' but every 7th 'provisioned'; heard from i seconds before
 * `now` (every 11th never).
 */
export function fleetDevice(i: number): FleetDevice {
  return {
    id: fleetId(i),
    label: i % 10 === 0 ? `pump-${i}` : `sensor-${i}`,
    firmwareVersion: `1.0.${i % 5}`,
    tags: i % 3 === 0 ? ['critical', `site-${i % 4}`] : [`site-${i % 4}`],
    state: i % 7 === 0 ? 'provisioned' : 'joined',
    silentFor: i % 11 === 0 ? null : i * 1000,
  };
}

/** Registers devices [from, from + n) of the fleet in one transaction (with the server's public key). */
export function registerFleet(app: C2App, n: number, o: { now: number; from?: number }): FleetDevice[] {
  const out: FleetDevice[] = [];
  const key = app.identity.publicKey;
  const from = o.from ?? 0;
  app.registry.transaction(() => {
    for (let i = from; i < from + n; i++) {
      const d = fleetDevice(i);
      app.registry.addDevice(d.id, key, o.now);
      app.registry.updateDevice(
        d.id,
        {
          state: d.state,
          joinKind: d.state === 'joined' ? 'simple' : null,
          firmwareName: 'srup-agent',
          firmwareVersion: d.firmwareVersion,
          lastSeen: d.silentFor === null ? null : o.now - d.silentFor,
        },
        o.now,
      );
      app.store.setDeviceMeta(d.id, { label: d.label, tags: d.tags });
      out.push(d);
    }
  });
  return out;
}
