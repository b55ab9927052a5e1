/**
 * The key-store record: the device's identity, trust anchors and settings, written A/B into two slots.
 *
 * Slot = `recordSlotBlocks` erase blocks (one, 4096 bytes, in the `srup` partition). Slot A starts at block
 * 0, slot B right after it. A slot holds one record:
 *
 *   offset size  field (little-endian)
 *        0    4  magic "SRKS" (53 52 4B 53)
 *        4    1  format version = 1
 *        5    1  flags = 0 (reserved)
 *        6    2  header length = 32
 *        8    4  generation (u32; the newest valid record wins; a new record is generation + 1)
 *       12    4  body length in bytes
 *       16    4  CRC-32 of the body
 *       20    8  reserved = 0
 *       28    4  CRC-32 of bytes 0..27
 *       32    …  body: TLV fields, each  tag u8 | length u16 | value
 *
 * Body fields (unknown tags are skipped, so later versions can add fields):
 *   0x01 device id        8 bytes, u64
 *   0x02 private key      DER (PKCS#1 RSAPrivateKey or PKCS#8)
 *   0x03 server id        8 bytes, u64 (absent: the device has no server)
 *   0x04 peer key         8-byte peer id (u64) + SubjectPublicKeyInfo DER; repeated (the server's key is the
 *                         peer key whose id is the server id)
 *   0x05 broker URL       UTF-8 (mqtts://host:port or mqtt://host:port)
 *   0x06 CA               DER or PEM bytes of the broker's CA certificate
 *   0x07 Wi-Fi SSID       UTF-8     0x08 Wi-Fi password   UTF-8
 *   0x09 presenter        8 bytes: LED pin (0xFF none) | flags (bit 0 LED active-low, bit 1 matrix
 *                         serpentine) | matrix pin (0xFF none) | rotation in quarter turns clockwise (0-3) |
 *                         brightness cap (0-255) | 3 reserved (0)
 *   0x0A DNS servers      1-4 IPv4 addresses, 4 bytes each in network order (absent: the network's own, from
 *                         DHCP). Added after format version 1 shipped; the version stays 1: firmware that
 *                         does not know the tag skips it (and drops it when it rewrites the record, leaving
 *                         the device on the network's DNS), and a version bump would make such firmware
 *                         refuse the whole partition after a rollback.
 *   0x0B join timeout     u32, seconds a join waits for its answer, 1-86400 (absent: the agent's 120 s). Added
 *                         after version 1 like 0x0A, for the same reasons: the version stays 1, and firmware
 *                         that does not know the tag keeps its default.
 *
 * Writing: the new record goes into the slot that does NOT hold the newest valid record: erase that slot,
 * write the body, then the header (the header's CRCs are the commit). Power lost anywhere in between leaves
 * the other slot, the previous good record, untouched and newest.
 */
import { crc32 } from './crc32.js';
import { StoreError } from './errors.js';
import type { Flash, StoreLayout } from './flash.js';
import { getU16, getU32, getU64, putU16, putU32, putU64, U64_MASK } from './bytes.js';
import { utf8, utf8DecodeOrNull } from '../srup/bytes.js';

export const RECORD_MAGIC = 0x534b5253; // "SRKS" read as little-endian u32
export const RECORD_VERSION = 1;
export const RECORD_HEADER_LENGTH = 32;

export const TAG_DEVICE_ID = 0x01;
export const TAG_PRIVATE_KEY = 0x02;
export const TAG_SERVER_ID = 0x03;
export const TAG_PEER_KEY = 0x04;
export const TAG_BROKER_URL = 0x05;
export const TAG_CA = 0x06;
export const TAG_WIFI_SSID = 0x07;
export const TAG_WIFI_PASSWORD = 0x08;
export const TAG_PRESENTER = 0x09;
export const TAG_DNS = 0x0a;
/** At most this many DNS servers in a record. */
export const MAX_DNS_SERVERS = 4;
export const TAG_JOIN_TIMEOUT = 0x0b;
/** The longest join timeout a record may name, in seconds (a day). */
export const MAX_JOIN_TIMEOUT_SECONDS = 86400;

export type MatrixLayoutKind = 'progressive' | 'serpentine';
export type Rotation = 0 | 90 | 180 | 270;

export interface PresenterSettings {
  /** GPIO of the challenge LED, or null for none. */
  readonly ledPin: number | null;
  readonly ledActiveLow: boolean;
  /** Data GPIO of the 8×8 WS2812 matrix, or null for none. */
  readonly matrixPin: number | null;
  readonly matrixLayout: MatrixLayoutKind;
  readonly matrixRotation: Rotation;
  /** Upper bound for any colour channel sent to the matrix (0-255). */
  readonly brightnessCap: number;
}

