/**
 * What the flows in join.ts and update.ts use of the engine (engine.ts implements it), in a file of its own so
 * that the flows and the engine do not import each other (as the agent's context.ts does for its flows).
 */
import type { FieldsOf, TypeName } from '../srup/schema.js';
import type { C2Event } from './events.js';
import type { C2Host, C2Options } from './host.js';
import type { DeviceRecord, DeviceState } from './registry.js';

export interface EngineCore {
  readonly host: C2Host;
  readonly options: C2Options;
  /** Signs and publishes to SRUP/<device>; see C2Engine.send. */
  send<T extends TypeName>(type: T, device: bigint, token: Uint8Array, fields: FieldsOf<T>): Promise<void>;
  emit(event: C2Event): void;
  newToken(): Uint8Array;
  setDeviceState(id: bigint, state: DeviceState, extra?: Partial<DeviceRecord>): DeviceRecord;
  subscribeDevice(id: bigint): Promise<void>;
  unsubscribeDevice(id: bigint): Promise<void>;
  /** Sends an ID request after a join when the options say so (errors are logged). */
  afterJoin(id: bigint): void;
  /** Throws C2Error('not_joined' / 'unknown_device') unless the device is joined. */
  requireJoined(id: bigint): DeviceRecord;
  /** Throws C2Error('bad_argument') when the message could not be encoded (e.g. a url over 65534 bytes). */
  checkFits<T extends TypeName>(type: T, token: Uint8Array, fields: FieldsOf<T>): void;
  now(): number;
}
