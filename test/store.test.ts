/** Flash formats: CRC-32, the flash model, the key-store record and the counter log, without power loss. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parsePrivateKeyPem, parsePublicKeyPem, privateKeyToDer, publicKeyToDer } from '../crypto/keys.js';
import { crc32 } from '../modules/store/crc32.js';
import { CounterLog, MAX_PEERS } from '../modules/store/counter-log.js';
import { FlashKeyStore, FlashSequenceStore, partitionImage } from '../modules/store/flash-stores.js';
import { DEFAULT_LAYOUT, MemoryFlash, SRUP_PARTITION_SIZE } from '../modules/store/flash.js';
import {
  decodeRecordBody,
  DEFAULT_PRESENTER,
  encodeDns,
  encodeRecordBody,
  encodeRecordSlot,
  RecordSlots,
  type DeviceRecord,
} from '../modules/store/record.js';
import { StoreError } from '../modules/store/errors.js';

const KEYS = join(__dirname, 'data', 'srup-vectors', 'keys');
const devicePrivate = parsePrivateKeyPem(readFileSync(join(KEYS, 'signer-1.private.pem'), 'utf8'));
const serverPublic = parsePublicKeyPem(readFileSync(join(KEYS, 'signer-2.public.pem'), 'utf8'));

const SERVER = 0x5e7e7a1f00c0ffeen;
const DEVICE = 0x4a0f3b2c1d0e4f56n;

export function sampleRecord(over: Partial<DeviceRecord> = {}): DeviceRecord {
  return {
    deviceId: DEVICE,
    privateKey: privateKeyToDer(devicePrivate),
    serverId: SERVER,
    peers: [{ id: SERVER, der: publicKeyToDer(serverPublic) }],
    brokerUrl: 'mqtts://broker.example:8883',
    ca: Uint8Array.from({ length: 800 }, (_, i) => (i * 7) & 0xff),
    wifi: { ssid: 'lab', password: 'pässwörd' },
    presenter: { ledPin: 2, ledActiveLow: true, matrixPin: 27, matrixLayout: 'serpentine', matrixRotation: 90, brightnessCap: 40 },
    ...over,
  };
}

describe('CRC-32', () => {
  test('matches the published check value and continues across chunks', () => {
    const ascii = Uint8Array.from('123456789', (c) => c.charCodeAt(0));
    expect(crc32(ascii)).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
    expect(crc32(ascii, 4, 9, crc32(ascii, 0, 4))).toBe(0xcbf43926);
  });
});

describe('MemoryFlash', () => {
  test('writes only clear bits; erase sets a whole 4096-byte block to 0xFF', () => {
    const f = new MemoryFlash(2 * 4096);
    expect(f.read(0, 4)).toEqual(Uint8Array.of(255, 255, 255, 255));
    f.write(4095, Uint8Array.of(0xf0, 0x0f));
    f.write(4095, Uint8Array.of(0x3c, 0xff));
    expect(f.read(4095, 2)).toEqual(Uint8Array.of(0x30, 0x0f));
    f.eraseBlock(0);
    expect(f.read(4095, 2)).toEqual(Uint8Array.of(0xff, 0x0f));
    expect(() => f.read(8190, 4)).toThrow(StoreError);
    expect(() => f.eraseBlock(2)).toThrow(StoreError);
  });
});

describe('key-store record', () => {
  test('body round-trips every field exactly', () => {
    const r = sampleRecord();
    expect(decodeRecordBody(encodeRecordBody(r))).toEqual(r);
    const bare = sampleRecord({ serverId: null, peers: [], ca: null, wifi: null, presenter: DEFAULT_PRESENTER });
    expect(decodeRecordBody(encodeRecordBody(bare))).toEqual(bare);
  });

  test('DNS servers: tag 0x0A, 4 bytes each, round-trip; absent when not given, so older records read the same', () => {
    const r = sampleRecord({ dns: ['192.168.1.1', '10.0.0.53'] });
    const body = encodeRecordBody(r);
    const plain = encodeRecordBody(sampleRecord());
    // The field is appended after the others; without it the body is byte for byte what it was.
    expect(Array.from(body.subarray(plain.length))).toEqual([0x0a, 8, 0, 192, 168, 1, 1, 10, 0, 0, 53]);
    expect(Array.from(body.subarray(0, plain.length))).toEqual(Array.from(plain));
    expect(decodeRecordBody(body)).toEqual(r);
    expect('dns' in decodeRecordBody(plain)).toBe(false);
    expect(encodeRecordBody(sampleRecord({ dns: [] }))).toEqual(plain);
    // Still format version 1: firmware that does not know the tag skips it.
    expect(encodeRecordSlot(r, 1, 4096)[4]).toBe(1);
  });

  test('DNS servers: only 1-4 IPv4 addresses are accepted, in either direction', () => {
    for (const bad of [['8.8.8'], ['256.1.1.1'], ['dns.example'], ['fe80::1'], ['1.1.1.1', '1.1.1.1', '1.1.1.1', '1.1.1.1', '1.1.1.1']]) {
      expect(() => encodeDns(bad)).toThrow(StoreError);
    }
    const plain = encodeRecordBody(sampleRecord());
    for (const value of [[], [1, 2, 3], [1, 2, 3, 4, 5]]) {
      const body = Uint8Array.from([...plain, 0x0a, value.length, 0, ...value]);
      expect(() => decodeRecordBody(body)).toThrow('bad DNS field length');
    }
  });

  test('the header is laid out as documented', () => {
    const slot = encodeRecordSlot(sampleRecord(), 7, 4096);
    expect(Array.from(slot.subarray(0, 8))).toEqual([0x53, 0x52, 0x4b, 0x53, 1, 0, 32, 0]);
    expect(Array.from(slot.subarray(8, 12))).toEqual([7, 0, 0, 0]);
    const bodyLength = slot[12] | (slot[13] << 8);
    expect(bodyLength).toBe(encodeRecordBody(sampleRecord()).length);
    expect(slot[32]).toBe(0x01); // device id field first
    expect(Array.from(slot.subarray(33, 35))).toEqual([8, 0]);
    expect(slot[32 + bodyLength]).toBe(0xff);
  });

  test('unknown fields of a later version are skipped', () => {
    const body = encodeRecordBody(sampleRecord());
    const withExtra = new Uint8Array(body.length + 5);
    withExtra.set(Uint8Array.of(0x7e, 2, 0, 0xaa, 0xbb), 0);
    withExtra.set(body, 5);
    expect(decodeRecordBody(withExtra)).toEqual(sampleRecord());
  });

  test('A/B: each save goes to the other slot with the next generation; the newest valid one is read', () => {
    const f = new MemoryFlash(SRUP_PARTITION_SIZE);
    const slots = new RecordSlots(f, DEFAULT_LAYOUT);
    expect(slots.load()).toBeNull();
    slots.save(sampleRecord({ serverId: 1n }));
    slots.save(sampleRecord({ serverId: 2n }));
    slots.save(sampleRecord({ serverId: 3n }));
    expect(f.read(8, 1)[0]).toBe(3); // slot A: generation 3
    expect(f.read(4096 + 8, 1)[0]).toBe(2); // slot B: generation 2
    expect(new RecordSlots(f, DEFAULT_LAYOUT).load()?.serverId).toBe(3n);
    // Damage the newest: the previous one is read.
    f.write(100, Uint8Array.of(0));
    expect(new RecordSlots(f, DEFAULT_LAYOUT).load()?.serverId).toBe(2n);
  });

  test('a record too large for its slot is refused before anything is erased', () => {
    const f = new MemoryFlash(SRUP_PARTITION_SIZE);
    const slots = new RecordSlots(f, DEFAULT_LAYOUT);
    slots.save(sampleRecord());
    expect(() => slots.save(sampleRecord({ ca: new Uint8Array(3000) }))).toThrow(expect.objectContaining({ reason: 'too_large' }));
    expect(new RecordSlots(f, DEFAULT_LAYOUT).load()).toEqual(sampleRecord());
  });

  test('a flipped bit anywhere in the used part of the image is detected', () => {
    const image = partitionImage(sampleRecord(), SRUP_PARTITION_SIZE);
    const used = 32 + encodeRecordBody(sampleRecord()).length;
    for (let i = 0; i < used; i += 13) {
      const f = new MemoryFlash(SRUP_PARTITION_SIZE, 4096, image);
      f.bytes[i] ^= 0x10;
      expect(new RecordSlots(f, DEFAULT_LAYOUT).load()).toBeNull();
    }
    expect(new RecordSlots(new MemoryFlash(SRUP_PARTITION_SIZE, 4096, image), DEFAULT_LAYOUT).load()).toEqual(sampleRecord());
  });
});

describe('FlashKeyStore', () => {
  test('reads the provisioned identity and keeps server id and peer keys across restarts', () => {
    const f = new MemoryFlash(SRUP_PARTITION_SIZE, 4096, partitionImage(sampleRecord(), SRUP_PARTITION_SIZE));
    const ks = new FlashKeyStore(f);
    expect(ks.deviceId).toBe(DEVICE);
    expect(ks.privateKey.n).toBe(devicePrivate.n);
    expect(ks.serverId()).toBe(SERVER);
    expect(ks.peerKey(SERVER)?.n).toBe(serverPublic.n);
    expect(ks.peerKey(99n)).toBeNull();
    ks.setPeerKey(99n, devicePrivate.publicKey);
    ks.setServerId(null);
    ks.setPeerKey(SERVER, null);
    const again = new FlashKeyStore(f);
    expect(again.serverId()).toBeNull();
    expect(again.peerKey(SERVER)).toBeNull();
    expect(again.peerKey(99n)?.n).toBe(devicePrivate.n);
    expect(again.record.brokerUrl).toBe('mqtts://broker.example:8883');
  });

  test('an erased partition is not provisioned', () => {
    expect(() => new FlashKeyStore(new MemoryFlash(SRUP_PARTITION_SIZE))).toThrow(expect.objectContaining({ reason: 'not_provisioned' }));
  });

  test('keeps no copy of the record: the rest of it is read from flash when asked for, and a change keeps every other field', () => {
    const f = new MemoryFlash(SRUP_PARTITION_SIZE, 4096, partitionImage(sampleRecord(), SRUP_PARTITION_SIZE));
    const ks = new FlashKeyStore(f);
    expect(Object.values(ks).some((v) => v !== null && typeof v === 'object' && 'brokerUrl' in (v as object))).toBe(false);
    // Another writer of the partition (a newer generation): what `record` reports is what flash holds now.
    new RecordSlots(f, DEFAULT_LAYOUT).save(sampleRecord({ brokerUrl: 'mqtts://other.example:8883' }));
    expect(ks.record.brokerUrl).toBe('mqtts://other.example:8883');
    ks.setServerId(0x77n);
    const rec = new FlashKeyStore(f).record;
    expect(rec.serverId).toBe(0x77n);
    expect(rec.brokerUrl).toBe('mqtts://other.example:8883');
    expect(rec.ca).toEqual(sampleRecord().ca);
    expect(rec.wifi).toEqual({ ssid: 'lab', password: 'pässwörd' });
    expect(rec.privateKey).toEqual(privateKeyToDer(devicePrivate));
  });
});

describe('counter log', () => {
  test('unknown peers read 0; values persist exactly, full u64 range', () => {
    const f = new MemoryFlash(SRUP_PARTITION_SIZE);
    const s = new FlashSequenceStore(f);
    expect(s.lastAccepted(5n)).toBe(0n);
    expect(s.pendingUpdate()).toBeNull();
    s.setLastAccepted(5n, (1n << 64n) - 1n);
    s.setLastSent(5n, 1n << 63n);
    s.setLastSent(0n, 17n);
    s.setPendingUpdate({ server: SERVER, token: Uint8Array.of(1, 2, 3), state: 'staged' });
    const t = new FlashSequenceStore(f);
    expect(t.lastAccepted(5n)).toBe((1n << 64n) - 1n);
    expect(t.lastSent(5n)).toBe(1n << 63n);
    expect(t.lastSent(0n)).toBe(17n);
    expect(t.pendingUpdate()).toEqual({ server: SERVER, token: Uint8Array.of(1, 2, 3), state: 'staged' });
    t.forget(5n);
    t.setPendingUpdate(null);
    const u = new FlashSequenceStore(f);
    expect(u.lastAccepted(5n)).toBe(0n);
    expect(u.lastSent(5n)).toBe(0n);
    expect(u.lastSent(0n)).toBe(17n);
    expect(u.pendingUpdate()).toBeNull();
  });

  test('an update is one 24-byte write; erases come only when a block fills, rotating through the ring', () => {
    const f = new MemoryFlash(SRUP_PARTITION_SIZE);
    const s = new FlashSequenceStore(f);
    s.setLastAccepted(1n, 1n); // first ever: snapshot into a fresh block
    expect(f.erases).toBe(1);
    const before = f.bytesWritten;
    s.setLastAccepted(1n, 2n);
    expect(f.bytesWritten - before).toBe(24);
    for (let i = 3n; i < 2000n; i++) s.setLastAccepted(1n, i);
    // (4096 - 16 header - 48 snapshot) / 24 = 168 updates per block
    expect(f.erases).toBe(1 + Math.floor(1998 / 168));
    expect(new FlashSequenceStore(f).lastAccepted(1n)).toBe(1999n);
  });

  test('a snapshot holds up to MAX_PEERS peers and survives compaction', () => {
    const f = new MemoryFlash(5 * 4096);
    const layout = { recordSlotBlocks: 1, logFirstBlock: 2, logBlocks: 3 };
    const log = new CounterLog(f, layout);
    for (let i = 1; i <= MAX_PEERS; i++) log.setAccepted(BigInt(i), BigInt(i * 1000));
    for (let i = 0; i < 200; i++) log.setSent(1n, BigInt(i + 1));
    const again = new CounterLog(f, layout);
    for (let i = 1; i <= MAX_PEERS; i++) expect(again.counters(BigInt(i)).accepted).toBe(BigInt(i * 1000));
    expect(again.counters(1n).sent).toBe(200n);
    expect(() => again.setAccepted(100000n, 1n)).toThrow(expect.objectContaining({ reason: 'too_large' }));
  });
});