export const DEFAULT_PRESENTER: PresenterSettings = {
  ledPin: null,
  ledActiveLow: false,
  matrixPin: null,
  matrixLayout: 'serpentine',
  matrixRotation: 0,
  brightnessCap: 32,
};

export interface PeerKeyEntry {
  readonly id: bigint;
  /** SubjectPublicKeyInfo DER. */
  readonly der: Uint8Array;
}

export interface DeviceRecord {
  readonly deviceId: bigint;
  /** DER of the device's RSA private key. */
  readonly privateKey: Uint8Array;
  readonly serverId: bigint | null;
  readonly peers: readonly PeerKeyEntry[];
  readonly brokerUrl: string;
  readonly ca: Uint8Array | null;
  readonly wifi: { readonly ssid: string; readonly password: string } | null;
  readonly presenter: PresenterSettings;
  /** DNS servers (IPv4 dotted) that replace the network's; absent or empty: the network's own. */
  readonly dns?: readonly string[];
  /** Seconds a join waits for its answer (1-MAX_JOIN_TIMEOUT_SECONDS); absent: the agent's default. */
  readonly joinTimeoutSeconds?: number;
}

function fail(message: string): never {
  throw new StoreError('bad_record', message);
}

function u64Bytes(v: bigint): Uint8Array {
  if (v < 0n || v > U64_MASK) fail('id out of u64 range');
  const b = new Uint8Array(8);
  putU64(b, 0, v);
  return b;
}

function pin(p: number | null): number {
  if (p === null) return 0xff;
  if (!Number.isInteger(p) || p < 0 || p > 0xfe) fail(`bad pin ${p}`);
  return p;
}

export function encodePresenter(p: PresenterSettings): Uint8Array {
  const rot = [0, 90, 180, 270].indexOf(p.matrixRotation);
  if (rot < 0) fail(`bad rotation ${p.matrixRotation}`);
  if (!Number.isInteger(p.brightnessCap) || p.brightnessCap < 0 || p.brightnessCap > 255) fail('bad brightness cap');
  return Uint8Array.of(
    pin(p.ledPin),
    (p.ledActiveLow ? 1 : 0) | (p.matrixLayout === 'serpentine' ? 2 : 0),
    pin(p.matrixPin),
    rot,
    p.brightnessCap,
    0,
    0,
    0,
  );
}

export function decodePresenter(b: Uint8Array): PresenterSettings {
  if (b.length < 5) fail('presenter field too short');
  if (b[3] > 3) fail('bad rotation');
  return {
    ledPin: b[0] === 0xff ? null : b[0],
    ledActiveLow: (b[1] & 1) !== 0,
    matrixPin: b[2] === 0xff ? null : b[2],
    matrixLayout: b[1] & 2 ? 'serpentine' : 'progressive',
    matrixRotation: ([0, 90, 180, 270] as const)[b[3]],
    brightnessCap: b[4],
  };
}

/** A list of IPv4 addresses as the DNS field: 4 bytes each. Throws StoreError('bad_record') on anything else. */
export function encodeDns(servers: readonly string[]): Uint8Array {
  if (servers.length < 1 || servers.length > MAX_DNS_SERVERS) fail(`1-${MAX_DNS_SERVERS} DNS servers, not ${servers.length}`);
  const out = new Uint8Array(4 * servers.length);
  servers.forEach((a, i) => {
    const parts = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(a);
    if (parts === null) fail(`DNS server "${a}" is not an IPv4 address`);
    for (let k = 0; k < 4; k++) {
      const n = Number(parts[k + 1]);
      if (n > 255) fail(`DNS server "${a}" is not an IPv4 address`);
      out[4 * i + k] = n;
    }
  });
  return out;
}

export function decodeDns(b: Uint8Array): string[] {
  if (b.length === 0 || b.length % 4 !== 0 || b.length > 4 * MAX_DNS_SERVERS) fail('bad DNS field length');
  const out: string[] = [];
  for (let o = 0; o < b.length; o += 4) out.push(`${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`);
  return out;
}

/** The join timeout field: u32 seconds. Throws StoreError('bad_record') outside 1-MAX_JOIN_TIMEOUT_SECONDS. */
export function encodeJoinTimeout(seconds: number): Uint8Array {
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > MAX_JOIN_TIMEOUT_SECONDS) {
    fail(`join timeout must be a whole number of seconds from 1 to ${MAX_JOIN_TIMEOUT_SECONDS}`);
  }
  const b = new Uint8Array(4);
  putU32(b, 0, seconds);
  return b;
}

