/**
 * The fleet API of the C2 server: the device list's search, filters, order and paging (answered by the
 * database), labels and tags, removing a device (its counters stay), online state by the silence threshold
 * (on a fake clock), named operators and the audit log that names them, with its filters and CSV export.
 */
import path from 'node:path';
import { Writable } from 'node:stream';
import fs from 'node:fs';
import type { Clock } from '../modules/c2/host.js';
import { idToHex } from '../hosts/node/durable.js';
import { main } from '../tools/srup.js';
import { findMosquitto } from './support/mosquitto.js';
import { login, request, startStack, type Reply, type Stack } from './support/browser.js';
import { fleetDevice, fleetId, registerFleet } from './support/fleet.js';
import { parseDeviceFilter } from '../tools/c2/fleet.js';

const describeIf = findMosquitto() ? describe : describe.skip;
if (!findMosquitto()) process.stderr.write('c2 fleet tests skipped: no mosquitto binary (apt-get install -y mosquitto)\n');

const FLEET = 300;
const SILENCE_MS = 60_000;
const T0 = 1_800_000_000_000;

/** Parses CSV (RFC 4180: quoted fields, doubled quotes, CRLF line ends, newlines inside quotes). */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\r' && text[i + 1] === '\n') {
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
      i++;
    } else field += c;
  }
  if (field !== '' || row.length > 0) throw new Error('the CSV does not end with CRLF');
  return rows;
}

