/**
 * The simulator's random bytes: the SDK's `rng` is an unseeded generator on Linux, the same bytes every run.
 * Good enough for AES IVs and nonces in a simulation; the simulator never makes keys (they come from
 * `srup provision`).
 */
import RNG from 'rng';

export function randomBytes(n: number): Uint8Array {
  return new Uint8Array(RNG.get(n));
}
