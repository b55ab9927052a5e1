/**
 * A whole SRUP system in memory for the jest end-to-end flows: the SimWorld of test/portable/flow-world.ts (the
 * C2 engine and real device agents on one broker, sharing a ManualClock; a device keeps its stores, updater and
 * broker session, so a test can reboot one as the hardware would), with the vector set's keys (test/support/
 * c2-wire.ts), server SERVER_ID, a RecordingPresenter per device, xorshift randomness (seededRandom), and the
 * broker settling in Node event-loop turns.
 */
import type { RsaPrivateKey } from '../../crypto/types.js';
import { idTopicHex } from '../../modules/srup/bytes.js';
import { decode } from '../../modules/srup/codec.js';
import type { Message } from '../../modules/srup/schema.js';
import { C2_CLIENT, SimWorld, type DeviceSetup, type SimDevice } from '../portable/flow-world.js';
import { RecordingPresenter, seededRandom } from './fakes.js';
import { MemoryBroker } from './memory-broker.js';
import { SERVER_ID, testKeys, type Keys } from './c2-wire.js';

export { C2_CLIENT };

/** serverId (default SERVER_ID; null for a device that will get a join command), agent options, provision. */
export type DeviceOptions = Omit<DeviceSetup, 'flash'>;

export type Device = SimDevice<RecordingPresenter>;

export class World extends SimWorld<Keys, RecordingPresenter> {
  constructor() {
    super(testKeys(), {
      serverId: SERVER_ID,
      broker: new MemoryBroker(),
      presenter: () => new RecordingPresenter(),
      random: seededRandom,
      deviceSeed: (id, boots) => 100 + Number(id & 0xffffn) + boots,
    });
  }

  /** Straight into the registry: a device can be added before the engine starts. */
  protected override provision(id: bigint, key: RsaPrivateKey): void {
    this.registry.addDevice(id, key.publicKey, this.clock.now());
  }

  /** Messages the engine published, decoded, optionally only those to one device. */
  fromEngine(device?: bigint): Message[] {
    return this.broker.log
      .filter((p) => p.client === C2_CLIENT && (device === undefined || p.topic === `SRUP/${idTopicHex(device)}`))
      .map((p) => decode(p.payload));
  }
}