describeIf('C2 fleet API', () => {
  let stack: Stack;
  let base: string;
  let now = T0;
  let admin: { cookie: string; csrf: string };
  const clock: Clock = { now: () => now, setTimeout: (fn, ms) => setTimeout(fn, ms), clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>) };

  const get = (p: string, s = admin) => request(base, 'GET', p, { headers: { Cookie: s.cookie } });
  const post = (p: string, json: unknown = {}, s = admin) => request(base, 'POST', p, { headers: { Origin: base, Cookie: s.cookie, 'X-CSRF-Token': s.csrf }, json });
  const ids = (r: Reply) => (r.body.devices as { id: string }[]).map((d) => d.id);
  const hex = (i: number) => idToHex(fleetId(i));
  /** The fleet's indices matching `pred`, in id order (fleet ids grow with the index). */
  const expected = (pred: (i: number) => boolean) => Array.from({ length: FLEET }, (_, i) => i).filter(pred);

  beforeAll(async () => {
    stack = await startStack({ devices: 0, app: { clock, silenceMs: SILENCE_MS, requestTimeoutMs: 300 } });
    base = stack.app.url;
    admin = await login(base, stack.app.operatorToken as string);
    registerFleet(stack.app, FLEET, { now: T0 });
  }, 60000);

  afterAll(async () => {
    await stack?.stop();
  });

  beforeEach(() => {
    now = T0;
  });

  test('with no parameters the list answers its first page, in id order, with the total', async () => {
    const r = await get('/api/devices');
    expect(r.status).toBe(200);
    expect(r.body.total).toBe(FLEET);
    expect([r.body.page, r.body.pageSize]).toEqual([1, 50]);
    expect(ids(r)).toEqual(expected((i) => i < 50).map(hex));
    const first = (r.body.devices as Record<string, unknown>[])[1];
    expect(first).toMatchObject({
      id: hex(1),
      label: 'sensor-1',
      tags: ['site-1'],
      state: 'joined',
      profile: 'srup',
      firmware: 'srup-agent 1.0.1',
      firmwareVersion: '1.0.1',
      lastSeen: T0 - 1000,
      online: true,
      pendingJoin: false,
    });
  });

  test('search matches the label, the id and the firmware, case-insensitively', async () => {
    const pumps = await get('/api/devices?search=PUMP&pageSize=500');
    expect(pumps.body.total).toBe(30);
    expect(ids(pumps)).toEqual(expected((i) => i % 10 === 0).map(hex));
    // A part of an id, as printed (without its leading digits).
    const part = hex(123).slice(-6);
    const byId = await get(`/api/devices?search=${part}`);
    expect(ids(byId)).toContain(hex(123));
    expect(ids(byId).every((id) => id.includes(part))).toBe(true);
    expect((await get('/api/devices?search=srup-agent')).body.total).toBe(FLEET);
    // % and _ are taken literally.
    expect((await get('/api/devices?search=%25')).body.total).toBe(0);
    expect((await get('/api/devices?search=sensor_1')).body.total).toBe(0);
  });

  test('filters by state, online, firmware and tag, combined, and pages through the result', async () => {
    expect((await get('/api/devices?state=provisioned')).body.total).toBe(expected((i) => i % 7 === 0).length);
    const online = (i: number) => i % 11 !== 0 && i * 1000 <= SILENCE_MS;
    expect(ids(await get('/api/devices?online=true&pageSize=500'))).toEqual(expected(online).map(hex));
    expect((await get('/api/devices?online=false')).body.total).toBe(FLEET - expected(online).length);
    expect((await get('/api/devices?firmware=1.0.3')).body.total).toBe(expected((i) => i % 5 === 3).length);
    expect((await get('/api/devices?tag=critical')).body.total).toBe(expected((i) => i % 3 === 0).length);
    const r = await get('/api/devices?tag=critical&state=joined&search=sensor&pageSize=500');
    expect(ids(r)).toEqual(expected((i) => i % 3 === 0 && i % 7 !== 0 && i % 10 !== 0).map(hex));
    expect((await get('/api/devices?tag=site-2&tag=critical')).status).toBe(400); // one tag per query
    const paged: string[] = [];
    for (let page = 1; page <= 4; page++) {
      const p = await get(`/api/devices?tag=critical&state=joined&search=sensor&page=${page}&pageSize=7`);
      expect([p.status, p.body.total]).toEqual([200, ids(r).length]);
      paged.push(...ids(p));
    }
    expect(paged).toEqual(ids(r).slice(0, 28));
    expect(ids(await get('/api/devices?tag=site-2&state=joined&search=sensor&pageSize=500'))).toEqual(
      expected((i) => i % 4 === 2 && i % 7 !== 0 && i % 10 !== 0).map(hex),
    );
  });

  test('a filter given as JSON selects the same devices as the list (a campaign target group)', () => {
    const f = parseDeviceFilter({ tag: 'critical', state: 'joined', online: true, search: 'sensor' });
    expect(f).toEqual({ tag: 'critical', state: 'joined', online: true, search: 'sensor' });
    const want = expected((i) => i % 3 === 0 && i % 7 !== 0 && i % 10 !== 0 && i % 11 !== 0 && i * 1000 <= SILENCE_MS).map(fleetId);
    expect(stack.app.devicesMatching(f)).toEqual(want);
    expect(stack.app.devicesMatching(parseDeviceFilter({ firmware: '1.0.2', online: null }))).toEqual(expected((i) => i % 5 === 2).map(fleetId));
    for (const [bad, message] of [
      [[], /the filter must be an object/],
      [{ online: 'true' }, /filter online must be true or false/],
      [{ tag: 3 }, /filter tag must be a string/],
      [{ tag: 'a b' }, /tag must be 1 to 32 of/],
      [{ sort: 'id' }, /unknown filter field sort/],
    ] as const) {
      expect(() => parseDeviceFilter(bad)).toThrow(message);
    }
  });

  test('sorts by each key, both ways, with the id breaking ties', async () => {
    const desc = await get('/api/devices?sort=-id&pageSize=3');
    expect(ids(desc)).toEqual([hex(FLEET - 1), hex(FLEET - 2), hex(FLEET - 3)]);
    // Last seen: the most recent first; never heard from sorts as the oldest.
    const recent = await get('/api/devices?sort=-lastSeen&pageSize=3');
    expect(ids(recent)).toEqual([hex(1), hex(2), hex(3)]);
    const oldest = await get('/api/devices?sort=lastSeen&pageSize=500');
    const never = expected((i) => i % 11 === 0).map(hex);
    expect(ids(oldest).slice(0, never.length)).toEqual(never);
    const labels = (await get('/api/devices?sort=label&search=pump-2')).body.devices as { label: string }[];
    expect(labels.map((d) => d.label)).toEqual(['pump-20', 'pump-200', 'pump-210', 'pump-220', 'pump-230', 'pump-240', 'pump-250', 'pump-260', 'pump-270', 'pump-280', 'pump-290']);
    const states = (await get('/api/devices?sort=-state&pageSize=500')).body.devices as { state: string }[];
    expect(states[0].state).toBe('provisioned');
    expect(states[states.length - 1].state).toBe('joined');
    const fw = (await get('/api/devices?sort=firmware&pageSize=500')).body.devices as { firmwareVersion: string }[];
    expect(fw[0].firmwareVersion).toBe('1.0.0');
    expect(fw[fw.length - 1].firmwareVersion).toBe('1.0.4');
  });

  test('bad parameters are refused with 400 and a message naming them', async () => {
    const cases: [string, RegExp][] = [
      ['sort=colour', /sort must be one of id, label, state, firmware, lastSeen/],
      ['sort=--id', /sort must be one of/],
      ['page=0', /page must be a whole number from 1/],
      ['page=1.5', /page must be a whole number/],
      ['pageSize=501', /pageSize must be at most 500/],
      ['pageSize=-3', /pageSize must be a whole number/],
      ['online=yes', /online must be true or false/],
      ['state=asleep', /state must be one of provisioned, pending, joined/],
      ['tag=has%20space', /tag must be 1 to 32 of/],
      ['colour=red', /unknown parameter colour/],
      ['page=1&page=2', /page is given more than once/],
      [`search=${'x'.repeat(101)}`, /search is at most 100 characters/],
    ];
    for (const [q, message] of cases) {
      const r = await get(`/api/devices?${q}`);
      expect([q, r.status]).toEqual([q, 400]);
      expect(String(r.body.error)).toMatch(message);
    }
  });

  test('labels and tags are edited, checked, and counted; bad edits change nothing', async () => {
    const id = hex(5);
    const r = await post(`/api/devices/${id}/meta`, { label: '  Boiler room  ', tags: ['plant:b', 'critical', 'plant:b'] });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ id, label: 'Boiler room', tags: ['critical', 'plant:b'] });
    expect((await get(`/api/devices/${id}`)).body).toMatchObject({ label: 'Boiler room', tags: ['critical', 'plant:b'], online: true, lastSeen: T0 - 5000 });
    const tags = (await get('/api/tags')).body.tags as { tag: string; count: number }[];
    expect(tags.find((t) => t.tag === 'plant:b')).toEqual({ tag: 'plant:b', count: 1 });
    expect(tags.find((t) => t.tag === 'critical')).toEqual({ tag: 'critical', count: expected((i) => i % 3 === 0).length + 1 });
    expect(ids(await get('/api/devices?tag=plant:b'))).toEqual([id]);
    const state = (await get('/api/state')).body.devices as { id: string; tags: string[]; label: string | null }[];
    expect(state.find((d) => d.id === id)).toMatchObject({ label: 'Boiler room', tags: ['critical', 'plant:b'] });
    expect(state.find((d) => d.id === hex(4))?.tags).toEqual(['site-0']);
    const bad: [unknown, RegExp][] = [
      [{}, /give label and\/or tags/],
      [{ label: 7 }, /label must be a string or null/],
      [{ label: 'x'.repeat(101) }, /label is at most 100 characters/],
      [{ label: 'a\nb' }, /control characters/],
      [{ tags: 'critical' }, /tags must be a list of strings/],
      [{ tags: ['ok', 'not ok'] }, /a tag is 1 to 32 of/],
      [{ tags: [''] }, /a tag is 1 to 32 of/],
      [{ tags: ['x'.repeat(33)] }, /a tag is 1 to 32 of/],
      [{ tags: Array.from({ length: 17 }, (_, i) => `t${i}`) }, /at most 16 tags per device/],
      [{ label: 'x', colour: 'red' }, /unknown field colour/],
    ];
    for (const [body, message] of bad) {
      const b = await post(`/api/devices/${id}/meta`, body);
      expect(b.status).toBe(400);
      expect(String(b.body.error)).toMatch(message);
    }
    expect((await get(`/api/devices/${id}`)).body).toMatchObject({ label: 'Boiler room', tags: ['critical', 'plant:b'] });
    expect((await post('/api/devices/0123456789abcdef/meta', { label: 'x' })).status).toBe(404);
    // Clearing: null label, no tags.
    const cleared = await post(`/api/devices/${id}/meta`, { label: null, tags: [] });
    expect(cleared.body).toMatchObject({ label: null, tags: [] });
    expect((await get('/api/devices?tag=plant:b')).body.total).toBe(0);
  });

  test('online follows the silence threshold on the server clock', async () => {
    const id = fleetId(FLEET + 1);
    stack.app.addDevice(id, stack.app.identity.publicPem);
    const show = async () => (await get(`/api/devices/${idToHex(id)}`)).body as { online: boolean; lastSeen: number | null };
    expect(await show()).toMatchObject({ online: false, lastSeen: null });
    stack.app.registry.updateDevice(id, { lastSeen: T0 }, T0);
    now = T0 + SILENCE_MS;
    expect(await show()).toMatchObject({ online: true, lastSeen: T0 });
    expect(ids(await get(`/api/devices?online=true&search=${idToHex(id)}`))).toEqual([idToHex(id)]);
    now = T0 + SILENCE_MS + 1;
    expect(await show()).toMatchObject({ online: false, lastSeen: T0 });
    expect(ids(await get(`/api/devices?online=false&search=${idToHex(id)}`))).toEqual([idToHex(id)]);
    stack.app.removeDevice(id);
  });

  test('removing a device keeps its sequence counters: registered again, it never gets an ID twice', async () => {
    const id = fleetId(FLEET + 2);
    const reg = stack.app.registry;
    stack.app.addDevice(id, stack.app.identity.publicPem, { label: 'gone soon' });
    await post(`/api/devices/${idToHex(id)}/meta`, { tags: ['old'] });
    expect([reg.allocateSequence(id), reg.allocateSequence(id), reg.allocateSequence(id)]).toEqual([1n, 2n, 3n]);
    reg.setLastAccepted(id, 9n);
    const r = await post(`/api/devices/${idToHex(id)}/remove`);
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ ok: true, device: idToHex(id) });
    expect((await get(`/api/devices/${idToHex(id)}`)).status).toBe(404);
    expect((await get(`/api/devices?search=${idToHex(id)}`)).body.total).toBe(0);
    expect((await get('/api/devices?tag=old')).body.total).toBe(0);
    expect((await post(`/api/devices/${idToHex(id)}/remove`)).status).toBe(404);
    expect(reg.sequence(id)).toEqual({ lastSent: 3n, lastAccepted: 9n });
    stack.app.addDevice(id, stack.app.identity.publicPem);
    expect((await get(`/api/devices/${idToHex(id)}`)).body).toMatchObject({ label: null, tags: [], state: 'provisioned' });
    expect(reg.allocateSequence(id)).toBe(10n);
    const audit = await get(`/api/audit?device=${idToHex(id)}&type=remove`);
    expect(audit.body.entries).toEqual([expect.objectContaining({ direction: 'operator', operator: 'admin', type: 'remove', device: idToHex(id), summary: 'removed from the registry' })]);
  });

  test('named operators: added, listed, logging in by name and password or by token, removed', async () => {
    const added = await post('/api/operators', { name: 'alice', password: 'correct horse battery' });
    expect(added.status).toBe(200);
    expect(added.body).toEqual({ name: 'alice' });
    const bob = await post('/api/operators', { name: 'bob' });
    expect(bob.body.name).toBe('bob');
    const bobToken = String(bob.body.token);
    expect(bobToken).toMatch(/^[A-Za-z0-9_-]{32}$/);
    for (const [body, status, message] of [
      [{ name: 'alice', password: 'another password' }, 409, /already/],
      [{ name: 'admin' }, 400, /reserved/],
      [{ name: 'cli' }, 400, /reserved/],
      [{ name: 'Carol' }, 400, /lowercase letter/],
      [{ name: 'carol', password: 'short' }, 400, /8 to 1024 characters/],
      [{ name: 'carol', password: 12345678 }, 400, /8 to 1024 characters/],
    ] as const) {
      const r = await post('/api/operators', body);
      expect([r.status, String(r.body.error)]).toEqual([status, expect.stringMatching(message)]);
    }
    const list = (await get('/api/operators')).body.operators as { name: string; createdAt: number | null; lastLogin: number | null; login: string }[];
    expect(list.map((o) => [o.name, o.login])).toEqual([['admin', 'token'], ['alice', 'password'], ['bob', 'token']]);
    expect(list[1].createdAt).toBe(T0);
    expect(list[1].lastLogin).toBeNull();

    const loginAs = (json: unknown) => request(base, 'POST', '/api/login', { headers: { Origin: base }, json });
    const a = await loginAs({ operator: 'alice', password: 'correct horse battery' });
    expect(a.status).toBe(200);
    expect(a.body.operator).toBe('alice');
    const alice = { cookie: String(a.headers['set-cookie']?.[0]).split(';')[0], csrf: String(a.body.csrf) };
    expect((await get('/api/session', alice)).body.operator).toBe('alice');
    const b = await loginAs({ token: bobToken });
    expect([b.status, b.body.operator]).toEqual([200, 'bob']);
    for (const wrong of [
      { operator: 'alice', password: 'correct horse battery!' },
      { operator: 'mallory', password: 'correct horse battery' },
      { operator: 'bob', password: bobToken },
      { token: bobToken + 'x' },
      { operator: 'alice' },
    ]) {
      const r = await loginAs(wrong);
      expect(r.status).toBe(401);
      expect(r.headers['set-cookie']).toBeUndefined();
    }
    expect((await get('/api/operators')).body.operators).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'alice', lastLogin: T0 })]));

    // What alice does is audited with her name.
    const meta = await post(`/api/devices/${hex(8)}/meta`, { label: 'by alice' }, alice);
    expect(meta.status).toBe(200);
    const entries = (await get(`/api/audit?operator=alice&type=meta`)).body.entries as Record<string, unknown>[];
    expect(entries).toEqual([expect.objectContaining({ operator: 'alice', type: 'meta', device: hex(8), direction: 'operator', summary: 'label "by alice"' })]);

    // Removed: her session ends, her password no longer logs in; bob's token still does.
    const removed = await post('/api/operators/alice/remove');
    expect(removed.status).toBe(200);
    expect((await get('/api/session', alice)).status).toBe(401);
    expect((await loginAs({ operator: 'alice', password: 'correct horse battery' })).status).toBe(401);
    expect((await post('/api/operators/alice/remove')).status).toBe(404);
    expect((await post('/api/operators/admin/remove')).status).toBe(400);
    expect((await loginAs({ token: bobToken })).status).toBe(200);
    const audit = (await get('/api/audit?type=operator.remove')).body.entries as Record<string, unknown>[];
    expect(audit[0]).toMatchObject({ operator: 'admin', summary: 'removed operator alice' });
  });

  test("an operator's commands are audited with the name: the request, its outcome and the message it sent", async () => {
    const id = fleetId(FLEET + 3);
    stack.app.addDevice(id, stack.app.identity.publicPem);
    await post('/api/operators', { name: 'dave', password: 'dave password' });
    const l = await request(base, 'POST', '/api/login', { headers: { Origin: base }, json: { operator: 'dave', password: 'dave password' } });
    const dave = { cookie: String(l.headers['set-cookie']?.[0]).split(';')[0], csrf: String(l.body.csrf) };
    // Not joined: refused (409), and the attempt is audited.
    expect((await post(`/api/devices/${idToHex(id)}/action`, { actionId: 3 }, dave)).status).toBe(409);
    // Joined (no device behind it): the action goes out, nothing answers, the request times out.
    stack.app.registry.updateDevice(id, { state: 'joined', joinKind: 'simple' }, T0);
    expect((await post(`/api/devices/${idToHex(id)}/action`, { actionId: 4 }, dave)).status).toBe(504);
    // A bad request changes nothing and is not audited.
    expect((await post(`/api/devices/${idToHex(id)}/action`, { actionId: 999 }, dave)).status).toBe(400);
    expect((await post(`/api/devices/${idToHex(id)}/data`, { dataId: 'x', kind: 'bytes', value: 'ab'.repeat(70000) }, dave)).status).toBe(400);
    const entries = (await get(`/api/audit?device=${idToHex(id)}&pageSize=10`)).body.entries as Record<string, unknown>[];
    expect(entries.map((e) => [e.direction, e.type, e.operator])).toEqual([
      ['operator', 'action', 'dave'],
      ['out', 'action', 'dave'],
      ['operator', 'action', 'dave'],
    ]);
    expect(String(entries[0].summary)).toMatch(/^action 4: failed \(/);
    expect(entries[1]).toMatchObject({ sequenceId: expect.any(String), summary: 'to the device' });
    expect(String(entries[2].summary)).toMatch(/^action 3: failed \(.*not joined/);
  });

  test('the audit filters by device, type, operator and time, pages, and refuses bad filters', async () => {
    const dev = fleetId(FLEET + 4);
    const at = (t: number, type: string, operator: string) => {
      now = t;
      stack.app.record(operator, type, dev, `${type} at ${t}`);
    };
    at(T0 + 10_000, 'x.one', 'erin');
    at(T0 + 20_000, 'x.two', 'erin');
    at(T0 + 30_000, 'x.one', 'frank');
    const q = async (s: string) => ((await get(`/api/audit?device=${idToHex(dev)}&${s}`)).body as { entries: { summary: string }[]; total: number });
    expect((await q('')).entries.map((e) => e.summary)).toEqual(['x.one at 1800000030000', 'x.two at 1800000020000', 'x.one at 1800000010000']);
    expect((await q('type=x.one')).total).toBe(2);
    expect((await q('operator=erin')).entries.map((e) => e.summary)).toEqual(['x.two at 1800000020000', 'x.one at 1800000010000']);
    expect((await q(`from=${T0 + 15_000}&to=${T0 + 30_000}`)).entries.map((e) => e.summary)).toEqual(['x.one at 1800000030000', 'x.two at 1800000020000']);
    expect((await q('operator=erin&type=x.one')).total).toBe(1);
    const page2 = await q('pageSize=2&page=2');
    expect([page2.total, page2.entries.map((e) => e.summary)]).toEqual([3, ['x.one at 1800000010000']]);
    for (const [s, message] of [
      ['device=xyz', /device must be a device id/],
      ['from=yesterday', /from must be a time in ms/],
      [`from=${T0 + 2}&to=${T0 + 1}`, /from must not be after to/],
      ['pageSize=0', /pageSize must be a whole number from 1 to 500/],
      ['type=a%20b', /type must be/],
      ['direction=sideways', /direction must be in, out or operator/],
      ['who=me', /unknown parameter who/],
    ] as const) {
      const r = await get(`/api/audit?${s}`);
      expect([s, r.status, String(r.body.error)]).toEqual([s, 400, expect.stringMatching(message)]);
    }
    // The old form still answers the newest messages.
    const old = await get('/api/audit?limit=5');
    expect(Array.isArray(old.body.audit)).toBe(true);
  });

  test('the CSV export holds every matching entry, quoting commas, quotes and newlines', async () => {
    const dev = fleetId(FLEET + 5);
    now = T0 + 99_000;
    stack.app.record('grace', 'csv.test', dev, 'plain');
    stack.app.record('grace', 'csv.test', dev, 'a, "quoted" word');
    stack.app.record('grace', 'csv.test', dev, 'two\nlines\r\nhere');
    stack.app.record('grace', 'csv.test', dev, '=HYPERLINK("http://x")');
    const r = await get(`/api/audit.csv?type=csv.test&operator=grace`);
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('text/csv; charset=utf-8');
    expect(r.headers['content-disposition']).toBe('attachment; filename="audit.csv"');
    const rows = parseCsv(r.text);
    expect(rows[0]).toEqual(['id', 'time', 'at', 'device', 'direction', 'type', 'operator', 'summary', 'sequence_id', 'status']);
    expect(rows.slice(1).map((x) => x[7])).toEqual(["'=HYPERLINK(\"http://x\")", 'two\nlines\r\nhere', 'a, "quoted" word', 'plain']);
    expect(rows[1].slice(1, 7)).toEqual([new Date(T0 + 99_000).toISOString(), String(T0 + 99_000), idToHex(dev), 'operator', 'csv.test', 'grace']);
    expect((await get('/api/audit.csv?page=2')).status).toBe(400);
    // More entries than one read (1,000): every one, once, newest first.
    stack.app.registry.transaction(() => {
      for (let i = 0; i < 2500; i++) stack.app.record('grace', 'csv.bulk', null, `n${i}`);
    });
    const bulk = parseCsv((await get('/api/audit.csv?type=csv.bulk')).text).slice(1);
    expect(bulk.map((x) => x[7])).toEqual(Array.from({ length: 2500 }, (_, i) => `n${2499 - i}`));
    expect(bulk.every((x) => x[3] === '')).toBe(true);
    // Unauthenticated: refused.
    expect((await request(base, 'GET', '/api/audit.csv')).status).toBe(401);
  });

  test('srup c2 operator add/list/remove, list and audit filters, meta and remove through the CLI', async () => {
    const run = async (...args: string[]) => {
      let text = '';
      const stream = new Writable({ write(c, _e, cb) { text += c.toString(); cb(); } });
      const code = await main(['c2', ...args, '--data', path.join(stack.dir, 'c2')], { stdout: stream as never, stderr: stream as never });
      return { code, text };
    };
    const help = await run('operator', '--help');
    expect(help.code).toBe(0);
    expect(help.text).toContain('operator add NAME [--password-file FILE] | operator list | operator remove NAME');
    const pw = path.join(stack.dir, 'heidi.pw');
    fs.writeFileSync(pw, 'heidi secret words\n');
    const add = await run('operator', 'add', 'heidi', '--password-file', pw);
    expect(add).toEqual({ code: 0, text: 'operator heidi added: they log in with their name and password\n' });
    const ok = await request(base, 'POST', '/api/login', { headers: { Origin: base }, json: { operator: 'heidi', password: 'heidi secret words' } });
    expect(ok.status).toBe(200);
    const tok = await run('operator', 'add', 'ivan', '--json');
    const token = (JSON.parse(tok.text) as { token: string }).token;
    expect((await request(base, 'POST', '/api/login', { headers: { Origin: base }, json: { token } })).body.operator).toBe('ivan');
    const list = await run('operator', 'list');
    expect(list.text).toMatch(/^heidi +password /m);
    expect(list.text).toMatch(/^ivan +token /m);
    expect((await run('operator', 'add', 'heidi')).code).toBe(1);
    expect((await run('operator', 'frobnicate', 'x')).code).toBe(2);
    expect((await run('operator', 'remove', 'ivan')).code).toBe(0);
    expect((await run('operator', 'list')).text).not.toMatch(/^ivan /m);

    const meta = await run('meta', hex(9), '--label', 'cli label', '--tags', 'a,b');
    expect(meta).toEqual({ code: 0, text: `device ${hex(9)}: label cli label, tags a b\n` });
    const listed = await run('list', '--tag', 'a', '--json');
    expect((JSON.parse(listed.text) as { devices: { id: string }[] }).devices.map((d) => d.id)).toEqual([hex(9)]);
    const all = await run('list', '--json');
    expect((JSON.parse(all.text) as { total: number }).total).toBeGreaterThan(FLEET); // every page, not the first 50
    expect((await run('remove', hex(10))).code).toBe(2); // no --yes and no terminal
    expect((await run('remove', hex(10), '--yes')).code).toBe(0);
    const audit = await run('audit', '--operator', 'cli', '--type', 'remove');
    expect(audit.text).toContain(hex(10));
    expect(audit.text).toMatch(/op +[0-9a-f]{16} +remove +cli +removed from the registry/);
    const csv = await run('audit', '--operator', 'cli', '--csv');
    const rows = parseCsv(csv.text);
    expect(rows[0][0]).toBe('id');
    expect(rows.slice(1).map((r) => r[5])).toEqual(expect.arrayContaining(['remove', 'meta', 'operator.add', 'operator.remove']));
  });
});
