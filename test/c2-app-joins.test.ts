/**
 * Join decisions through the C2 application's API: observed joins (the observer's verdict decides, the console
 * shows the pending join with its observer meanwhile), refused human-moderated joins, simple joins held for the
 * operator, deregistration, and registering a device from the provisioning JSON with the CLI; then an initiate
 * timeout, a TLS broker with a client certificate, logging out, and registering a device while no server runs.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { idToHex } from '../hosts/node/durable.js';
import { main } from '../tools/srup.js';
import { generateRsaKeyPair } from '../hosts/node/crypto.js';
import { findMosquitto } from './support/mosquitto.js';
import { login, request, startStack, until, type Stack } from './support/browser.js';

const describeIf = findMosquitto() ? describe : describe.skip;

describeIf('C2 joins through the API', () => {
  let stack: Stack;
  let auth: Record<string, string>;
  const api = (method: string, p: string, json?: unknown) => request(stack.app.url, method, p, { headers: auth, json });

  beforeAll(async () => {
    stack = await startStack({ devices: 4, observers: { delayMs: 600 }, app: { simpleJoins: 'manual' } });
    auth = { Authorization: `Bearer ${fs.readFileSync(path.join(stack.dir, 'c2', 'cli-token'), 'utf8').trim()}` };
  }, 60000);

  afterAll(async () => {
    await stack?.stop();
  });

  test('with --simple-joins manual a simple join waits for the operator, without a challenge', async () => {
    const d = stack.devices[0];
    const outcome = d.join('simple');
    const j = await until('pending', async () => ((await api('GET', '/api/joins')).body.joins as { id: string; joinKind: string; challenge: unknown }[]).find((x) => x.id === idToHex(d.id)));
    expect(j).toMatchObject({ joinKind: 'simple', challenge: null });
    expect((await api('POST', `/api/devices/${idToHex(d.id)}/approve`, {})).status).toBe(200);
    expect(await outcome).toBe('joined');
    expect((await api('POST', `/api/devices/${idToHex(d.id)}/approve`, {})).status).toBe(409);
  });

  test('an observed join: pending with its observer, then decided by the observer\'s verdict (0x60 → joined)', async () => {
    const observer = stack.devices[0];
    const joining = stack.devices[1];
    const outcome = joining.join('observed', observer.id);
    const j = await until('pending observed join', async () => ((await api('GET', '/api/joins')).body.joins as { id: string; joinKind: string; observer: string | null; challenge: { grid: number[] } | null }[]).find((x) => x.id === idToHex(joining.id) && x.challenge !== null));
    expect(j).toMatchObject({ joinKind: 'observed', observer: idToHex(observer.id) });
    // The console shows what the observer is asked to see: the joining device's own picture.
    expect(j.challenge!.grid).toEqual((await until('shown', () => joining.presenter.current)).grid);
    expect(await outcome).toBe('joined');
    const audit = (await api('GET', `/api/devices/${idToHex(observer.id)}`)).body.audit as { type: string; status: number | null }[];
    expect(audit.map((a) => `${a.type}${a.status !== null ? ' ' + a.status : ''}`)).toEqual(expect.arrayContaining(['observation_request', 'response 96']));
  });

  test('a refused human-moderated join: the device hears 0x5E and stays out', async () => {
    const d = stack.devices[2];
    const outcome = d.join('human');
    await until('challenge', () => d.presenter.current);
    await until('pending', async () => ((await api('GET', '/api/joins')).body.joins as { id: string }[]).some((x) => x.id === idToHex(d.id)));
    expect((await api('POST', `/api/devices/${idToHex(d.id)}/refuse`, {})).status).toBe(200);
    expect(await outcome).toBe('refused');
    expect(stack.app.registry.device(d.id)?.state).toBe('refused');
    expect((await api('POST', `/api/devices/${idToHex(d.id)}/action`, { actionId: 1 })).status).toBe(409);
  });

  test('a pending human-moderated join survives a server restart: same challenge, still approvable', async () => {
    const d = stack.devices[3];
    const outcome = d.join('human');
    const shown = await until('challenge', () => d.presenter.current);
    await until('pending', async () => ((await api('GET', '/api/joins')).body.joins as { id: string; challenge: unknown }[]).some((x) => x.id === idToHex(d.id) && x.challenge !== null));
    await stack.restartApp();
    const j = ((await api('GET', '/api/joins')).body.joins as { id: string; challenge: { grid: number[]; blink: string } }[]).find((x) => x.id === idToHex(d.id));
    expect(j?.challenge.grid).toEqual(shown.grid);
    expect(j?.challenge.blink).toBe(shown.blink);
    expect((await api('POST', `/api/devices/${idToHex(d.id)}/approve`, {})).status).toBe(200);
    expect(await outcome).toBe('joined');
  });

  test('deregister: the device leaves and no longer takes commands', async () => {
    const d = stack.devices[1];
    const id = idToHex(d.id);
    expect((await api('POST', `/api/devices/${id}/deregister`, {})).status).toBe(200);
    expect(stack.app.registry.device(d.id)?.state).toBe('deregistered');
    await until('the device dropped the server', () => d.serverId === null);
    const r = await api('POST', `/api/devices/${id}/id`, {});
    expect(r.status).toBe(409);
    expect(r.body.reason).toBe('not_joined');
  });

  test('add-device takes the provisioning JSON; bad ids and keys are refused', async () => {
    const pair = generateRsaKeyPair(2048);
    const file = path.join(stack.dir, 'device.json');
    fs.writeFileSync(file, JSON.stringify({ id: '4a0f9c3e12d54b77', publicKey: pair.publicPem, server: idToHex(stack.app.identity.id), broker: 'mqtts://x:8883' }));
    let out = '';
    const stdout = new Writable({ write(c, _e, cb) { out += c.toString(); cb(); } });
    const code = await main(['c2', 'add-device', file, '--data', path.join(stack.dir, 'c2'), '--label', 'hall', '--palette', 'reference'], { stdout: stdout as never, stderr: stdout as never });
    expect(code).toBe(0);
    expect(out).toBe('device 4a0f9c3e12d54b77 registered (provisioned)\n');
    const d = (await api('GET', '/api/devices/4a0f9c3e12d54b77')).body;
    expect(d).toMatchObject({ id: '4a0f9c3e12d54b77', state: 'provisioned', label: 'hall', palette: 'reference' });
    expect((await api('POST', '/api/devices', { id: 'xyz', publicKey: pair.publicPem })).status).toBe(400);
    expect((await api('POST', '/api/devices', { id: '12', publicKey: 'not a key' })).status).toBe(400);
    expect((await api('POST', '/api/devices', { id: '12', publicKey: pair.publicPem, palette: 'neon' })).status).toBe(400);
  });
});

describeIf('C2 application: timeouts, TLS, logout, offline registration', () => {
  test('a device that never answers: the campaign shows initiate_timeout', async () => {
    const stack = await startStack({ devices: 1, app: { initiateTimeoutMs: 400 } });
    try {
      const d = stack.devices[0];
      expect(await d.join('simple')).toBe('joined');
      await d.close();
      const c = await stack.app.campaigns.create({ url: 'http://127.0.0.1:9/fw.bin', digest: 'ab'.repeat(32), devices: [d.id] });
      expect(c.targets[0].state).toBe('initiated');
      const t = await until('timed out', () => {
        const v = stack.app.campaigns.view(c.id)!.targets[0];
        return v.state === 'failed' ? v : null;
      });
      expect(t).toMatchObject({ state: 'failed', status: null, failure: 'initiate_timeout' });
    } finally {
      await stack.stop();
    }
  });

  test('the server connects to a TLS broker with a client certificate', async () => {
    const { startMosquitto } = await import('./support/mosquitto.js');
    const { C2App } = await import('../tools/c2/app.js');
    const broker = await startMosquitto({ tls: { requireCertificate: true } });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2-tls-'));
    const app = await C2App.start({
      dataDir: dir,
      brokerUrl: broker.url,
      httpPort: 0,
      tls: { ca: broker.tls!.ca, cert: broker.tls!.clientCert, key: broker.tls!.clientKey },
      log: () => undefined,
    });
    try {
      expect(broker.url).toMatch(/^mqtts:/);
      await until('connected over TLS', () => app.isConnected);
    } finally {
      await app.stop();
      await broker.dispose();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('logging out ends the session', async () => {
    const stack = await startStack({ devices: 0 });
    try {
      const base = stack.app.url;
      const s = await login(base, stack.app.operatorToken as string);
      const out = await request(base, 'POST', '/api/logout', { headers: { Origin: base, Cookie: s.cookie }, json: {} });
      expect(out.status).toBe(200);
      expect(String(out.headers['set-cookie'])).toMatch(/Max-Age=0/);
      expect((await request(base, 'GET', '/api/state', { headers: { Cookie: s.cookie } })).status).toBe(401);
    } finally {
      await stack.stop();
    }
  });
});

test('add-device without a running server writes the registry the server will use', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2-offline-'));
  try {
    const pair = generateRsaKeyPair(2048);
    const keyFile = path.join(dir, 'k.pem');
    fs.writeFileSync(keyFile, pair.publicPem);
    let out = '';
    const stdout = new Writable({ write(c, _e, cb) { out += c.toString(); cb(); } });
    const data = path.join(dir, 'c2');
    const code = await main(['c2', 'add-device', '--id', 'abc', '--key', keyFile, '--data', data, '--http', '1'], { stdout: stdout as never, stderr: stdout as never });
    expect(code).toBe(0);
    expect(out).toBe('device 0000000000000abc registered (provisioned)\n');
    expect(fs.statSync(data).mode & 0o777).toBe(0o700);
    expect(fs.statSync(path.join(data, 'c2.db')).mode & 0o777).toBe(0o600);
    const { SqliteRegistry } = await import('../hosts/node/sqlite-registry.js');
    const r = new SqliteRegistry(path.join(data, 'c2.db'));
    expect(r.device(0xabcn)?.publicKey.n).toBe(pair.publicKey.n);
    r.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
