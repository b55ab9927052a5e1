/** The device's persistent state on flash: formats (record.ts, counter-log.ts) and the stores over them. */
export { crc32 } from './crc32.js';
export { StoreError, isStoreError, type StoreErrorReason } from './errors.js';
export { BLOCK_SIZE, DEFAULT_LAYOUT, SRUP_PARTITION_SIZE, MemoryFlash, isErased, layoutFor, type Flash, type StoreLayout } from './flash.js';
export {
  DEFAULT_PRESENTER,
  RecordSlots,
  decodeRecordBody,
  encodeRecordBody,
  type DeviceRecord,
  type MatrixLayoutKind,
  type PeerKeyEntry,
  type PresenterSettings,
  type Rotation,
} from './record.js';
export { CounterLog, MAX_PEERS, MAX_TOKEN_LENGTH } from './counter-log.js';
export { FlashKeyStore, FlashSequenceStore, parseStoredPrivateKey, partitionImage } from './flash-stores.js';
