/** `srup provision`: the partition image reads back as the device's record; a flipped byte is detected. */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { parsePublicKeyPem, publicKeyToDer } from '../crypto/keys.js';
import { parseCommandArgs } from '../tools/lib/cli.js';
import { provisionCommand } from '../tools/commands/provision.js';
import { deviceIdFromRandom, findPartition } from '../tools/lib/provision.js';
import { FlashKeyStore, FlashSequenceStore } from '../modules/store/flash-stores.js';
import { DEFAULT_LAYOUT, MemoryFlash } from '../modules/store/flash.js';
import { DEFAULT_PRESENTER, RecordSlots, TAG_JOIN_TIMEOUT, decodeRecordBody, encodeJoinTimeout, encodeRecordBody } from '../modules/store/record.js';

const ROOT = join(__dirname, '..');
const KEYS = join(__dirname, 'data', 'srup-vectors', 'keys');

async function provision(argv: string[]): Promise<{ code: number; out: string }> {
  let out = '';
  const stdout = new Writable({
    write(chunk, _enc, cb) {
      out += String(chunk);
      cb();
    },
  });
  const code = await provisionCommand.run(parseCommandArgs(provisionCommand, argv), { stdout, stderr: stdout, stdin: process.stdin });
  return { code, out };
}

describe('srup provision', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'srup-provision-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test('device ids are uuid4-shaped: hex digit 13 is 4', () => {
    expect(deviceIdFromRandom(new Uint8Array(16).fill(0xff))).toBe(0xffffffffffff4fffn);
    expect(deviceIdFromRandom(new Uint8Array(16))).toBe(0x0000000000004000n);
  });

  test('the srup partition of partitions.csv sits at 0x12000, 56 KiB, inside 4 MB, after otadata', () => {
    const csv = readFileSync(join(ROOT, 'partitions.csv'), 'utf8');
    expect(findPartition(csv, 'srup')).toEqual({ name: 'srup', offset: 0x12000, size: 0xe000 });
    expect(findPartition(csv, 'ota_1')).toEqual({ name: 'ota_1', offset: 0x210000, size: 0x1f0000 });
    expect(0x210000 + 0x1f0000).toBe(4 * 1024 * 1024);
  });

  test('writes an image that the device reads back exactly, and the esptool line', async () => {
    const ca = '-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n';
    writeFileSync(join(dir, 'ca.pem'), ca);
    const r = await provision([
      '--out', join(dir, 'dev'),
      '--server-id', '5e7e7a1f00c0ffee',
      '--server-key', join(KEYS, 'signer-2.public.pem'),
      '--broker', 'mqtts://10.0.0.2:8883',
      '--ca', join(dir, 'ca.pem'),
      '--wifi-ssid', 'lab', '--wifi-password', 'secret',
      '--led-pin', '2', '--led-active-low',
      '--matrix-pin', '27', '--matrix-layout', 'progressive', '--matrix-rotation', '180', '--brightness', '20',
      '--partitions', join(ROOT, 'partitions.csv'),
    ]);
    expect(r.code).toBe(0);
    const image = readFileSync(join(dir, 'dev', 'srup-partition.bin'));
    expect(image.length).toBe(0xe000);
    expect(readFileSync(join(dir, 'dev', 'srup-sim.bin')).equals(image)).toBe(true);
    expect(r.out).toContain(`flash with: esptool.py write_flash 0x12000 ${join(dir, 'dev', 'srup-partition.bin')}\n`);

    const registry = JSON.parse(readFileSync(join(dir, 'dev', 'device.json'), 'utf8'));
    expect(registry.id).toMatch(/^[0-9a-f]{12}4[0-9a-f]{3}$/);
    expect(r.out).toContain(`device id: ${registry.id}\n`);

    const flash = new MemoryFlash(image.length, 4096, new Uint8Array(image));
    const keys = new FlashKeyStore(flash);
    expect(keys.deviceId).toBe(BigInt('0x' + registry.id));
    expect(keys.serverId()).toBe(0x5e7e7a1f00c0ffeen);
    const serverKey = parsePublicKeyPem(readFileSync(join(KEYS, 'signer-2.public.pem'), 'utf8'));
    expect(keys.peerKey(0x5e7e7a1f00c0ffeen)?.n).toBe(serverKey.n);
    // The registry's public key is the image's private key's.
    expect(parsePublicKeyPem(registry.publicKey).n).toBe(keys.privateKey.n);
    expect(keys.privateKey.n.toString(2).length).toBe(2048);
    expect(keys.record.brokerUrl).toBe('mqtts://10.0.0.2:8883');
    expect(Array.from(keys.record.ca ?? [])).toEqual([0x30, 0x03, 0x02, 0x01, 0x01]);
    expect(keys.record.wifi).toEqual({ ssid: 'lab', password: 'secret' });
    expect(keys.record.presenter).toEqual({
      ledPin: 2, ledActiveLow: true, matrixPin: 27, matrixLayout: 'progressive', matrixRotation: 180, brightnessCap: 20,
    });
    // The counter log starts empty.
    expect(new FlashSequenceStore(flash).lastAccepted(0x5e7e7a1f00c0ffeen)).toBe(0n);
    expect(publicKeyToDer(keys.peerKey(0x5e7e7a1f00c0ffeen)!)).toEqual(publicKeyToDer(serverKey));

    // A flipped byte anywhere in the record is detected: the device reads no record rather than a wrong one.
    const used = 32 + (image[12] | (image[13] << 8));
    for (const at of [0, 8, 20, 31, 32, 40, 200, used - 1]) {
      const bad = new Uint8Array(image);
      bad[at] ^= 0x01;
      expect(new RecordSlots(new MemoryFlash(bad.length, 4096, bad), DEFAULT_LAYOUT).load()).toBeNull();
    }
    // Unused parts of the partition are erased.
    expect(image.subarray(used).every((b) => b === 0xff)).toBe(true);
  });

  test('--dns puts DNS servers in the record (none without it: the network\'s own are used)', async () => {
    const base = ['--server-id', '1', '--server-key', join(KEYS, 'signer-2.public.pem'), '--broker', 'mqtt://broker.lan:1883', '--partitions', join(ROOT, 'partitions.csv')];
    const read = (d: string) => {
      const image = new Uint8Array(readFileSync(join(d, 'srup-partition.bin')));
      return new FlashKeyStore(new MemoryFlash(image.length, 4096, image)).record;
    };
    expect((await provision(['--out', join(dir, 'a'), ...base, '--dns', '192.168.1.1, 10.0.0.53'])).code).toBe(0);
    expect(read(join(dir, 'a')).dns).toEqual(['192.168.1.1', '10.0.0.53']);
    expect((await provision(['--out', join(dir, 'b'), ...base])).code).toBe(0);
    expect(read(join(dir, 'b')).dns).toBeUndefined();
    await expect(provision(['--out', join(dir, 'c'), ...base, '--dns', 'dns.lan'])).rejects.toThrow('--dns: DNS server "dns.lan" is not an IPv4 address');
  });

  test('--join-timeout puts the join timeout in the record (tag 0x0B, version still 1) and in device.json; it survives a rewrite', async () => {
    const base = ['--server-id', '1', '--server-key', join(KEYS, 'signer-2.public.pem'), '--broker', 'mqtt://broker.lan:1883', '--partitions', join(ROOT, 'partitions.csv')];
    const image = (d: string) => new Uint8Array(readFileSync(join(d, 'srup-partition.bin')));
    expect((await provision(['--out', join(dir, 'a'), ...base, '--join-timeout', '300'])).code).toBe(0);
    const flash = new MemoryFlash(image(join(dir, 'a')).length, 4096, image(join(dir, 'a')));
    const keys = new FlashKeyStore(flash);
    expect(keys.record.joinTimeoutSeconds).toBe(300);
    expect(image(join(dir, 'a'))[4]).toBe(1); // the format version
    expect(JSON.parse(readFileSync(join(dir, 'a', 'device.json'), 'utf8')).joinTimeoutSeconds).toBe(300);
    // The device rewrites its record (a new server, a dropped key): the timeout stays.
    keys.setServerId(null);
    expect(new FlashKeyStore(flash).record.joinTimeoutSeconds).toBe(300);
    // Without it: no field, the agent's default (120 s).
    expect((await provision(['--out', join(dir, 'b'), ...base])).code).toBe(0);
    expect(new FlashKeyStore(new MemoryFlash(image(join(dir, 'b')).length, 4096, image(join(dir, 'b')))).record.joinTimeoutSeconds).toBeUndefined();
    expect(JSON.parse(readFileSync(join(dir, 'b', 'device.json'), 'utf8')).joinTimeoutSeconds).toBeUndefined();
    for (const bad of ['0', '86401', '1.5', 'soon']) {
      await expect(provision(['--out', join(dir, 'c'), ...base, '--join-timeout', bad])).rejects.toThrow('--join-timeout must be a whole number of seconds from 1 to 86400');
    }
  });

  test('a record with a join timeout outside 1-86400 s, or of the wrong size, is refused as a bad record', () => {
    const body = (v: Uint8Array) => {
      const ok = encodeRecordBody({ deviceId: 1n, privateKey: new Uint8Array([1]), serverId: null, peers: [], brokerUrl: 'mqtt://b', ca: null, wifi: null, presenter: DEFAULT_PRESENTER });
      const out = new Uint8Array(ok.length + 3 + v.length);
      out.set(ok);
      out.set([TAG_JOIN_TIMEOUT, v.length & 0xff, v.length >> 8], ok.length);
      out.set(v, ok.length + 3);
      return out;
    };
    expect(decodeRecordBody(body(new Uint8Array([0x2c, 0x01, 0, 0]))).joinTimeoutSeconds).toBe(300);
    for (const v of [new Uint8Array([0, 0, 0, 0]), new Uint8Array([0x81, 0x51, 0x01, 0]), new Uint8Array([0x2c, 0x01])]) {
      expect(() => decodeRecordBody(body(v))).toThrow(expect.objectContaining({ reason: 'bad_record' }));
    }
    expect(() => encodeJoinTimeout(0)).toThrow('join timeout must be a whole number of seconds from 1 to 86400');
  });

  test('refuses to overwrite without --force, and checks its arguments', async () => {
    const base = ['--out', dir, '--server-id', '1', '--server-key', join(KEYS, 'signer-2.public.pem'), '--broker', 'mqtt://127.0.0.1:1883', '--partitions', join(ROOT, 'partitions.csv')];
    expect((await provision(base)).code).toBe(0);
    await expect(provision(base)).rejects.toMatchObject({ exitCode: 1 });
    expect((await provision([...base, '--force'])).code).toBe(0);
    await expect(provision([...base, '--force', '--matrix-rotation', '45'])).rejects.toThrow('--matrix-rotation');
    await expect(provision([...base, '--force', '--server-key', join(KEYS, 'signer-2.private.pem')])).rejects.toMatchObject({ exitCode: 2 });
  });
});