function decodeJoinTimeout(v: Uint8Array): number {
  if (v.length !== 4) fail('join timeout field is not 4 bytes');
  const seconds = getU32(v, 0);
  if (seconds < 1 || seconds > MAX_JOIN_TIMEOUT_SECONDS) fail(`join timeout of ${seconds} s is outside 1-${MAX_JOIN_TIMEOUT_SECONDS}`);
  return seconds;
}

/** The TLV body of a record. */
export function encodeRecordBody(r: DeviceRecord): Uint8Array {
  const fields: [number, Uint8Array][] = [];
  fields.push([TAG_DEVICE_ID, u64Bytes(r.deviceId)]);
  if (r.privateKey.length === 0) fail('no private key');
  fields.push([TAG_PRIVATE_KEY, r.privateKey]);
  if (r.serverId !== null) fields.push([TAG_SERVER_ID, u64Bytes(r.serverId)]);
  for (const p of r.peers) {
    const v = new Uint8Array(8 + p.der.length);
    v.set(u64Bytes(p.id), 0);
    v.set(p.der, 8);
    fields.push([TAG_PEER_KEY, v]);
  }
  fields.push([TAG_BROKER_URL, utf8(r.brokerUrl)]);
  if (r.ca !== null) fields.push([TAG_CA, r.ca]);
  if (r.wifi !== null) {
    fields.push([TAG_WIFI_SSID, utf8(r.wifi.ssid)]);
    fields.push([TAG_WIFI_PASSWORD, utf8(r.wifi.password)]);
  }
  fields.push([TAG_PRESENTER, encodePresenter(r.presenter)]);
  if (r.dns !== undefined && r.dns.length > 0) fields.push([TAG_DNS, encodeDns(r.dns)]);
  if (r.joinTimeoutSeconds !== undefined) fields.push([TAG_JOIN_TIMEOUT, encodeJoinTimeout(r.joinTimeoutSeconds)]);
  let n = 0;
  for (const [, v] of fields) {
    if (v.length > 0xffff) fail('field longer than 65535 bytes');
    n += 3 + v.length;
  }
  const out = new Uint8Array(n);
  let o = 0;
  for (const [tag, v] of fields) {
    out[o] = tag;
    putU16(out, o + 1, v.length);
    out.set(v, o + 3);
    o += 3 + v.length;
  }
  return out;
}

export function decodeRecordBody(body: Uint8Array): DeviceRecord {
  let deviceId: bigint | null = null;
  let privateKey: Uint8Array | null = null;
  let serverId: bigint | null = null;
  const peers: PeerKeyEntry[] = [];
  let brokerUrl: string | null = null;
  let ca: Uint8Array | null = null;
  let ssid: string | null = null;
  let password: string | null = null;
  let presenter: PresenterSettings = DEFAULT_PRESENTER;
  let dns: string[] | null = null;
  let joinTimeoutSeconds: number | null = null;
  const text = (v: Uint8Array): string => utf8DecodeOrNull(v) ?? fail('field is not UTF-8');
  const id = (v: Uint8Array): bigint => (v.length === 8 ? getU64(v, 0) : fail('id field is not 8 bytes'));
  for (let o = 0; o < body.length; ) {
    if (o + 3 > body.length) fail('truncated field header');
    const tag = body[o];
    const len = getU16(body, o + 1);
    if (o + 3 + len > body.length) fail('truncated field');
    const v = body.slice(o + 3, o + 3 + len);
    o += 3 + len;
    switch (tag) {
      case TAG_DEVICE_ID: deviceId = id(v); break;
      case TAG_PRIVATE_KEY: privateKey = v; break;
      case TAG_SERVER_ID: serverId = id(v); break;
      case TAG_PEER_KEY:
        if (v.length <= 8) fail('peer key field too short');
        peers.push({ id: getU64(v, 0), der: v.slice(8) });
        break;
      case TAG_BROKER_URL: brokerUrl = text(v); break;
      case TAG_CA: ca = v; break;
      case TAG_WIFI_SSID: ssid = text(v); break;
      case TAG_WIFI_PASSWORD: password = text(v); break;
      case TAG_PRESENTER: presenter = decodePresenter(v); break;
      case TAG_DNS: dns = decodeDns(v); break;
      case TAG_JOIN_TIMEOUT: joinTimeoutSeconds = decodeJoinTimeout(v); break;
      default: break; // a field of a later version
    }
  }
  if (deviceId === null) fail('no device id');
  if (privateKey === null) fail('no private key');
  if (brokerUrl === null) fail('no broker URL');
  return {
    deviceId,
    privateKey,
    serverId,
    peers,
    brokerUrl,
    ca,
    wifi: ssid === null ? null : { ssid, password: password ?? '' },
    presenter,
    ...(dns === null ? {} : { dns }),
    ...(joinTimeoutSeconds === null ? {} : { joinTimeoutSeconds }),
  };
}

