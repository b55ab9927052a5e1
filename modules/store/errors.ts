/** The one error type of the store layer. */

export type StoreErrorReason =
  | 'not_provisioned' // no valid key-store record in either slot
  | 'bad_record' // a record that does not encode or decode (field missing, too long, bad value)
  | 'too_large' // a record or a counter snapshot that does not fit in its erase block(s)
  | 'bad_layout' // a partition too small, or blocks that are not 4096 bytes
  | 'out_of_range' // a flash access outside the partition
  | 'unsupported_version'; // a record or log block of a later format version (after a downgrade): not read, not overwritten

export class StoreError extends Error {
  readonly reason: StoreErrorReason;
  constructor(reason: StoreErrorReason, message: string) {
    super(message);
    this.name = 'StoreError';
    this.reason = reason;
  }
}

export function isStoreError(e: unknown): e is StoreError {
  return e instanceof StoreError;
}
