/**
 * The C2 application (HTTP API, CLI, campaigns) with a reference (pySRUP) device, over a private Mosquitto.
 *
 * The device is scripted to do what pySRUP's Device does (SRUP-WIRE.md §8, §9, §11), with the identity and keys
 * of the recorded pySRUP device `pydev` (test/data/interop): one sequence counter shared by both directions,
 * a simple join, the ID response text the reference really sends, an initiate answered after fetching and
 * hashing the file, and no answer at all to an action or an activate.
 */
import { c2Cli as cli } from './support/cli.js';
import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parsePrivateKeyPem, parsePublicKeyPem } from '../crypto/keys.js';
import { nodeCrypto } from '../hosts/node/crypto.js';
import { idToHex } from '../hosts/node/durable.js';
import { MqttTransport, srupClientId } from '../hosts/node/mqtt.js';
import { SqliteRegistry } from '../hosts/node/sqlite-registry.js';
import { fromHex, utf8 } from '../modules/srup/bytes.js';
import { decode } from '../modules/srup/codec.js';
import type { FieldsOf, TypeName, UnsignedOf } from '../modules/srup/schema.js';
import { Status } from '../modules/srup/schema.js';
import { sealMessage } from '../modules/srup/session.js';
import { verify } from '../modules/srup/session.js';
import { deviceTopic, joinTopic } from '../modules/srup/topics.js';
import { findMosquitto } from './support/mosquitto.js';
import { browserAvailable, login, openBrowser, request, startStack, until, type Stack } from './support/browser.js';

const describeIf = findMosquitto() ? describe : describe.skip;
if (!findMosquitto()) process.stderr.write('c2 app reference tests skipped: no mosquitto binary (apt-get install -y mosquitto)\n');

const DIR = path.join(__dirname, 'data', 'interop');
const A = JSON.parse(fs.readFileSync(path.join(DIR, 'c2-with-pysrup-devices.json'), 'utf8')) as {
  ids: Record<string, string>;
  messages: { from: string; type: string; hex: string }[];
};
const keyFile = (name: string, kind: 'public' | 'private') => path.join(DIR, 'keys', `${name}.${kind}.pem`);
const PYDEV = BigInt('0x' + A.ids.pydev);
const PYHDEV = BigInt('0x' + A.ids.pyhdev);

/** What pydev answered to the ID request in the recorded run. */
const ID_TEXT = (() => {
  const i = A.messages.findIndex((r, k) => r.from === 'pydev' && r.type === 'data' && A.messages[k - 1].type === 'id_request');
  const m = decode(fromHex(A.messages[i].hex));
  if (m.type !== 'data') throw new Error('not data');
  return Buffer.from(m.fields.data).toString('utf8');
})();

/** A device that behaves as pySRUP's Device does. */
class PySrupDevice {
  readonly got: { type: string; token: string; actionId?: number; status?: number }[] = [];
  readonly installed: string[] = [];
  private counter = 0n;
  private readonly key = parsePrivateKeyPem(fs.readFileSync(keyFile('pydev', 'private'), 'utf8'));
  private readonly transport: MqttTransport;

  constructor(
    brokerUrl: string,
    private readonly server: bigint,
    private readonly serverKey: ReturnType<typeof parsePublicKeyPem>,
  ) {
    this.transport = new MqttTransport({ url: brokerUrl, clientId: srupClientId(PYDEV), log: () => undefined });
    this.transport.listen({
      message: (_topic, payload) => void this.onMessage(payload),
      connected: () => undefined,
      disconnected: () => undefined,
    });
  }

  async start(): Promise<void> {
    this.transport.start();
    await this.transport.subscribe(deviceTopic(PYDEV));
  }

  close(): Promise<void> {
    return this.transport.close();
  }

  /** A simple join request (new uuid4 token) on SRUP/servers/<server>/<device>. */
  join(): Promise<void> {
    return this.send(joinTopic(this.server, PYDEV), 'join_request', randomUUID(), {});
  }

