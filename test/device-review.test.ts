/**
 * Device side, hosts/node and `srup device init`: what a failure half way leaves on disk.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateRsaKeyPair } from '../hosts/node/crypto.js';
import { writeFileDurable } from '../hosts/node/durable.js';
import { FileUpdater } from '../hosts/node/updater.js';
import { initDeviceDir, watchSupervisor, type SupervisedProcess } from '../tools/commands/device.js';
import { loadDeviceConfig } from '../hosts/node/config.js';

const tmpDirs: string[] = [];
function tmp(name: string): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `srup-review-${name}-`));
  tmpDirs.push(d);
  return d;
}
afterAll(() => { for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true }); });
afterEach(() => { jest.restoreAllMocks(); });

describe('srup device init', () => {
  const server = generateRsaKeyPair(2048);
  const device = generateRsaKeyPair(2048);
  const base = (out: string) => ({
    out,
    serverId: 0x5e12d3c4b5a69788n,
    serverKeyPem: server.publicPem,
    broker: 'mqtt://127.0.0.1:1883',
    keyPair: device,
  });

  test('--force that fails half way (a missing --ca file) keeps the old identity and its state', () => {
    const out = tmp('init');
    const first = initDeviceDir({ ...base(out), deviceId: 0x1111n });
    const state = path.join(out, 'state');
    fs.mkdirSync(state);
    fs.writeFileSync(path.join(state, 'sequences.json'), '{"accepted":{"5e12d3c4b5a69788":"41"},"sent":{},"pending":null}');
    expect(() => initDeviceDir({ ...base(out), deviceId: 0x2222n, force: true, caFile: path.join(out, 'no-such-ca.crt') }))
      .toThrow(/no-such-ca\.crt/);
    // The old identity is still configured: its counters must still be there, or it would start from 0 again.
    expect(JSON.parse(fs.readFileSync(path.join(out, 'device.json'), 'utf8')).id).toBe('0000000000001111');
    expect(fs.readFileSync(path.join(state, 'sequences.json'), 'utf8')).toContain('"41"');
    expect(first.deviceId).toBe(0x1111n);
    // A --force that succeeds starts the new identity with a clean state.
    initDeviceDir({ ...base(out), deviceId: 0x2222n, force: true });
    expect(JSON.parse(fs.readFileSync(path.join(out, 'device.json'), 'utf8')).id).toBe('0000000000002222');
    expect(fs.existsSync(state)).toBe(false);
  });

  test('every file it writes is made durable (fsync) with its mode', () => {
    const out = tmp('initsync');
    const ca = path.join(tmp('initsrc'), 'broker-ca.crt');
    fs.writeFileSync(ca, 'ca text\n');
    const synced = jest.spyOn(fs, 'fsyncSync');
    initDeviceDir({ ...base(out), deviceId: 0x3333n, caFile: ca });
    // 5 files, each: the file and its directory.
    expect(synced.mock.calls.length).toBeGreaterThanOrEqual(10);
    const mode = (f: string) => fs.statSync(path.join(out, f)).mode & 0o777;
    expect([mode('private.pem'), mode('server.pem'), mode('device-public.pem'), mode('device.json'), mode('ca.crt')])
      .toEqual([0o600, 0o644, 0o644, 0o600, 0o644]);
    expect(fs.readFileSync(path.join(out, 'ca.crt'), 'utf8')).toBe('ca text\n');
    expect(fs.readdirSync(out).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });
});

describe('srup device init: secrets and settings', () => {
  const server = generateRsaKeyPair(2048);
  const device = generateRsaKeyPair(2048);
  const base = (out: string) => ({ out, serverId: 0x5e12n, serverKeyPem: server.publicPem, broker: 'mqtt://127.0.0.1:1883', keyPair: device, deviceId: 0x4444n });

  test('device.json holds the broker user and password and is written 0600; the join timeout is read back', () => {
    const out = tmp('initsecret');
    initDeviceDir({ ...base(out), username: '4444', password: 's3cret', joinTimeoutSeconds: 300 });
    expect(fs.statSync(path.join(out, 'device.json')).mode & 0o777).toBe(0o600);
    const c = loadDeviceConfig(out, {});
    expect([c.username, c.password, c.joinTimeoutMs]).toEqual(['4444', 's3cret', 300_000]);
  });

  test('the broker password comes from passwordFile, or from SRUP_BROKER_PASSWORD when device.json has none', () => {
    const out = tmp('initpwfile');
    initDeviceDir(base(out));
    expect(loadDeviceConfig(out, {}).password).toBeUndefined();
    expect(loadDeviceConfig(out, { SRUP_BROKER_PASSWORD: 'from-env' }).password).toBe('from-env');
    const j = JSON.parse(fs.readFileSync(path.join(out, 'device.json'), 'utf8'));
    fs.writeFileSync(path.join(out, 'broker-password'), 'from-file\n', { mode: 0o600 });
    fs.writeFileSync(path.join(out, 'device.json'), JSON.stringify({ ...j, passwordFile: 'broker-password' }));
    expect(loadDeviceConfig(out, { SRUP_BROKER_PASSWORD: 'from-env' }).password).toBe('from-file');
    fs.writeFileSync(path.join(out, 'device.json'), JSON.stringify({ ...j, passwordFile: 'broker-password', password: 'x' }));
    expect(() => loadDeviceConfig(out, {})).toThrow(/passwordFile.*give password or passwordFile, not both/);
    fs.writeFileSync(path.join(out, 'device.json'), JSON.stringify({ ...j, joinTimeoutSeconds: 0 }));
    expect(() => loadDeviceConfig(out, {})).toThrow(/joinTimeoutSeconds/);
  });
});

describe('the device process under a supervisor', () => {
  const proc = (p: Partial<SupervisedProcess>) => {
    const once = jest.fn();
    return { p: { once, ...p } as SupervisedProcess, once };
  };

  test('a supervisor killed while starting the device (channel already null) stops the device instead of throwing', () => {
    const stop = jest.fn();
    const { p } = proc({ channel: null, connected: false, send: () => true });
    expect(() => watchSupervisor(p, stop)).not.toThrow();
    expect(stop.mock.calls).toEqual([['supervisor_gone']]);
  });

  test('a live channel is unref\'d and watched; no IPC at all is left alone', () => {
    const stop = jest.fn();
    const unref = jest.fn();
    const live = proc({ channel: { unref }, connected: true, send: () => true });
    watchSupervisor(live.p, stop);
    expect(unref).toHaveBeenCalledTimes(1);
    expect(live.once.mock.calls.map((c) => c[0])).toEqual(['disconnect']);
    live.once.mock.calls[0][1]();
    expect(stop.mock.calls).toEqual([['supervisor_gone']]);
    const none = proc({});
    watchSupervisor(none.p, stop);
    expect(stop).toHaveBeenCalledTimes(1);
    expect(none.once).not.toHaveBeenCalled();
  });
});

describe('writeFileDurable', () => {
  test('a write that fails leaves the old file and no temp file', () => {
    const dir = tmp('durable');
    const file = path.join(dir, 'x.json');
    fs.mkdirSync(file); // the rename onto it fails
    expect(() => writeFileDurable(file, '{}')).toThrow();
    expect(fs.readdirSync(dir)).toEqual(['x.json']);
  });
});

describe('FileUpdater', () => {
  test('a restart that throws undoes the switch: the next start runs the old image, the new one still ready', () => {
    const dir = tmp('upd');
    const u = new FileUpdater({ dir, restart: () => { throw new Error('no supervisor'); } });
    u.begin();
    u.write(new Uint8Array([1, 2, 3]));
    u.finish();
    expect(() => u.activate()).toThrow('no supervisor');
    expect(u.otadata()).toMatchObject({ active: 'a', next: 'a', ready: 'b' });
    const again = new FileUpdater({ dir, restart: () => {} });
    expect(again.bootState()).toBe('normal');
    expect(again.otadata()).toMatchObject({ active: 'a', next: 'a', ready: 'b', pendingVerify: false });
  });
});
