/**
 * The C2 application end to end, without a browser: a private Mosquitto, the C2 server (engine + SQLite registry
 * + HTTP API) and virtual devices running the real agent on the Node host. Covers the server identity, the API's
 * authentication and CSRF rules, joins, commands, an update campaign with a corrupted download, a server restart
 * in the middle of a campaign, and the CLI against the running server.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { challengeGrid } from '../modules/challenge/index.js';
import { idToHex } from '../hosts/node/durable.js';
import { demoImage } from '../tools/c2/virtual.js';
import { findMosquitto } from './support/mosquitto.js';
import { c2Cli as cli } from './support/cli.js';
import { login, request, startStack, until, type Stack } from './support/browser.js';

const describeIf = findMosquitto() ? describe : describe.skip;
if (!findMosquitto()) process.stderr.write('c2 app tests skipped: no mosquitto binary (apt-get install -y mosquitto)\n');


describeIf('C2 server', () => {
  let stack: Stack;
  let token: string;
  let base: string;
  let session: { cookie: string; csrf: string };
  const post = (p: string, json: unknown = {}) =>
    request(base, 'POST', p, { headers: { Origin: base, Cookie: session.cookie, 'X-CSRF-Token': session.csrf }, json });
  const get = (p: string) => request(base, 'GET', p, { headers: { Cookie: session.cookie } });

  beforeAll(async () => {
    stack = await startStack({ devices: 3, corrupt: [2], app: { sessionTtlMs: 60 * 60 * 1000 } });
    token = stack.app.operatorToken as string;
    base = stack.app.url;
    session = await login(base, token);
  }, 60000);

  afterAll(async () => {
    await stack?.stop();
  });

  test('the server identity is made once and kept private', async () => {
    const dir = path.join(stack.dir, 'c2');
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
    expect(fs.statSync(path.join(dir, 'private.pem')).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.join(dir, 'server.json')).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.join(dir, 'cli-token')).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.join(dir, 'c2.db')).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.join(dir, 'c2.db-wal')).mode & 0o777).toBe(0o600);
    const id = JSON.parse(fs.readFileSync(path.join(dir, 'server.json'), 'utf8')).id as string;
    expect(id).toMatch(/^[0-9a-f]{12}4[0-9a-f]{3}$/);
    expect(id).toBe(idToHex(stack.app.identity.id));
    expect(token).toMatch(/^[A-Za-z0-9_-]{32}$/);
    // The token is stored only as an scrypt hash.
    const db = fs.readFileSync(path.join(dir, 'c2.db'));
    expect(db.includes(Buffer.from(token))).toBe(false);
  });

  test('the API refuses requests without credentials, from other origins, without CSRF token or to other hosts', async () => {
    expect((await request(base, 'GET', '/api/state')).status).toBe(401);
    expect((await request(base, 'GET', '/api/state', { headers: { Cookie: 'srup_c2_session=forged' } })).status).toBe(401);
    expect((await request(base, 'GET', '/api/state', { headers: { Authorization: 'Bearer nope' } })).status).toBe(401);
    expect((await request(base, 'POST', '/api/login', { headers: { Origin: base }, json: { token: 'wrong' } })).status).toBe(401);
    expect((await request(base, 'POST', '/api/login', { headers: { Origin: 'http://evil.example' }, json: { token } })).status).toBe(403);
    const id = idToHex(stack.devices[0].id);
    const cross = await request(base, 'POST', `/api/devices/${id}/terminate`, {
      headers: { Origin: 'http://evil.example', Cookie: session.cookie, 'X-CSRF-Token': session.csrf },
      json: {},
    });
    expect(cross.status).toBe(403);
    expect(cross.body.reason).toBe('bad_origin');
    const noOrigin = await request(base, 'POST', `/api/devices/${id}/terminate`, { headers: { Cookie: session.cookie, 'X-CSRF-Token': session.csrf }, json: {} });
    expect(noOrigin.status).toBe(403);
    const badReferer = await request(base, 'POST', `/api/devices/${id}/terminate`, {
      headers: { Referer: 'http://evil.example/x', Cookie: session.cookie, 'X-CSRF-Token': session.csrf },
      json: {},
    });
    expect(badReferer.status).toBe(403);
    const noCsrf = await request(base, 'POST', `/api/devices/${id}/terminate`, { headers: { Origin: base, Cookie: session.cookie }, json: {} });
    expect(noCsrf.status).toBe(403);
    expect(noCsrf.body.reason).toBe('bad_csrf');
    const wrongCsrf = await request(base, 'POST', `/api/devices/${id}/terminate`, { headers: { Origin: base, Cookie: session.cookie, 'X-CSRF-Token': 'x' + session.csrf }, json: {} });
    expect(wrongCsrf.status).toBe(403);
    const rebound = await request(base, 'GET', '/api/state', { headers: { Cookie: session.cookie, Host: 'evil.example' } });
    expect(rebound.status).toBe(421);
    // Nothing was terminated by any of these.
    expect(stack.app.registry.device(stack.devices[0].id)?.state).toBe('provisioned');
    // The session cookie is HttpOnly, SameSite=Strict and expires.
    const r = await request(base, 'POST', '/api/login', { headers: { Origin: base }, json: { token } });
    expect(String(r.headers['set-cookie'])).toMatch(/HttpOnly; SameSite=Strict; Path=\/; Max-Age=3600/);
    // The CLI's bearer token works without cookie or CSRF token.
    const cliToken = fs.readFileSync(path.join(stack.dir, 'c2', 'cli-token'), 'utf8').trim();
    expect((await request(base, 'GET', '/api/state', { headers: { Authorization: `Bearer ${cliToken}` } })).status).toBe(200);
  });

  test('GET /api/overview: server, counts and pending joins with the session\'s CSRF token, without the device list', async () => {
    expect((await request(base, 'GET', '/api/overview')).status).toBe(401);
    const r = await get('/api/overview');
    expect(r.status).toBe(200);
    expect(Object.keys(r.body).sort()).toEqual(['counts', 'joins', 'server', 'session']);
    expect(r.body.server).toMatchObject({ id: idToHex(stack.app.identity.id), connected: true });
    expect(r.body.counts).toEqual(stack.app.registry.deviceCounts());
    expect(r.body.joins).toEqual([]);
    expect((r.body.session as { csrf: string }).csrf).toBe(session.csrf);
  });

  test('a human-moderated join shows the device\'s challenge and joins once approved; simple joins are accepted', async () => {
    const [human, a, b] = stack.devices;
    const outcome = human.join('human');
    const simple = [a.join('simple'), b.join('simple')];
    expect(await Promise.all(simple)).toEqual(['joined', 'joined']);
    const shown = await until('the device shows its challenge', () => human.presenter.current);
    const joins = await until('the join is pending on the server', async () => {
      const r = await get('/api/joins');
      const list = r.body.joins as { id: string; challenge: { grid: number[]; blink: string; palette: { name: string } } | null }[];
      return list.find((j) => j.id === idToHex(human.id) && j.challenge !== null);
    });
    expect(joins.challenge!.grid).toEqual(shown.grid);
    expect(joins.challenge!.grid).toEqual(challengeGrid(shown.secret));
    expect(joins.challenge!.blink).toBe(shown.blink);
    expect(joins.challenge!.palette.name).toBe('default');
    const r = await post(`/api/devices/${idToHex(human.id)}/approve`);
    expect(r.status).toBe(200);
    expect(await outcome).toBe('joined');
    expect(human.presenter.current).toBeNull();
    // Joined devices are identified (ID request after the join): firmware name and version show.
    const devices = await until('identification', async () => {
      const list = (await get('/api/devices')).body.devices as { id: string; state: string; firmwareName: string | null; firmwareVersion: string | null }[];
      return list.every((d) => d.state === 'joined' && d.firmwareVersion === '1.0.0') ? list : null;
    });
    expect(devices.map((d) => d.firmwareName)).toEqual(['srup-virtual', 'srup-virtual', 'srup-virtual']);
  });

  test('actions, data and ID requests reach the device, and every message is audited', async () => {
    const id = idToHex(stack.devices[1].id);
    expect((await post(`/api/devices/${id}/action`, { actionId: 1 })).body.status).toBe(0x20);
    expect((await post(`/api/devices/${id}/action`, { actionId: 99 })).body.status).toBe(0x2e);
    expect((await post(`/api/devices/${id}/data`, { dataId: 'greeting', kind: 'string', value: 'hello' })).status).toBe(200);
    expect((await post(`/api/devices/${id}/data`, { dataId: 'n', kind: 'int32', value: 'abc' })).status).toBe(400);
    expect((await post(`/api/devices/${id}/id`)).body.identification).toBe('srup-virtual 1.0.0');
    expect((await post('/api/devices/0123/action', { actionId: 1 })).status).toBe(404);
    const detail = (await get(`/api/devices/${id}`)).body as { audit: { direction: string; type: string; status: number | null }[] };
    const types = detail.audit.map((a) => `${a.direction} ${a.type}${a.status !== null ? ' ' + a.status : ''}`);
    expect(types).toEqual(expect.arrayContaining(['out action', 'in response 32', 'in response 46', 'out data', 'out id_request', 'in data']));
  });

  test('a command through the API waits for no disk sync on the event loop: its writes and its operator audit line go through the group commit', async () => {
    const id = idToHex(stack.devices[1].id);
    const syncs = (stack.app.registry.db as unknown as { syncs: { now: number; later: number } }).syncs;
    const operatorLines = () => stack.app.auditLog({ page: 1, pageSize: 1, device: id, direction: 'operator', type: 'action' }).total;
    const before = { ...syncs, lines: operatorLines() };
    for (let i = 0; i < 5; i++) expect((await post(`/api/devices/${id}/action`, { actionId: 1 })).body.status).toBe(0x20);
    expect(syncs.now - before.now).toBe(0); // before: one fdatasync on the event loop per command (the audit line)
    expect(syncs.later - before.later).toBeGreaterThan(0);
    expect(operatorLines() - before.lines).toBe(5);
  });

  test('data a device sends is kept per data id and shown on its panel: latest value, time, numeric history', async () => {
    const dev = stack.devices[1];
    const id = idToHex(dev.id);
    await dev.sendData('temperature', 21.5);
    await dev.sendData('humidity', 40, 'int32');
    await dev.sendData('temperature', 19.75);
    await dev.sendData('door', 'closed');
    await dev.sendData('level', 3, 'uint16');
    const data = async () => ((await get(`/api/devices/${id}`)).body as { data: { dataId: string; kind: string; text: string; at: number; history: { value: number }[] }[] }).data;
    await until('four data ids', async () => (await data()).length === 4);
    const d = await data();
    expect(d.map((x) => [x.dataId, x.kind, x.text, x.history.map((h) => h.value)])).toEqual([
      ['temperature', 'double', '19.75', [21.5, 19.75]],
      ['humidity', 'int32', '40', [40]],
      ['door', 'text', 'closed', []],
      ['level', 'int', '3', [3]],
    ]);
    for (const x of d) expect(typeof x.at).toBe('number');
  });

  test('an update campaign: 0x00 / 0xFF responses, activation, post-reboot confirmation 0x10', async () => {
    const image = demoImage('srup-virtual', '1.1.0', 100 * 1024);
    const up = await request(base, 'POST', '/api/images', { headers: { Origin: base, Cookie: session.cookie, 'X-CSRF-Token': session.csrf }, raw: image });
    expect(up.status).toBe(200);
    const file = up.body.file as string;
    const ids = stack.devices.map((d) => idToHex(d.id));
    const c = (await post('/api/campaigns', { name: 'to 1.1.0', file, devices: ids })).body as { id: number; url: string; digest: string };
    expect(c.digest).toBe(file.slice(0, 64));
    // The image is served with Range support.
    const part = await request(base, 'GET', `/images/${file}`, { headers: { Range: 'bytes=0-15' } });
    expect(part.status).toBe(206);
    expect(part.headers['content-range']).toBe(`bytes 0-15/${image.length}`);
    expect(part.text).toBe('SRUPFW srup-virt');
    expect((await request(base, 'GET', `/images/${file}`, { headers: { Range: `bytes=${image.length}-` } })).status).toBe(416);
    expect((await request(base, 'GET', `/images/${'0'.repeat(64)}.bin`)).status).toBe(404);

    type T = { device: string; state: string; status: number | null };
    const targets = async () => ((await get(`/api/campaigns/${c.id}`)).body.targets as T[]);
    const after = await until('every device answered', async () => {
      const t = await targets();
      return t.every((x) => x.state !== 'initiated') ? t : null;
    });
    expect(after.map((t) => [t.device, t.state, t.status])).toEqual(
      [...ids.map((id, i) => [id, i === 2 ? 'failed' : 'staged', i === 2 ? 0xff : 0x00])].sort((x, y) => String(x[0]).localeCompare(String(y[0]))),
    );
    const act = await post(`/api/campaigns/${c.id}/activate`);
    expect(act.body.sent).toBe(2);
    const done = await until('confirmations', async () => {
      const t = await targets();
      return t.filter((x) => x.state === 'confirmed').length === 2 ? t : null;
    });
    expect(done.filter((t) => t.status === 0x10).map((t) => t.device).sort()).toEqual([ids[0], ids[1]].sort());
    expect(stack.devices[0].boots).toBe(1);
    expect(stack.devices[2].boots).toBe(0);
    // After the reboot the device reports the new firmware.
    expect((await post(`/api/devices/${ids[0]}/id`)).body.identification).toBe('srup-virtual 1.1.0');
    // Retry sends the failed device a new initiate (its downloads stay corrupted: 0xFF again); confirmed
    // devices are not retried.
    const before = (await targets()).find((t) => t.device === ids[2]) as T & { token: string };
    expect((await post(`/api/campaigns/${c.id}/retry`, { devices: [ids[0]] })).status).toBe(409);
    expect((await post(`/api/campaigns/${c.id}/retry`)).body.sent).toBe(1);
    const again = await until('the retried device answered', async () => {
      const t = (await targets()).find((x) => x.device === ids[2]) as T & { token: string };
      return t.token !== before.token && t.state === 'failed' ? t : null;
    });
    expect(again.status).toBe(0xff);
    const initiates = ((await get(`/api/devices/${ids[2]}`)).body.audit as { type: string }[]).filter((a) => a.type === 'initiate');
    expect(initiates).toHaveLength(2);
  });

  test('a restart in the middle of a campaign: stopped as the devices finish downloading, it activates and confirms after the restart', async () => {
    const image = demoImage('srup-virtual', '1.2.0', 50 * 1024);
    const up = await request(base, 'POST', '/api/images', { headers: { Origin: base, Cookie: session.cookie, 'X-CSRF-Token': session.csrf }, raw: image });
    const ids = [idToHex(stack.devices[0].id), idToHex(stack.devices[1].id)];
    // The server stops as soon as both devices have the image: their answers (0x00), the activation and the
    // post-reboot confirmations happen across the restart.
    let staged = 0;
    let stopping: Promise<void> | null = null;
    const off = stack.onDeviceEvent((e) => {
      if (e.type === 'update_staged' && ++staged === 2) stopping = stack.app.stop();
    });
    const c = (await post('/api/campaigns', { file: up.body.file, devices: ids, autoActivate: true })).body as { id: number };
    await until('both devices staged the image', () => stopping !== null);
    off();
    await stopping;
    await new Promise((r) => setTimeout(r, 500));
    await stack.restartApp();
    base = stack.app.url;
    // The session survived the restart (sessions live in the registry).
    const t = await until('confirmed after the restart', async () => {
      const targets = (await get(`/api/campaigns/${c.id}`)).body.targets as { state: string; status: number }[];
      return targets.every((x) => x.state === 'confirmed') ? targets : null;
    }, 30000);
    expect(t.map((x) => x.status)).toEqual([0x10, 0x10]);
    expect(stack.devices[0].firmware.version).toBe('1.2.0');
  });

  test('the CLI lists, commands and reports through the running server', async () => {
    const dir = path.join(stack.dir, 'c2');
    const list = await cli(['list', '--data', dir, '--json']);
    expect(list.code).toBe(0);
    const devices = JSON.parse(list.out).devices as { id: string; state: string }[];
    expect(devices.map((d) => d.state)).toEqual(['joined', 'joined', 'joined']);
    const id = idToHex(stack.devices[1].id);
    const act = await cli(['action', id, '--action', '2', '--data', dir]);
    expect(act).toMatchObject({ code: 0, out: `device ${id}: 0x20 action done\n` });
    const ident = await cli(['id', id, '--data', dir]);
    expect(ident.out).toBe('srup-virtual 1.2.0\n');
    const camp = await cli(['campaigns', '--data', dir]);
    expect(camp.out).toMatch(/#1 to 1\.1\.0/);
    const img = path.join(stack.dir, 'fw.bin');
    fs.writeFileSync(img, demoImage('srup-virtual', '1.3.0', 4096));
    const upd = await cli(['update', '--file', img, '--devices', id, '--data', dir, '--json']);
    expect(upd.code).toBe(0);
    const cid = JSON.parse(upd.out).id as number;
    await until('staged', async () => JSON.parse((await cli(['campaigns', String(cid), '--data', dir, '--json'])).out).targets[0].state === 'staged');
    const a = await cli(['activate', String(cid), '--data', dir]);
    expect(a.out).toMatch(/1 activate\(s\) sent now/);
    await until('confirmed', async () => JSON.parse((await cli(['campaigns', String(cid), '--data', dir, '--json'])).out).targets[0].status === 0x10);
    const term = await cli(['terminate', id, '--data', dir]);
    expect(term.out).toBe(`device ${id}: terminated\n`);
    expect(stack.app.registry.device(stack.devices[1].id)?.state).toBe('terminated');
    const again = await cli(['action', id, '--action', '1', '--data', dir]);
    expect(again.code).toBe(1);
    expect(again.err).toMatch(/not joined/);
  });

  test('a campaign from a URL: the server fetches the image once for its digest; the device downloads it there', async () => {
    const image = demoImage('srup-virtual', '2.0.0', 30 * 1024);
    let fetches = 0;
    const server = http.createServer((req, res) => {
      fetches++;
      res.writeHead(req.url === '/fw.bin' ? 200 : 404);
      res.end(req.url === '/fw.bin' ? Buffer.from(image) : undefined);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/fw.bin`;
    try {
      const id = idToHex(stack.devices[0].id);
      const c = (await post('/api/campaigns', { url, devices: [id], autoActivate: true })).body as { id: number; digest: string; size: number; url: string };
      expect(c).toMatchObject({ url, digest: createHash('sha256').update(image).digest('hex'), size: image.length });
      await until('confirmed', async () => ((await get(`/api/campaigns/${c.id}`)).body.targets as { status: number }[])[0].status === 0x10);
      expect(fetches).toBe(2); // the server's digest, the device's download
      expect((await post('/api/campaigns', { url: url.replace('fw.bin', 'nope.bin'), devices: [id] })).status).toBe(502);
      expect((await post('/api/campaigns', { url: 'ftp://x/y', devices: [id] })).status).toBe(400);
      expect((await post('/api/campaigns', { url, devices: [] })).status).toBe(400);
      expect((await post('/api/campaigns', { url, devices: [idToHex(stack.devices[1].id)] })).status).toBe(409);
    } finally {
      server.close();
    }
  });

  test('a staged rollout through the API: the library image, a first wave that fails, pause and resume, the go, done', async () => {
    // Done by a named operator: the library, the campaign and the audit name her.
    expect((await post('/api/operators', { name: 'carol', password: 'carol-password-1' })).status).toBe(200);
    const signIn = await request(base, 'POST', '/api/login', { headers: { Origin: base }, json: { operator: 'carol', password: 'carol-password-1' } });
    expect([signIn.status, signIn.body.operator]).toEqual([200, 'carol']);
    const admin = session;
    session = { cookie: String(signIn.headers['set-cookie']?.[0] ?? '').split(';')[0], csrf: String(signIn.body.csrf) };
    try {
      await stagedRollout();
    } finally {
      session = admin;
    }
    const audit = await get('/api/audit?operator=carol&direction=operator&pageSize=100');
    const entries = (audit.body.entries as { type: string; operator: string; summary: string }[]).reverse();
    // Refused requests (a bad name, a bad campaign, proceed while paused, cancel when done, remove while in use) are not there.
    expect(entries.map((e) => e.type)).toEqual([
      'login',
      'image.upload',
      'image.upload',
      'campaign.create',
      'campaign.pause',
      'campaign.resume',
      'campaign.proceed',
      'image.remove',
    ]);
    expect(entries.every((e) => e.operator === 'carol')).toBe(true);
    expect(entries.find((e) => e.type === 'campaign.proceed')?.summary).toMatch(/next wave, 1 sent/);
    expect((await post('/api/operators/carol/remove')).status).toBe(200);
  });

  async function stagedRollout(): Promise<void> {
    const headers = { Origin: base, Cookie: session.cookie, 'X-CSRF-Token': session.csrf };
    const image = demoImage('srup-virtual', '3.0.0', 20 * 1024);
    const library = async () => (await get('/api/images')).body.images as { id: number; usedBy: number }[];
    const had = await library();
    // Bad names are refused before anything is stored.
    const badName = await request(base, 'POST', `/api/images?name=${encodeURIComponent('a\nb')}`, { headers, raw: image });
    expect([badName.status, badName.body.error]).toEqual([400, 'name must be 1 to 100 printable characters']);
    expect(await library()).toEqual(had);
    const up = await request(base, 'POST', '/api/images?name=sensor&version=3.0.0', { headers, raw: image });
    expect(up.status).toBe(200);
    expect(up.body).toMatchObject({ name: 'sensor', version: '3.0.0', size: image.length, uploadedBy: 'carol', usedBy: 0, created: true });
    const img = up.body.id as number;
    // The same image again: the row already there.
    const again = await request(base, 'POST', '/api/images?name=other', { headers, raw: image });
    expect([again.body.id, again.body.name, again.body.created]).toEqual([img, 'sensor', false]);
    const ids = stack.devices.map((d) => idToHex(d.id));
    const before = ((await get('/api/campaigns')).body.campaigns as unknown[]).length;
    for (const [body, error] of [
      [{ image: img, target: { devices: [ids[0]] }, waves: { first: { count: 0 } } }, 'waves.first.count must be a whole number of at least 1'],
      [{ image: img, target: { tag: 'x y' } }, 'target.tag must be 1 to 32 of A-Z a-z 0-9 _ . : -'],
      [{ image: img }, 'target is required: { devices: [...] }, { tag: T } or { filter: {...} }'],
    ] as const) {
      const r = await post('/api/campaigns', body);
      expect([r.status, r.body.error]).toEqual([400, error]);
    }
    expect(((await get('/api/campaigns')).body.campaigns as unknown[]).length).toBe(before);

    // Device 2's downloads are corrupted: the first wave (device 2 alone) fails with 0xFF, above the limit of 0.
    type C = { id: number; state: string; reason: string | null; currentWave: number; waves: unknown[]; failures: Record<string, number>; targets: { device: string; rolledBack: boolean }[] };
    const made = await post('/api/campaigns', { name: 'staged', image: img, target: { devices: [ids[2], ids[0]] }, autoActivate: true, waves: { first: { count: 1 }, then: 'auto', maxFailureRate: 0 } });
    expect([made.status, made.body.error]).toEqual([200, undefined]);
    const c = made.body as unknown as C;
    expect(made.body.createdBy).toBe('carol');
    expect([c.state, c.currentWave, c.waves]).toEqual(['running', 0, [{ index: 0, size: 1, sent: 1, done: 0, failed: 0 }, { index: 1, size: 1, sent: 0, done: 0, failed: 0 }]]);
    const campaign = async () => (await get(`/api/campaigns/${c.id}`)).body as unknown as C;
    const waiting = await until('the first wave failed', async () => ((await campaign()).state === 'waiting' ? campaign() : null));
    expect(waiting.reason).toMatch(/failed on 1 of 1 devices \(100%\), above the limit of 0%/);
    expect(waiting.failures).toEqual({ '0xff': 1 });
    expect((await library()).find((i) => i.id === img)?.usedBy).toBe(1);
    const inUse = await post(`/api/images/${img}/remove`);
    expect([inUse.status, inUse.body.error]).toEqual([409, `image ${img} is used by campaign ${c.id}, which is waiting`]);

    expect((await post(`/api/campaigns/${c.id}/pause`)).body.state).toBe('paused');
    const refused = await post(`/api/campaigns/${c.id}/proceed`);
    expect([refused.status, refused.body.error]).toEqual([409, `campaign ${c.id} is paused (resume it first)`]);
    expect((await post(`/api/campaigns/${c.id}/resume`)).body.state).toBe('waiting');
    const go = await post(`/api/campaigns/${c.id}/proceed`);
    expect([go.status, go.body.sent]).toEqual([200, 1]);
    const done = await until('the second wave confirmed', async () => {
      const v = await campaign();
      return v.state === 'done' ? v : null;
    }, 30000);
    expect(done.waves).toEqual([{ index: 0, size: 1, sent: 1, done: 0, failed: 1 }, { index: 1, size: 1, sent: 1, done: 1, failed: 0 }]);
    expect(done.targets.map((t) => t.rolledBack)).toEqual([false, false]);
    const text = (await cli(['campaigns', String(c.id), '--data', path.join(stack.dir, 'c2')])).out;
    expect(text).toContain('  state done\n  wave 1: 1 devices, 1 sent, 0 done, 1 failed\n  wave 2: 1 devices, 1 sent, 1 done, 0 failed\n  failures 0xff: 1\n');
    expect((await post(`/api/campaigns/${c.id}/cancel`)).status).toBe(409);
    expect((await post(`/api/images/${img}/remove`)).body).toEqual({ ok: true });
    expect(await library()).toEqual(had);
  }

  test('the CLI says clearly when no server is running', async () => {
    const empty = path.join(stack.dir, 'nothing');
    fs.mkdirSync(empty);
    fs.writeFileSync(path.join(empty, 'cli-token'), 'x\n');
    const r = await cli(['list', '--data', empty, '--http', '1']);
    expect(r.code).toBe(2);
    expect(r.err).toBe('srup c2: no C2 server at http://127.0.0.1:1 — start it with `srup c2 serve`\n');
  });
});

describeIf('C2 sessions', () => {
  test('an expired session is refused', async () => {
    const stack = await startStack({ devices: 0, app: { sessionTtlMs: 300 } });
    try {
      const base = stack.app.url;
      const s = await login(base, stack.app.operatorToken as string);
      expect((await request(base, 'GET', '/api/state', { headers: { Cookie: s.cookie } })).status).toBe(200);
      await new Promise((r) => setTimeout(r, 400));
      expect((await request(base, 'GET', '/api/state', { headers: { Cookie: s.cookie } })).status).toBe(401);
      expect((await request(base, 'GET', '/api/session', { headers: { Cookie: s.cookie } })).status).toBe(401);
    } finally {
      await stack.stop();
    }
  });
});