  private send<T extends TypeName>(topic: string, type: T, token: string, fields: FieldsOf<T>): Promise<void> {
    this.counter += 1n;
    const unsigned = { type, sequenceId: this.counter, senderId: PYDEV, token: utf8(token), fields } as UnsignedOf<T>;
    return this.transport.publish(topic, sealMessage(nodeCrypto, this.key, unsigned));
  }

  private async onMessage(payload: Uint8Array): Promise<void> {
    let m;
    try {
      m = decode(payload);
    } catch {
      return;
    }
    if (m.senderId === PYDEV) return; // its own publish on its topic
    // pySRUP: strictly greater than the shared counter, then the counter moves; only then the signature.
    if (m.sequenceId <= this.counter) return;
    this.counter = m.sequenceId;
    if (m.senderId !== this.server || !verify(nodeCrypto, this.serverKey, m)) return;
    const token = Buffer.from(m.token).toString('utf8');
    this.got.push({
      type: m.type,
      token,
      ...(m.type === 'action' ? { actionId: m.fields.actionId } : {}),
      ...(m.type === 'response' ? { status: m.fields.status } : {}),
    });
    const topic = deviceTopic(PYDEV);
    if (m.type === 'id_request') {
      await this.send(topic, 'data', randomUUID(), { dataId: utf8('IDENTIFICATION_RESPONSE'), data: utf8(ID_TEXT) });
    } else if (m.type === 'initiate') {
      const text = (b: Uint8Array) => Buffer.from(b).toString('utf8').replace(/\0+$/, '');
      const res = await fetch(text(m.fields.url));
      const status = !res.ok
        ? Status.UPDATE_FAIL_FILE
        : createHash('sha256').update(Buffer.from(await res.arrayBuffer())).digest('hex') === text(m.fields.digest)
          ? Status.UPDATE_SUCCESS
          : Status.UPDATE_FAIL_DIGEST;
      await this.send(topic, 'response', token, { status });
    } else if (m.type === 'activate') {
      this.installed.push(token); // on_update(filename); no answer
    }
    // action: the on_action hook runs; no answer.
  }
}


