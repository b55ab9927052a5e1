/**
 * The Node host adapters: stores (with a kill -9 atomicity check), config loading, downloader, updater,
 * presenter and the small helpers. The MQTT transport has its own file (node-host-mqtt.test.ts).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { parsePrivateKeyPem, parsePublicKeyPem } from '../crypto/keys.js';
import { loadDeviceConfig } from '../hosts/node/config.js';
import { HttpDownloader, isPrivateAddress } from '../hosts/node/downloader.js';
import { HostFileError, writeFileDurable } from '../hosts/node/durable.js';
import { consoleLog, createNodeHost, systemClock } from '../hosts/node/host.js';
import { TerminalPresenter } from '../hosts/node/presenter.js';
import { FileKeyStore, FileSequenceStore } from '../hosts/node/stores.js';
import { EXIT_RESTART, FileUpdater } from '../hosts/node/updater.js';
import { startHttpServer, type TestHttpServer } from './support/http-server.js';
import { freePort, makeTestPki } from './support/mosquitto.js';

const ROOT = path.resolve(__dirname, '..');
const KEYS = path.join(ROOT, 'test/data/srup-vectors/keys');
const signerPrivatePem = fs.readFileSync(path.join(KEYS, 'signer-1.private.pem'), 'utf8');
const signerPublicPem = fs.readFileSync(path.join(KEYS, 'signer-1.public.pem'), 'utf8');
const recipientPublicPem = fs.readFileSync(path.join(KEYS, 'recipient-1.public.pem'), 'utf8');
const privateKey = parsePrivateKeyPem(signerPrivatePem);
const serverKey = parsePublicKeyPem(recipientPublicPem);

const DEVICE = 0x0123456789abcdefn;
const SERVER = 0xfedcba9876543210n;

const tmpDirs: string[] = [];
function tmp(name: string): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `srup-${name}-`));
  tmpDirs.push(d);
  return d;
}
afterAll(() => { for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true }); });

class Sink extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}

// ------------------------------------------------------------------------------------------------ stores

describe('FileKeyStore', () => {
  test('round trip: what is set is there after reopening, ids as 16 hex digits, keys as PEM', () => {
    const dir = tmp('keys');
    const ks = FileKeyStore.create(dir, { deviceId: DEVICE, privateKey, serverId: SERVER, peers: new Map([[SERVER, serverKey]]) });
    ks.setPeerKey(0x42n, parsePublicKeyPem(signerPublicPem));
    const again = FileKeyStore.open(dir);
    expect(again.deviceId).toBe(DEVICE);
    expect(again.serverId()).toBe(SERVER);
    expect(again.privateKey.n).toBe(privateKey.n);
    expect(again.peerKey(SERVER)?.n).toBe(serverKey.n);
    expect(again.peerKey(0x42n)?.n).toBe(parsePublicKeyPem(signerPublicPem).n);
    expect(again.peerKey(0x43n)).toBeNull();
    const doc = JSON.parse(fs.readFileSync(path.join(dir, 'keys.json'), 'utf8'));
    expect(doc.deviceId).toBe('0123456789abcdef');
    expect(doc.serverId).toBe('fedcba9876543210');
    expect(Object.keys(doc.peers)).toEqual(['0000000000000042', 'fedcba9876543210']);
    expect(doc.privateKey).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(doc.peers['0000000000000042']).toMatch(/^-----BEGIN PUBLIC KEY-----\n/);

    again.setServerId(null);
    again.setPeerKey(SERVER, null);
    const third = FileKeyStore.open(dir);
    expect(third.serverId()).toBeNull();
    expect(third.peerKey(SERVER)).toBeNull();
    expect(third.peerKey(0x42n)).not.toBeNull();
  });

  test('a bad file is refused with its name and field', () => {
    const dir = tmp('badkeys');
    fs.writeFileSync(path.join(dir, 'keys.json'), JSON.stringify({ deviceId: 'xyz', privateKey: signerPrivatePem }));
    expect(() => FileKeyStore.open(dir)).toThrow(`${path.join(dir, 'keys.json')}: field "deviceId": must be 16 hex digits`);
    fs.writeFileSync(path.join(dir, 'keys.json'), JSON.stringify({ deviceId: '01', privateKey: 'nope' }));
    expect(() => FileKeyStore.open(dir)).toThrow(/field "privateKey"/);
    fs.writeFileSync(path.join(dir, 'keys.json'), '{"deviceId": ');
    expect(() => FileKeyStore.open(dir)).toThrow(/keys\.json: not valid JSON/);
  });
});

describe('FileSequenceStore', () => {
  test('round trip of counters (full u64 range), forget and the pending update', () => {
    const dir = tmp('seq');
    const s = FileSequenceStore.open(dir);
    expect(s.lastAccepted(SERVER)).toBe(0n);
    expect(s.pendingUpdate()).toBeNull();
    s.setLastAccepted(SERVER, 0xffffffffffffffffn);
    s.setLastSent(SERVER, 7n);
    s.setLastAccepted(0x1n, 3n);
    s.setPendingUpdate({ server: SERVER, token: new Uint8Array([0x54, 0x4f, 0x4b]), state: 'staged' });
    let r = FileSequenceStore.open(dir);
    expect(r.lastAccepted(SERVER)).toBe(0xffffffffffffffffn);
    expect(r.lastSent(SERVER)).toBe(7n);
    expect(r.lastAccepted(0x1n)).toBe(3n);
    expect(r.lastSent(0x1n)).toBe(0n);
    expect(r.pendingUpdate()).toEqual({ server: SERVER, token: new Uint8Array([0x54, 0x4f, 0x4b]), state: 'staged' });
    r.forget(SERVER);
    r.setPendingUpdate(null);
    r = FileSequenceStore.open(dir);
    expect(r.lastAccepted(SERVER)).toBe(0n);
    expect(r.lastSent(SERVER)).toBe(0n);
    expect(r.lastAccepted(0x1n)).toBe(3n);
    expect(r.pendingUpdate()).toBeNull();
    expect(fs.readFileSync(path.join(dir, 'sequences.json'), 'utf8'))
      .toBe('{"accepted":{"0000000000000001":"3"},"sent":{},"pending":null}');
  });

  test('values outside u64 are refused and leave the store as it was', () => {
    const s = FileSequenceStore.open(tmp('seqrange'));
    s.setLastAccepted(SERVER, 5n);
    expect(() => s.setLastAccepted(SERVER, 1n << 64n)).toThrow(RangeError);
    expect(() => s.setLastSent(SERVER, -1n)).toThrow(RangeError);
    expect(s.lastAccepted(SERVER)).toBe(5n);
  });

  test('a bad counter is refused with its file and field', () => {
    const dir = tmp('seqbad');
    fs.writeFileSync(path.join(dir, 'sequences.json'), '{"accepted":{"00000000000000aa":12}}');
    expect(() => FileSequenceStore.open(dir)).toThrow(/sequences\.json: field "accepted\.00000000000000aa": must be a decimal u64/);
  });

  test('200 counter updates over 5 peers keep the file small and hold the last value', () => {
    const s = FileSequenceStore.open(tmp('seqsize'));
    for (let p = 1n; p <= 4n; p++) s.setLastAccepted(p, 1n);
    for (let i = 2; i < 202; i++) s.setLastAccepted(SERVER, BigInt(i));
    expect(fs.statSync(s.file).size).toBeLessThan(300);
    expect(FileSequenceStore.open(path.dirname(s.file)).lastAccepted(SERVER)).toBe(201n);
  });

  test('killed at random moments while updating (24 times), the file always parses and never goes backwards', async () => {
    const dir = tmp('seqkill');
    const work = tmp('seqkill-child');
    const esbuild = await import('esbuild');
    const childFile = path.join(work, 'child.mjs');
    await esbuild.build({
      stdin: {
        contents: `
          import { FileSequenceStore } from ${JSON.stringify(path.join(ROOT, 'hosts/node/stores.ts'))};
          const s = FileSequenceStore.open(process.argv[2]);
          let n = s.lastAccepted(0x42n);
          // 'ready' once the first update of this run is durable: every round moves the counter at least once.
          for (let first = true; ; first = false) {
            n += 1n; s.setLastAccepted(0x42n, n); s.setLastSent(0x42n, n);
            if (first) process.stdout.write('ready\\n');
          }
        `,
        resolveDir: ROOT,
        loader: 'ts',
        sourcefile: 'counter-child.ts',
      },
      bundle: true,
      platform: 'node',
      format: 'esm',
      outfile: childFile,
      logLevel: 'silent',
    });
    let last = 0n;
    let lastSent = 0n;
    for (let round = 0; round < 24; round++) {
      const child = spawn(process.execPath, [childFile, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
      await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
      await new Promise((r) => setTimeout(r, 5 + ((round * 17) % 40))); // spread over the child's loop
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
      const s = FileSequenceStore.open(dir); // throws if the file were torn
      const accepted = s.lastAccepted(0x42n);
      const sent = s.lastSent(0x42n);
      expect(accepted >= last).toBe(true);
      expect(sent >= lastSent).toBe(true);
      expect(sent <= accepted).toBe(true); // the child sets accepted first, then sent
      last = accepted;
      lastSent = sent;
    }
    expect(last).toBeGreaterThanOrEqual(24n);
  });
});

describe('writeFileDurable', () => {
  test('replaces the file and leaves no temp file behind', () => {
    const dir = tmp('durable');
    const f = path.join(dir, 'x.json');
    writeFileDurable(f, 'one');
    writeFileDurable(f, new Uint8Array([116, 119, 111]));
    expect(fs.readFileSync(f, 'utf8')).toBe('two');
    expect(fs.readdirSync(dir)).toEqual(['x.json']);
  });
});

// ------------------------------------------------------------------------------------------------ config and host

function writeConfig(dir: string, device: Record<string, unknown>): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'device.json'), JSON.stringify(device));
  fs.writeFileSync(path.join(dir, 'private.pem'), signerPrivatePem);
  fs.writeFileSync(path.join(dir, 'server.pem'), recipientPublicPem);
}

const goodDevice = {
  id: '0123456789abcdef',
  serverId: 'fedcba9876543210',
  broker: 'mqtt://127.0.0.1:1',
  firmware: { name: 'srup-agent', version: '0.1.0' },
};

describe('device config', () => {
  test('a good directory loads, with defaults', () => {
    const dir = tmp('cfg');
    writeConfig(dir, goodDevice);
    fs.mkdirSync(path.join(dir, 'peers'));
    fs.writeFileSync(path.join(dir, 'peers', '0000000000000042.pem'), signerPublicPem);
    const c = loadDeviceConfig(dir);
    expect(c.deviceId).toBe(DEVICE);
    expect(c.serverId).toBe(SERVER);
    expect(c.brokerUrl).toBe('mqtt://127.0.0.1:1');
    expect(c.clientId).toBe('SRUP Client: 123456789abcdef');
    expect(c.firmware).toEqual({ name: 'srup-agent', version: '0.1.0' });
    expect(c.stateDir).toBe(path.join(dir, 'state'));
    expect(c.peers.get(SERVER)?.n).toBe(serverKey.n);
    expect(c.peers.get(0x42n)?.n).toBe(parsePublicKeyPem(signerPublicPem).n);
    expect(c.tls).toEqual({});
  });

  test('TLS files are read relative to the directory', () => {
    const dir = tmp('cfgtls');
    const pki = makeTestPki(path.join(dir, 'pki'));
    writeConfig(dir, { ...goodDevice, broker: 'mqtts://127.0.0.1:8883', tls: { ca: 'pki/ca.crt', cert: 'pki/client.crt', key: 'pki/client.key' } });
    const c = loadDeviceConfig(dir);
    expect(c.tls).toEqual({ ca: pki.ca, cert: pki.clientCert, key: pki.clientKey });
    fs.writeFileSync(path.join(dir, 'pki/client.key'), fs.readFileSync(path.join(dir, 'pki/server.key')));
    expect(() => loadDeviceConfig(dir)).toThrow(/client\.crt \/ .*client\.key: not a usable certificate and key pair/);
  });

  test.each([
    ['id', { ...goodDevice, id: 'device-1' }, /device\.json: field "id": must be the device id as 16 hex digits/],
    ['serverId', { ...goodDevice, serverId: 12 }, /device\.json: field "serverId"/],
    ['broker', { ...goodDevice, broker: 'http://x' }, /device\.json: field "broker"/],
    ['broker port', { ...goodDevice, broker: 'mqtt://127.0.0.1:99999' }, /device\.json: field "broker"/],
    ['broker host', { ...goodDevice, broker: 'mqtt://[::1' }, /device\.json: field "broker"/],
    ['firmware.version', { ...goodDevice, firmware: { name: 'x' } }, /device\.json: field "firmware\.version"/],
    ['tls.ca', { ...goodDevice, tls: { ca: 'nope.crt' } }, /nope\.crt: missing/],
  ])('a bad %s is named in the error', (_name, device, message) => {
    const dir = tmp('cfgbad');
    writeConfig(dir, device);
    expect(() => loadDeviceConfig(dir)).toThrow(message);
  });

  test('a CA file (broker or download) that holds no usable certificate is named at load', () => {
    const dir = tmp('cfgca');
    const pki = makeTestPki(path.join(dir, 'pki'));
    fs.writeFileSync(path.join(dir, 'junk.crt'), 'not a certificate\n');
    fs.writeFileSync(path.join(dir, 'broken.crt'), '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
    writeConfig(dir, { ...goodDevice, tls: { ca: 'junk.crt' } });
    expect(() => loadDeviceConfig(dir)).toThrow(new RegExp(`${path.join(dir, 'junk.crt')}: not a usable CA certificate`));
    writeConfig(dir, { ...goodDevice, downloadCa: 'broken.crt' });
    expect(() => loadDeviceConfig(dir)).toThrow(new RegExp(`${path.join(dir, 'broken.crt')}: not a usable CA certificate`));
    writeConfig(dir, { ...goodDevice, tls: { ca: 'pki/ca.crt' }, downloadCa: 'pki/ca.crt' });
    expect(loadDeviceConfig(dir).downloadCa).toBe(pki.ca);
  });

  test('missing and broken files are named', () => {
    const dir = tmp('cfgfiles');
    expect(() => loadDeviceConfig(dir)).toThrow(`${path.join(dir, 'device.json')}: missing`);
    writeConfig(dir, goodDevice);
    fs.writeFileSync(path.join(dir, 'private.pem'), 'not a key');
    expect(() => loadDeviceConfig(dir)).toThrow(new RegExp(`${path.join(dir, 'private.pem')}: `));
    fs.writeFileSync(path.join(dir, 'private.pem'), signerPrivatePem);
    fs.rmSync(path.join(dir, 'server.pem'));
    expect(() => loadDeviceConfig(dir)).toThrow(`${path.join(dir, 'server.pem')}: missing`);
    expect(() => loadDeviceConfig(dir)).toThrow(HostFileError);
  });

  test('createNodeHost seeds the key store once, then keeps it; another device is refused', async () => {
    const dir = tmp('host');
    writeConfig(dir, goodDevice);
    const out = new Sink();
    const host = createNodeHost(loadDeviceConfig(dir), { out, log: () => {} });
    expect(host.keys.deviceId).toBe(DEVICE);
    expect(host.keys.serverId()).toBe(SERVER);
    expect(host.keys.peerKey(SERVER)?.n).toBe(serverKey.n);
    expect(host.transport.isConnected).toBe(false);
    expect(host.updater.bootState()).toBe('normal');
    expect(host.random(16)).toHaveLength(16);
    host.keys.setServerId(null);
    await host.transport.close();
    const again = createNodeHost(loadDeviceConfig(dir), { out, log: () => {} });
    expect(again.keys.serverId()).toBeNull(); // the store is the truth after the first start
    await again.transport.close();
    writeConfig(dir, { ...goodDevice, id: '00000000000000ff' });
    expect(() => createNodeHost(loadDeviceConfig(dir), { out, log: () => {} }))
      .toThrow(/keys\.json: field "deviceId": belongs to device 0123456789abcdef, but device.json says 00000000000000ff/);
  });
});

describe('helpers', () => {
  test('consoleLog writes one JSON line per event, filtered by level', () => {
    const out = new Sink();
    const log = consoleLog({ stream: out, now: () => new Date(0) });
    log('debug', 'hidden');
    log('info', 'mqtt_connected', { sessionPresent: true, event: 'x' });
    log('error', 'oops');
    expect(out.text).toBe(
      '{"time":"1970-01-01T00:00:00.000Z","level":"info","event":"mqtt_connected","sessionPresent":true,"_event":"x"}\n' +
      '{"time":"1970-01-01T00:00:00.000Z","level":"error","event":"oops"}\n');
    const text = new Sink();
    consoleLog({ stream: text, format: 'text', now: () => new Date(0) })('warn', 'slow', { ms: 3, url: 'a b' });
    expect(text.text).toBe('1970-01-01T00:00:00.000Z WARN  slow ms=3 url="a b"\n');
  });

  test('systemClock tells time and fires timers', async () => {
    const t0 = systemClock.now();
    expect(Math.abs(t0 - Date.now())).toBeLessThan(1000);
    await new Promise<void>((r) => systemClock.setTimeout(r, 5));
    const h = systemClock.setTimeout(() => { throw new Error('must not fire'); }, 5);
    systemClock.clearTimeout(h);
    await new Promise((r) => setTimeout(r, 20));
    expect(systemClock.now()).toBeGreaterThan(t0);
  });
});

// ------------------------------------------------------------------------------------------------ downloader

describe('HttpDownloader', () => {
  let srv: TestHttpServer;
  const image = new Uint8Array(300000).map((_, i) => (i * 31 + 7) & 255);
  beforeAll(async () => {
    srv = await startHttpServer();
    srv.serve('/fw.bin', image, { chunk: 16384 });
    srv.serve('/gone', image, { fail: 404 });
    srv.serve('/broken', image, { fail: 500 });
    srv.serve('/cut', image, { cutAfter: 150000, chunk: 16384 });
    srv.serve('/chunked', image, { chunked: true, chunk: 50000 });
    srv.serve('/slow', image, { delayMs: 500 });
    srv.redirect('/old', '/fw.bin', 301);
    srv.redirect('/loop', '/loop', 302);
  });
  afterAll(async () => { await srv.close(); });

  const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b)); // toEqual is slow on 300 kB
  const collect = async (url: string, d = new HttpDownloader()) => {
    const chunks: Uint8Array[] = [];
    const result = await d.download(url, (c) => { chunks.push(c.slice()); });
    const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    let off = 0;
    for (const c of chunks) { all.set(c, off); off += c.length; }
    return { result, chunks, all };
  };

  test('200: the body arrives in order, in several plain Uint8Array chunks', async () => {
    const seen: Uint8Array[] = [];
    const { result, chunks, all } = await collect(srv.url('/fw.bin'));
    await new HttpDownloader().download(srv.url('/fw.bin'), (c) => { seen.push(c); });
    expect(result).toEqual({ ok: true, bytes: 300000 });
    expect(same(all, image)).toBe(true);
    expect(chunks.length).toBeGreaterThan(4);
    expect(Math.max(...chunks.map((c) => c.length))).toBeLessThanOrEqual(65536);
    expect(seen.every((c) => Object.getPrototypeOf(c) === Uint8Array.prototype)).toBe(true);
  });

  test('chunked transfer encoding works too', async () => {
    const { result, all } = await collect(srv.url('/chunked'));
    expect(result).toEqual({ ok: true, bytes: 300000 });
    expect(same(all, image)).toBe(true);
  });

  test('404 and 500 are http_error with the status', async () => {
    expect((await collect(srv.url('/gone'))).result).toEqual({ ok: false, error: 'http_error', status: 404 });
    expect((await collect(srv.url('/broken'))).result).toEqual({ ok: false, error: 'http_error', status: 500 });
    expect((await collect(srv.url('/nothing-here'))).result).toEqual({ ok: false, error: 'http_error', status: 404 });
  });

  test('connection refused is unreachable', async () => {
    const port = await freePort();
    const { result } = await collect(`http://127.0.0.1:${port}/fw.bin`);
    expect(result).toMatchObject({ ok: false, error: 'unreachable' });
    expect((result as { message: string }).message).toMatch(/ECONNREFUSED/);
  });

  test('a body cut off half way is a file error, after the first half was streamed', async () => {
    const { result, all } = await collect(srv.url('/cut'));
    expect(result).toMatchObject({ ok: false, error: 'file' });
    expect(all.length).toBe(150000);
  });

  test('a sink that throws stops the download with a file error', async () => {
    let calls = 0;
    const result = await new HttpDownloader().download(srv.url('/fw.bin'), () => {
      if (++calls === 2) throw new Error('flash full');
    });
    expect(result).toEqual({ ok: false, error: 'file', message: 'sink refused a chunk: flash full' });
    expect(calls).toBe(2);
  });

  test('redirects are followed, up to 5', async () => {
    const { result, all } = await collect(srv.url('/old'));
    expect(result).toEqual({ ok: true, bytes: 300000 });
    expect(same(all, image)).toBe(true);
    const before = srv.requests.filter((r) => r.path === '/loop').length;
    expect((await collect(srv.url('/loop'))).result).toEqual({ ok: false, error: 'http_error', status: 302 });
    expect(srv.requests.filter((r) => r.path === '/loop').length - before).toBe(6);
  });

  test('no answer within the idle timeout is unreachable; abort() resolves as aborted', async () => {
    const { result } = await collect(srv.url('/slow'), new HttpDownloader({ idleTimeoutMs: 100 }));
    expect(result).toMatchObject({ ok: false, error: 'unreachable' });
    const d = new HttpDownloader();
    const p = d.download(srv.url('/slow'), () => {});
    setTimeout(() => d.abort(), 50);
    expect(await p).toEqual({ ok: false, error: 'aborted' });
  });

  test('an unsupported scheme is unreachable', async () => {
    expect((await collect('ftp://127.0.0.1/x')).result).toMatchObject({ ok: false, error: 'unreachable' });
  });

  test('the test server answers Range requests with 206 and the slice', async () => {
    const get = (range: string) => new Promise<{ status: number; body: Buffer; cr: string | undefined }>((resolve, reject) => {
      http.get(srv.url('/fw.bin'), { headers: { range } }, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts), cr: res.headers['content-range'] }));
      }).on('error', reject);
    });
    const mid = await get('bytes=100-199');
    expect(mid.status).toBe(206);
    expect(mid.cr).toBe('bytes 100-199/300000');
    expect(same(mid.body, image.subarray(100, 200))).toBe(true);
    const tail = await get('bytes=-10');
    expect(same(tail.body, image.subarray(299990))).toBe(true);
    expect((await get('bytes=300000-')).status).toBe(416);
  });

  test('a body larger than maxBytes is refused: declared up front, or as an endless stream stops at the cap', async () => {
    const declared = await collect(srv.url('/fw.bin'), new HttpDownloader({ maxBytes: 100000 }));
    expect(declared.result).toMatchObject({ ok: false, error: 'file' });
    expect(declared.all.length).toBe(0);
    const chunked = await collect(srv.url('/chunked'), new HttpDownloader({ maxBytes: 100000 }));
    expect(chunked.result).toMatchObject({ ok: false, error: 'file' });
    expect(chunked.all.length).toBeLessThanOrEqual(100000);
    // A server that never stops sending, with no Content-Length.
    const piece = Buffer.alloc(65536, 0x5a);
    const endless = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const pump = () => { while (!res.destroyed && res.write(piece)); if (!res.destroyed) res.once('drain', pump); };
      pump();
    });
    await new Promise<void>((r) => endless.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(endless.address() as AddressInfo).port}/forever`;
      const r = await collect(url, new HttpDownloader({ maxBytes: 1 << 20 }));
      expect(r.result).toMatchObject({ ok: false, error: 'file' });
      expect(r.all.length).toBeLessThanOrEqual(1 << 20);
      expect(r.all.length).toBeGreaterThan((1 << 20) - 65536 * 2);
    } finally {
      endless.closeAllConnections();
      await new Promise((r) => endless.close(r));
    }
  });

  test('a server that drips its body slowly is cut off at maxDurationMs, idle timeout or not', async () => {
    const drip = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const t = setInterval(() => { if (res.destroyed) clearInterval(t); else res.write(Buffer.of(0x5a)); }, 20);
      res.on('close', () => clearInterval(t));
    });
    await new Promise<void>((r) => drip.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(drip.address() as AddressInfo).port}/drip`;
      const started = Date.now();
      const r = await collect(url, new HttpDownloader({ idleTimeoutMs: 1000, maxDurationMs: 300 }));
      expect(r.result).toMatchObject({ ok: false, error: 'file' });
      expect(r.all.length).toBeGreaterThan(0);
      expect(Date.now() - started).toBeLessThan(5000);
    } finally {
      drip.closeAllConnections();
      await new Promise((r) => drip.close(r));
    }
  });

  test('a redirect from https to plain http is not followed', async () => {
    const pki = makeTestPki(path.join(tmp('httpsdowngrade'), 'pki'));
    const before = srv.requests.filter((r) => r.path === '/fw.bin').length;
    const server = https.createServer({ cert: fs.readFileSync(pki.serverCertFile), key: fs.readFileSync(pki.serverKeyFile) },
      (_req, res) => { res.writeHead(302, { location: srv.url('/fw.bin'), 'content-length': 0 }); res.end(); });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/fw`;
      const r = await collect(url, new HttpDownloader({ ca: pki.ca }));
      expect(r.result).toEqual({ ok: false, error: 'http_error', status: 302 });
      expect(r.all.length).toBe(0);
      expect(srv.requests.filter((q) => q.path === '/fw.bin').length).toBe(before);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  test('a server that drips a byte every 20 ms is cut off after one stall window, long before maxDurationMs', async () => {
    const drip = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const t = setInterval(() => { if (res.destroyed) clearInterval(t); else res.write(Buffer.of(0x5a)); }, 20);
      res.on('close', () => clearInterval(t));
    });
    await new Promise<void>((r) => drip.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(drip.address() as AddressInfo).port}/drip`;
      const r = await collect(url, new HttpDownloader({ stallWindowMs: 300, minBytesPerWindow: 100, maxDurationMs: 3_600_000 }));
      expect(r.result).toMatchObject({ ok: false, error: 'file', message: expect.stringMatching(/^stalled: \d+ bytes in 300 ms$/) });
      expect(r.all.length).toBeGreaterThan(0);
      expect(r.all.length).toBeLessThan(100);
    } finally {
      drip.closeAllConnections();
      await new Promise((r) => drip.close(r));
    }
  });

  test('a redirect from a public URL into private addresses, or to another scheme, is not followed', async () => {
    // 127.0.0.2 plays a public file server here; everything else private keeps its meaning.
    const publicHere = (a: string) => a !== '127.0.0.2' && isPrivateAddress(a);
    let location = '';
    const server = http.createServer((_req, res) => { res.writeHead(302, { location, 'content-length': 0 }); res.end(); });
    await new Promise<void>((r) => server.listen(0, '127.0.0.2', r));
    const port = (server.address() as AddressInfo).port;
    const before = srv.requests.filter((q) => q.path === '/fw.bin').length;
    try {
      for (const to of [srv.url('/fw.bin'), srv.url('/fw.bin').replace('127.0.0.1', 'localhost'), 'http://[::1]:1/fw.bin', 'http://169.254.169.254/latest', 'http://10.1.2.3/x', 'https://127.0.0.2:1/fw.bin']) {
        location = to;
        const r = await collect(`http://127.0.0.2:${port}/fw`, new HttpDownloader({ privateAddress: publicHere }));
        expect([to, r.result]).toEqual([to, { ok: false, error: 'http_error', status: 302 }]);
      }
      expect(srv.requests.filter((q) => q.path === '/fw.bin').length).toBe(before);
      // A private URL may redirect within private addresses.
      location = srv.url('/fw.bin');
      const ok = await collect(`http://127.0.0.2:${port}/fw`, new HttpDownloader());
      expect(ok.result).toEqual({ ok: true, bytes: 300000 });
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
    expect([isPrivateAddress('192.168.1.1'), isPrivateAddress('172.20.0.1'), isPrivateAddress('100.64.0.1'), isPrivateAddress('fe80::1'), isPrivateAddress('fd00::1'), isPrivateAddress('::ffff:10.0.0.1')]).toEqual([true, true, true, true, true, true]);
    expect([isPrivateAddress('8.8.8.8'), isPrivateAddress('172.32.0.1'), isPrivateAddress('2001:db8::1'), isPrivateAddress('example.com')]).toEqual([false, false, false, false]);
  });

  test('https with a private CA', async () => {
    const pki = makeTestPki(path.join(tmp('httpspki'), 'pki'));
    const server = https.createServer({ cert: fs.readFileSync(pki.serverCertFile), key: fs.readFileSync(pki.serverKeyFile) },
      (_req, res) => { res.writeHead(200, { 'content-length': 5 }); res.end('hello'); });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/fw`;
    try {
      const ok = await collect(url, new HttpDownloader({ ca: pki.ca }));
      expect(ok.result).toEqual({ ok: true, bytes: 5 });
      expect(new TextDecoder().decode(ok.all)).toBe('hello');
      const untrusted = await collect(url, new HttpDownloader());
      expect(untrusted.result).toMatchObject({ ok: false, error: 'unreachable' });
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});

// ------------------------------------------------------------------------------------------------ updater

describe('FileUpdater', () => {
  const img = (n: number, seed: number) => new Uint8Array(n).map((_, i) => (i + seed) & 255);
  const stage = (u: FileUpdater, bytes: Uint8Array) => {
    u.begin();
    u.write(bytes.subarray(0, 1000));
    u.write(bytes.subarray(1000));
    u.finish();
  };

  test('a fresh device runs slot a, normal', () => {
    const u = new FileUpdater({ dir: tmp('upd0'), restart: () => {} });
    expect(u.bootState()).toBe('normal');
    expect(u.otadata()).toMatchObject({ active: 'a', next: 'a', pendingVerify: false });
    expect(u.confirm()).toBe(true);
  });

  test('activate switches slots and restarts; the new image is unconfirmed until confirm()', () => {
    const dir = tmp('upd1');
    let restarts = 0;
    const boot = () => new FileUpdater({ dir, restart: () => { restarts++; } });
    const u = boot();
    const image = img(5000, 3);
    stage(u, image);
    expect(fs.readFileSync(path.join(dir, 'slot-b.bin'))).toEqual(Buffer.from(image));
    u.activate();
    expect(restarts).toBe(1);
    expect(u.otadata()).toMatchObject({ active: 'a', next: 'b' });

    const after = boot();
    expect(after.bootState()).toBe('unconfirmed');
    expect(after.activeImage()).toBe(path.join(dir, 'slot-b.bin'));
    expect(after.confirm()).toBe(true);
    expect(after.bootState()).toBe('normal');

    const later = boot();
    expect(later.bootState()).toBe('normal');
    expect(later.otadata()).toMatchObject({ active: 'b', next: 'b', pendingVerify: false });
    // the next update goes to slot a
    stage(later, img(10, 9));
    expect(later.otadata().ready).toBe('a');
  });

  test('restarting again without confirm rolls back to the previous slot', () => {
    const dir = tmp('upd2');
    const boot = () => new FileUpdater({ dir, restart: () => {} });
    const u = boot();
    stage(u, img(100, 1));
    u.activate();
    expect(boot().bootState()).toBe('unconfirmed'); // first start of the new image; it dies before confirming
    const second = boot();
    expect(second.bootState()).toBe('rolled_back');
    expect(second.otadata()).toMatchObject({ active: 'a', next: 'a', pendingVerify: false });
    expect(second.confirm()).toBe(false);
    expect(boot().bootState()).toBe('rolled_back'); // remembered until the next update begins
    const third = boot();
    third.begin();
    third.abort();
    expect(third.bootState()).toBe('rolled_back');
    expect(boot().bootState()).toBe('normal');
  });

  test('no new update begins while the running image is unconfirmed (its rollback target is in the other slot)', () => {
    const dir = tmp('upd6');
    const boot = () => new FileUpdater({ dir, restart: () => {} });
    const old = img(100, 7);
    const u0 = boot();
    fs.writeFileSync(path.join(dir, 'slot-a.bin'), old); // the image running now
    stage(u0, img(100, 1));
    u0.activate();
    const u = boot();
    expect(u.bootState()).toBe('unconfirmed');
    expect(() => u.begin()).toThrow('the running image is pending verify');
    expect(fs.readFileSync(path.join(dir, 'slot-a.bin'))).toEqual(Buffer.from(old)); // the rollback target, untouched
    expect(u.confirm()).toBe(true);
    stage(u, img(50, 2));
    expect(u.otadata().ready).toBe('a');
  });

  test('maxUnconfirmedBoots allows more starts before the rollback', () => {
    const dir = tmp('upd3');
    const boot = () => new FileUpdater({ dir, restart: () => {}, maxUnconfirmedBoots: 2 });
    const u = boot();
    stage(u, img(100, 1));
    u.activate();
    expect(boot().bootState()).toBe('unconfirmed');
    expect(boot().bootState()).toBe('unconfirmed');
    expect(boot().bootState()).toBe('rolled_back');
  });

  test('activate needs a finished image; abort discards it', () => {
    const dir = tmp('upd4');
    const u = new FileUpdater({ dir, restart: () => { throw new Error('must not restart'); } });
    expect(() => u.activate()).toThrow('no finished image');
    u.begin();
    u.write(img(10, 0));
    expect(() => u.activate()).toThrow('no finished image');
    u.abort();
    expect(fs.existsSync(path.join(dir, 'slot-b.bin'))).toBe(false);
    stage(u, img(10, 0));
    u.abort();
    expect(() => u.activate()).toThrow('no finished image');
    expect(() => u.write(img(1, 0))).toThrow('write() without begin()');
  });

  test('the default restart exits the process with EXIT_RESTART', () => {
    const exit = jest.spyOn(process, 'exit').mockImplementation((() => undefined) as never);
    try {
      const u = new FileUpdater({ dir: tmp('upd5') });
      stage(u, img(10, 0));
      u.activate();
      expect(exit).toHaveBeenCalledWith(EXIT_RESTART);
      expect(EXIT_RESTART).toBe(75);
    } finally {
      exit.mockRestore();
    }
  });
});

// ------------------------------------------------------------------------------------------------ presenter

describe('TerminalPresenter', () => {
  const ESC = '\u001b';
  const secret = new TextEncoder().encode('0123456789abcdef0123456789abcdef');
  const cell = (r: number, g: number, b: number) => `${ESC}[48;2;${r};${g};${b}m  `;
  const C = cell(0, 255, 255), R = cell(255, 0, 0), Y = cell(255, 255, 0), B = cell(0, 0, 255);

  test('draws the grid in 24-bit colour, as letters, and the blink code', () => {
    const out = new Sink();
    const p = new TerminalPresenter({ out, animate: false });
    p.showChallenge(secret);
    // bytes 01 23 -> cells 0 0 0 1 | 0 2 0 3 -> cyan cyan cyan red cyan yellow cyan blue
    expect(out.text).toContain(`${C}${C}${C}${R}${C}${Y}${C}${B}${ESC}[0m\n`);
    expect(out.text).toContain('C C C R C Y C B\n');
    expect(out.text).toContain('Blink code: 1 1 1 2 1 3 1 4 2 1\n');
    expect(out.text.split(`${ESC}[0m\n`).length - 1).toBe(8);
    p.clearChallenge();
    expect(out.text.endsWith('Join challenge cleared\n')).toBe(true);
  });

  test('plays the blink code on an LED cell and stops on clear', () => {
    const out = new Sink();
    const timers: Array<{ fn: () => void; ms: number; live: boolean }> = [];
    const clock = {
      setTimeout: (fn: () => void, ms: number) => { const t = { fn, ms, live: true }; timers.push(t); return t; },
      clearTimeout: (h: unknown) => { (h as { live: boolean }).live = false; },
    };
    const p = new TerminalPresenter({ out, animate: true, clock });
    p.showChallenge(secret);
    const on = `\rLED ${ESC}[48;2;255;255;255m  ${ESC}[0m`;
    const off = `\rLED ${ESC}[48;2;40;40;40m  ${ESC}[0m`;
    expect(out.text.endsWith(on)).toBe(true);
    expect(timers.map((t) => t.ms)).toEqual([250]);
    timers[0].fn();
    expect(out.text.endsWith(off)).toBe(true);
    expect(timers[1].ms).toBe(1000); // digit 1 is one flash, then the gap between digits
    p.clearChallenge();
    expect(timers[1].live).toBe(false);
  });

  test('a secret that is not 32 hex characters is refused without throwing', () => {
    const out = new Sink();
    const events: string[] = [];
    const p = new TerminalPresenter({ out, animate: false, log: (_l, e) => events.push(e) });
    expect(() => p.showChallenge(new TextEncoder().encode('xyz'))).not.toThrow();
    expect(out.text).toContain('cannot show it');
    expect(events).toEqual(['challenge_not_shown']);
  });
});
