/**
 * SRUP version 0x05: every message type and its type-specific fields, in wire order (SRUP-WIRE.md §2, §4).
 * Encoding, decoding and signed bytes are all driven by this one table.
 *
 * Field kinds:
 *   u8     1 byte
 *   u32    4 bytes, little-endian
 *   u64    8 bytes, little-endian (ids)
 *   bytes  2-byte big-endian length, then that many bytes
 *   zero2  two 00 bytes, carried and signed (syndicated_c2_request only); no value
 */
export const SRUP_VERSION = 0x05;

export type FieldKind = 'u8' | 'u32' | 'u64' | 'bytes' | 'zero2';

export const SCHEMA = {
  initiate: { code: 0x01, fields: [['url', 'bytes'], ['digest', 'bytes']] },
  response: { code: 0x02, fields: [['status', 'u8']] },
  activate: { code: 0x03, fields: [] },
  action: { code: 0x04, fields: [['actionId', 'u8']] },
  data: { code: 0x05, fields: [['dataId', 'bytes'], ['data', 'bytes']] },
  id_request: { code: 0x06, fields: [] },
  join_request: { code: 0x09, fields: [] },
  join_command: { code: 0x0a, fields: [['deviceId', 'u64']] },
  human_join_request: { code: 0x0b, fields: [] },
  human_join_response: { code: 0x0c, fields: [['encrypted', 'bytes']] },
  observed_join_request: { code: 0x0d, fields: [['observerId', 'u64']] },
  observed_join_response: { code: 0x0e, fields: [['encrypted', 'bytes']] },
  observation_request: { code: 0x0f, fields: [['joiningDeviceId', 'u64'], ['encrypted', 'bytes']] },
  resign_request: { code: 0x10, fields: [] },
  terminate_command: { code: 0x11, fields: [] },
  deregister_request: { code: 0x12, fields: [] },
  deregister_command: { code: 0x13, fields: [] },
  syndication_init: { code: 0x21, fields: [['url', 'bytes'], ['encrypted', 'bytes']] },
  syndicated_action: { code: 0x24, fields: [['actionId', 'u8'], ['targetId', 'u64']] },
  syndicated_data: { code: 0x25, fields: [['dataId', 'bytes'], ['data', 'bytes'], ['sourceId', 'u64']] },
  syndicated_id_request: { code: 0x26, fields: [['targetId', 'u64']] },
  syndicated_device_count: { code: 0x27, fields: [['count', 'u32']] },
  syndicated_device_list: { code: 0x28, fields: [['deviceSequence', 'u32'], ['deviceId', 'u64']] },
  syndication_request: { code: 0x29, fields: [['encrypted', 'bytes']] },
  syndicated_c2_request: { code: 0x2c, fields: [['data', 'bytes'], ['reqId', 'u8'], ['padding', 'zero2']] },
  syndication_end_request: { code: 0x2e, fields: [] },
  syndicated_terminate: { code: 0x2f, fields: [] },
} as const satisfies Record<string, { code: number; fields: readonly (readonly [string, FieldKind])[] }>;

/** The type code of the header-only generic message (never signed, never acted on). */
export const GENERIC_CODE = 0x00;

export type TypeName = keyof typeof SCHEMA;

type ValueOf<K> = K extends 'u8' | 'u32' ? number : K extends 'u64' ? bigint : K extends 'bytes' ? Uint8Array : never;

/** The type-specific fields of message type T, e.g. `{ url: Uint8Array; digest: Uint8Array }` for initiate. */
export type FieldsOf<T extends TypeName> = {
  [F in (typeof SCHEMA)[T]['fields'][number] as F[1] extends 'zero2' ? never : F[0]]: ValueOf<F[1]>;
};

/** The common header every message starts with. */
export interface Header {
  sequenceId: bigint;
  senderId: bigint;
  token: Uint8Array;
}

/** A message of type T before it is signed. */
export type UnsignedOf<T extends TypeName> = Header & { type: T; fields: FieldsOf<T> };
/** A signed message of type T. */
export type MessageOf<T extends TypeName> = UnsignedOf<T> & { signature: Uint8Array };

export type UnsignedMessage = { [T in TypeName]: UnsignedOf<T> }[TypeName];
export type Message = { [T in TypeName]: MessageOf<T> }[TypeName];

export interface TypeInfo {
  readonly name: TypeName;
  readonly code: number;
  readonly fields: readonly (readonly [string, FieldKind])[];
}

/** Type info by type byte (undefined for unassigned codes and the generic 0x00). */
export const TYPE_BY_CODE: readonly (TypeInfo | undefined)[] = (() => {
  const t: (TypeInfo | undefined)[] = new Array(256).fill(undefined);
  for (const name of Object.keys(SCHEMA) as TypeName[]) {
    const s = SCHEMA[name];
    t[s.code] = { name, code: s.code, fields: s.fields };
  }
  return t;
})();

export const TYPE_NAMES: readonly TypeName[] = Object.keys(SCHEMA) as TypeName[];

export function typeInfo(name: TypeName): TypeInfo {
  return TYPE_BY_CODE[SCHEMA[name].code] as TypeInfo;
}

export function isTypeName(s: string): s is TypeName {
  return Object.prototype.hasOwnProperty.call(SCHEMA, s);
}

/** Response status codes (SRUP-WIRE.md §7). */
export const Status = {
  UPDATE_SUCCESS: 0x00,
  UPDATE_FAIL_HTTP_ERROR: 0xfc,
  UPDATE_FAIL_SERVER: 0xfd,
  UPDATE_FAIL_FILE: 0xfe,
  UPDATE_FAIL_DIGEST: 0xff,
  ACTIVATE_SUCCESS: 0x10,
  ACTIVATE_FAIL: 0x1f,
  ACTION_SUCCESS: 0x20,
  ACTION_UNKNOWN: 0x2e,
  ACTION_FAIL: 0x2f,
  DATA_TYPE_UNKNOWN: 0x3f,
  JOIN_SUCCESS: 0x50,
  JOIN_REFUSED: 0x5e,
  JOIN_FAIL: 0x5f,
  OBSERVED_JOIN_VALID: 0x60,
  OBSERVED_JOIN_INVALID: 0x6e,
  OBSERVED_JOIN_FAIL: 0x6f,
  RESIGN_SUCCESS: 0x70,
  RESIGN_FAIL: 0x7f,
  DEREGISTER_SUCCESS: 0x80,
  DEREGISTER_FAIL: 0x8f,
} as const;