/** A whole slot image (header + body), `slotBytes` long, the rest 0xFF. */
export function encodeRecordSlot(r: DeviceRecord, generation: number, slotBytes: number): Uint8Array {
  const body = encodeRecordBody(r);
  if (RECORD_HEADER_LENGTH + body.length > slotBytes)
    throw new StoreError('too_large', `record of ${RECORD_HEADER_LENGTH + body.length} bytes does not fit a ${slotBytes}-byte slot`);
  const out = new Uint8Array(slotBytes).fill(0xff);
  const h = out.subarray(0, RECORD_HEADER_LENGTH);
  h.fill(0);
  putU32(h, 0, RECORD_MAGIC);
  h[4] = RECORD_VERSION;
  putU16(h, 6, RECORD_HEADER_LENGTH);
  putU32(h, 8, generation >>> 0);
  putU32(h, 12, body.length);
  putU32(h, 16, crc32(body));
  putU32(h, 28, crc32(h, 0, 28));
  out.set(body, RECORD_HEADER_LENGTH);
  return out;
}

export interface SlotContent {
  readonly generation: number;
  readonly record: DeviceRecord;
}

/**
 * Decodes one slot; null when it holds no valid record (erased, torn, corrupted). A header of a later format
 * version (magic, version byte and the CRC of bytes 0..27 at 28 stay where they are in every version) throws
 * StoreError('unsupported_version'): reading the other, older slot instead would bring back a record the
 * device has since replaced, and the next save would destroy the newer one.
 */
export function decodeRecordSlot(flash: Flash, offset: number, slotBytes: number): SlotContent | null {
  const h = flash.read(offset, RECORD_HEADER_LENGTH);
  if (getU32(h, 0) !== RECORD_MAGIC || crc32(h, 0, 28) !== getU32(h, 28)) return null;
  if (h[4] > RECORD_VERSION)
    throw new StoreError('unsupported_version', `record slot at ${offset} is format version ${h[4]}; this firmware reads ${RECORD_VERSION}`);
  if (h[4] !== RECORD_VERSION || getU16(h, 6) !== RECORD_HEADER_LENGTH) return null;
  const len = getU32(h, 12);
  if (RECORD_HEADER_LENGTH + len > slotBytes) return null;
  const body = flash.read(offset + RECORD_HEADER_LENGTH, len);
  if (crc32(body) !== getU32(h, 16)) return null;
  try {
    return { generation: getU32(h, 8), record: decodeRecordBody(body) };
  } catch {
    return null;
  }
}

/** The two record slots of a partition. */
export class RecordSlots {
  private readonly flash: Flash;
  private readonly slotBlocks: number;
  private current: { slot: 0 | 1; generation: number } | null = null;

  constructor(flash: Flash, layout: StoreLayout) {
    this.flash = flash;
    this.slotBlocks = layout.recordSlotBlocks;
  }

  get slotBytes(): number {
    return this.slotBlocks * this.flash.blockSize;
  }

  /** The newest valid record, or null when neither slot holds one. */
  load(): DeviceRecord | null {
    const a = decodeRecordSlot(this.flash, 0, this.slotBytes);
    const b = decodeRecordSlot(this.flash, this.slotBytes, this.slotBytes);
    let pick: { slot: 0 | 1; c: SlotContent } | null = null;
    if (a && b) pick = newer(b.generation, a.generation) ? { slot: 1, c: b } : { slot: 0, c: a };
    else if (a) pick = { slot: 0, c: a };
    else if (b) pick = { slot: 1, c: b };
    this.current = pick ? { slot: pick.slot, generation: pick.c.generation } : null;
    return pick ? pick.c.record : null;
  }

  /** Writes `r` as the next generation into the other slot. Durable on return. */
  save(r: DeviceRecord): void {
    if (this.current === null) this.load();
    const slot: 0 | 1 = this.current === null ? 0 : this.current.slot === 0 ? 1 : 0;
    const generation = this.current === null ? 1 : (this.current.generation + 1) >>> 0;
    const image = encodeRecordSlot(r, generation, this.slotBytes);
    const first = slot * this.slotBlocks;
    for (let i = 0; i < this.slotBlocks; i++) this.flash.eraseBlock(first + i);
    const base = slot * this.slotBytes;
    const used = RECORD_HEADER_LENGTH + getU32(image, 12);
    this.flash.write(base + RECORD_HEADER_LENGTH, image.subarray(RECORD_HEADER_LENGTH, used));
    this.flash.write(base, image.subarray(0, RECORD_HEADER_LENGTH));
    this.current = { slot, generation };
  }
}

/** Generation order with wrap-around (serial-number arithmetic on u32). */
export function newer(a: number, b: number): boolean {
  return ((a - b) | 0) > 0;
}