describeIf('C2 server with a reference (pySRUP) device', () => {
  let stack: Stack;
  let base: string;
  let session: { cookie: string; csrf: string };
  let device: PySrupDevice;
  let dir: string;
  const ID = idToHex(PYDEV);
  const post = (p: string, json: unknown = {}) =>
    request(base, 'POST', p, { headers: { Origin: base, Cookie: session.cookie, 'X-CSRF-Token': session.csrf }, json });
  const get = (p: string) => request(base, 'GET', p, { headers: { Cookie: session.cookie } });

  beforeAll(async () => {
    stack = await startStack({ devices: 0 });
    base = stack.app.url;
    dir = path.join(stack.dir, 'c2');
    session = await login(base, stack.app.operatorToken as string);
    device = new PySrupDevice(stack.broker.url, stack.app.identity.id, parsePublicKeyPem(stack.app.identity.publicPem));
    await device.start();
  }, 60000);

  afterAll(async () => {
    await device?.close();
    await stack?.stop();
  });

  test('registered without a profile, it joins; its ID response makes it a reference device', async () => {
    const add = await cli(['add-device', '--id', ID, '--key', keyFile('pydev', 'public'), '--data', dir]);
    expect(add).toMatchObject({ code: 0, out: `device ${ID} registered (provisioned)\n` });
    expect((await get(`/api/devices/${ID}`)).body.profile).toBe('srup');
    await device.join();
    // The server accepts the join and asks the device who it is (identifyOnJoin).
    const d = await until('the profile inferred', async () => {
      const v = (await get(`/api/devices/${ID}`)).body;
      return v.profile === 'reference' ? v : null;
    });
    expect([d.state, d.identification, d.firmwareName, d.firmwareVersion]).toEqual(['joined', ID_TEXT, 'pySRUP', null]);
    expect(device.got.map((g) => g.type)).toEqual(['response', 'id_request']);
    expect(device.got[0].status).toBe(Status.JOIN_SUCCESS);
    const list = await cli(['list', '--data', dir]);
    expect(list.out.split('\n')[1]).toMatch(new RegExp(`^${ID}  joined  reference \\(pySRUP\\)\\s+pySRUP\\s`));
  });

  test('an action: "sent (the device does not answer actions)", exit status 0; the API says status null', async () => {
    const r = await cli(['action', ID, '--action', '7', '--data', dir]);
    expect(r).toMatchObject({ code: 0, out: `device ${ID}: sent (the device does not answer actions)\n`, err: '' });
    const api = await post(`/api/devices/${ID}/action`, { actionId: 8 });
    expect([api.status, api.body]).toEqual([200, { ok: true, device: ID, status: null }]);
    await until('both actions arrived', () => device.got.filter((g) => g.type === 'action').length === 2);
    expect(device.got.filter((g) => g.type === 'action').map((g) => g.actionId)).toEqual([7, 8]);
  });

  test('5 concurrent API commands (ID requests and actions) are all answered: one in flight at a time', async () => {
    const before = device.got.length;
    const calls = [
      post(`/api/devices/${ID}/id`),
      post(`/api/devices/${ID}/action`, { actionId: 1 }),
      post(`/api/devices/${ID}/id`),
      post(`/api/devices/${ID}/id`),
      post(`/api/devices/${ID}/action`, { actionId: 2 }),
    ];
    const answers = await Promise.all(calls);
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 200]);
    expect([answers[0].body.identification, answers[2].body.identification, answers[3].body.identification]).toEqual([ID_TEXT, ID_TEXT, ID_TEXT]);
    expect([answers[1].body.status, answers[4].body.status]).toEqual([null, null]);
    // The device took every one of them (none dropped as a replay), in the order they were asked.
    expect(device.got.slice(before).map((g) => (g.type === 'action' ? `action ${g.actionId}` : g.type))).toEqual([
      'id_request',
      'action 1',
      'id_request',
      'id_request',
      'action 2',
    ]);
  });

  test('an update campaign ends "activated (the device does not confirm)", counted as done', async () => {
    const img = path.join(stack.dir, 'py-fw.bin');
    fs.writeFileSync(img, Buffer.from(Array.from({ length: 5000 }, (_, i) => (31 * i + 7) & 255)));
    const upd = await cli(['update', '--file', img, '--devices', ID, '--auto-activate', '--data', dir, '--json']);
    expect(upd.code).toBe(0);
    const cid = (JSON.parse(upd.out) as { id: number }).id;
    type Target = { device: string; state: string; status: number | null; failure: string | null; token: string };
    const view = await until('activated', async () => {
      const c = (await get(`/api/campaigns/${cid}`)).body as { targets: Target[]; done: number; counts: Record<string, number> };
      return c.targets[0].state === 'activated' ? c : null;
    });
    expect(view.targets.map((t) => [t.device, t.state, t.status, t.failure])).toEqual([[ID, 'activated', null, null]]);
    expect([view.done, view.counts]).toEqual([1, { activated: 1 }]);
    // The device got the initiate and the activate with the same token, and installed the image.
    const token = view.targets[0].token;
    await until('installed', () => device.installed.length === 1);
    expect(device.installed).toEqual([token]);
    expect(device.got.filter((g) => g.token === token).map((g) => g.type)).toEqual(['initiate', 'activate']);
    const text = await cli(['campaigns', String(cid), '--data', dir]);
    expect(text.out).toContain('  done 1 of 1\n');
    expect(text.out).toMatch(new RegExp(`  ${ID}\\s+activated\\s+activated \\(the device does not confirm\\)\\s+yes\\n`));
    // Nothing is left to activate or retry.
    expect((await post(`/api/campaigns/${cid}/activate`)).body.sent).toBe(0);
    expect((await post(`/api/campaigns/${cid}/retry`)).body.sent).toBe(0);
    expect(stack.app.registry.update(token)).toMatchObject({ state: 'activated', status: null, failure: null });
  });

  (browserAvailable() ? test : test.skip)('the console shows the profile, the action sent without answer, the campaign activated and done', async () => {
    const b = await openBrowser();
    try {
      const { page } = b;
      await page.goto(base + '/');
      await page.fill('#token', stack.app.operatorToken as string);
      await page.click('#login-form button[type=submit]');
      const row = page.locator(`#devices tbody tr[data-id="${ID}"]`);
      await row.locator('.pill.profile:text("reference")').waitFor();
      await row.locator('a.open').click();
      await page.locator('#dp-info dd:text("reference (pySRUP): answers neither actions nor activates")').waitFor();
      await page.fill('#dp-action input[name=actionId]', '9');
      await page.click('#dp-action button');
      // The answer shows next to the button that asked.
      await page.locator('#dp-action output.ok:text("action 9: sent (the device does not answer actions)")').waitFor();
      await page.click('#tabs a[data-view="campaigns"]');
      await page.click('#campaign-list tbody tr a >> nth=0');
      const campaign = page.locator('.campaign').first();
      await campaign.locator(`tr[data-device="${ID}"][data-state="activated"] td.status:text("activated (the device does not confirm)")`).waitFor();
      await campaign.locator('.done:text("1 of 1 done")').waitFor();
      await until('the action arrived', () => device.got.some((g) => g.type === 'action' && g.actionId === 9));
    } finally {
      await b.close();
    }
  });

  test('the profile can be set when registering and changed later (API and CLI); anything else is refused', async () => {
    const pem = fs.readFileSync(keyFile('pyhdev', 'public'), 'utf8');
    const hid = idToHex(PYHDEV);
    const r = await post('/api/devices', { id: hid, publicKey: pem, profile: 'reference' });
    expect([r.status, r.body.profile, r.body.state]).toEqual([200, 'reference', 'provisioned']);
    expect((await post('/api/devices', { id: hid, publicKey: pem, profile: 'pysrup' })).status).toBe(400);
    expect((await post(`/api/devices/${hid}/profile`, { profile: 'srup' })).body.profile).toBe('srup');
    expect((await post(`/api/devices/${hid}/profile`, { profile: 'other' })).status).toBe(400);
    expect((await post(`/api/devices/0000000000000042/profile`, { profile: 'srup' })).status).toBe(404);
    const c = await cli(['profile', hid, '--reference', '--data', dir]);
    expect(c).toMatchObject({ code: 0, out: `device ${hid}: profile reference (pySRUP)\n` });
    expect(stack.app.registry.device(PYHDEV)?.profile).toBe('reference');
    expect((await cli(['profile', hid, '--data', dir])).code).toBe(2);
    // Re-registering with the CLI keeps it; --reference says so.
    const again = await cli(['add-device', '--id', hid, '--key', keyFile('pyhdev', 'public'), '--reference', '--data', dir]);
    expect(again.out).toBe(`device ${hid} registered (provisioned, reference (pySRUP) device: it answers neither actions nor activates)\n`);
    // The console's Register form offers the choice.
    const page = await request(base, 'GET', '/');
    expect(page.text).toContain('<select name="profile"><option value="">SRUP agent');
    expect(page.text).toContain('<option value="reference">reference, pySRUP');
  });
});

describe('srup c2 add-device --reference without a running server', () => {
  test('writes the profile into the registry', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2-add-ref-'));
    try {
      const r = await cli(['add-device', '--id', idToHex(PYDEV), '--key', keyFile('pydev', 'public'), '--reference', '--data', dir, '--http', '1']);
      expect(r).toMatchObject({ code: 0, out: `device ${idToHex(PYDEV)} registered (provisioned, reference (pySRUP) device: it answers neither actions nor activates)\n` });
      const reg = new SqliteRegistry(path.join(dir, 'c2.db'));
      expect(reg.device(PYDEV)?.profile).toBe('reference');
      reg.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
