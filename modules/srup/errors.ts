/**
 * The one error type of the protocol layer. `reason` is machine-readable and stable; `message` is for people.
 */
export type SrupErrorReason =
  | 'not_bytes' // the input is not a Uint8Array (requireBytes)
  | 'empty' // no bytes at all
  | 'truncated' // the input ends inside a fixed-size field or a length prefix
  | 'length_exceeds_input' // a length prefix declares more bytes than the input has left
  | 'bad_version' // version byte other than 0x05
  | 'unknown_type' // type byte not assigned in version 0x05
  | 'header_only' // a generic (0x00) message: header and token only, never acted on
  | 'empty_signature' // signature length 0
  | 'bad_padding' // syndicated_c2_request without its two 00 padding bytes
  | 'trailing_bytes' // bytes after the last field
  | 'field_range' // (encoding) a value does not fit its field; an id that is not a u64
  | 'bad_hex' // text that is not an even-length hex string (fromHex)
  | 'bad_data' // typed data payload of the wrong size or not valid UTF-8
  | 'bad_signature'; // signature does not verify with the sender's key

export class SrupError extends Error {
  readonly reason: SrupErrorReason;
  constructor(reason: SrupErrorReason, message: string) {
    super(message);
    this.name = 'SrupError';
    this.reason = reason;
  }
}

export function isSrupError(e: unknown): e is SrupError {
  return e instanceof SrupError;
}

/**
 * The one boundary check for byte inputs of the protocol layer (the decoders, typed data, the encoder's byte
 * fields): a value that is not a Uint8Array is 'not_bytes' (not 'empty', which is a Uint8Array of length 0, nor
 * 'field_range' or 'bad_data', which are about the bytes' size or content).
 */
export function requireBytes(input: unknown, what = 'input'): Uint8Array {
  if (!(input instanceof Uint8Array)) throw new SrupError('not_bytes', `${what} is not a byte array`);
  return input;
}
