/**
 * Two C2 server nodes serving one fleet: two `srup c2 serve --db postgres://...` processes with the same identity,
 * one PostgreSQL database and one Mosquitto (shared subscriptions), four virtual devices running the real agent.
 *
 * Commands go through either node (the answer may reach the other one: the nodes tell each other over LISTEN/
 * NOTIFY), console events reach both nodes' event streams, and a kill -9 of one node in the middle of an update
 * campaign and a burst of commands leaves the other to finish the campaign with no command executed twice, no
 * sequence ID sent twice and no message accepted twice.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { PgDb } from '../hosts/node/pg-db.js';
import { loadOrCreateIdentity } from '../tools/c2/identity.js';
import { VirtualDevice, demoImage, provisionVirtualDevice } from '../tools/c2/virtual.js';
import { request, until } from './support/browser.js';
import { bundleCli } from './support/e2e-process.js';
import { startHttpServer, type TestHttpServer } from './support/http-server.js';
import { findMosquitto, startMosquitto, type Mosquitto } from './support/mosquitto.js';
import { dropPgSchemas, freshPgUrl, pgDescribe } from './support/postgres.js';

interface Node {
  readonly dir: string;
  child: ChildProcess;
  base: string;
}

const DEVICES = 4;

const describeWith = findMosquitto() ? pgDescribe : (name: string, fn: () => void) => describe.skip(name, fn);

describeWith('two C2 nodes on one PostgreSQL and one Mosquitto', () => {
  let script: string;
  let mosquitto: Mosquitto;
  let files: TestHttpServer;
  let dbUrl: string;
  let root: string;
  const nodes: Node[] = [];
  const devices: VirtualDevice[] = [];
  /** Per device: the action ids it executed, in order; and the replays it refused. */
  const executed = new Map<bigint, number[]>();
  let auth: Record<string, string>;

  async function startNode(i: number): Promise<Node> {
    const dir = path.join(root, `node${i}`);
    const child = spawn(process.execPath, [script, 'c2', 'serve', '--data', dir, '--db', dbUrl, '--broker', mosquitto.url, '--http', '0', '--initiate-timeout', '20'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr!.on("data", (b: Buffer) => { err = (err + b.toString()).slice(-6000); if (process.env.C2_NODES_LOG) fs.appendFileSync(`${process.env.C2_NODES_LOG}.${i}`, b); });
    const base = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (b: Buffer) => {
        out += b.toString();
        const m = /Console: (http:\/\/[^/\s]+)/.exec(out);
        if (m) resolve(m[1]);
      });
      child.on('exit', (code) => reject(new Error(`node ${i} exited ${code}: ${err}`)));
    });
    return { dir, child, base };
  }

  const api = (n: Node, method: string, p: string, json?: unknown) => request(n.base, method, p, { headers: auth, ...(json !== undefined ? { json } : {}) });

  beforeAll(async () => {
    script = await bundleCli();
    mosquitto = await startMosquitto();
    files = await startHttpServer();
    dbUrl = freshPgUrl();
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'c2-nodes-'));
    nodes.push(await startNode(0));
    // The second node: the same identity (and CLI token) in a data directory of its own.
    fs.mkdirSync(path.join(root, 'node1'), { mode: 0o700 });
    for (const f of ['server.json', 'private.pem', 'public.pem', 'cli-token']) {
      fs.copyFileSync(path.join(root, 'node0', f), path.join(root, 'node1', f));
    }
    nodes.push(await startNode(1));
    auth = { Authorization: `Bearer ${fs.readFileSync(path.join(root, 'node0', 'cli-token'), 'utf8').trim()}` };
    const identity = loadOrCreateIdentity(path.join(root, 'node0')).identity;
    for (let i = 0; i < DEVICES; i++) {
      const p = provisionVirtualDevice(path.join(root, 'devices', String(i)), { brokerUrl: mosquitto.url, serverId: identity.id, serverPublicPem: identity.publicPem });
      const r = await api(nodes[i % 2], 'POST', '/api/devices', { id: p.id.toString(16).padStart(16, '0'), publicKey: p.publicPem });
      expect(r.status).toBe(200);
      executed.set(p.id, []);
      devices.push(
        VirtualDevice.start(p.dir, {
          onEvent: (e, d) => {
            if (e.type === 'action') executed.get(d.id)!.push(e.actionId);
          },
        }),
      );
    }
    expect(await Promise.all(devices.map((d) => d.join('simple')))).toEqual(Array(DEVICES).fill('joined'));
  }, 120_000);

  afterAll(async () => {
    await Promise.all(devices.map((d) => d.close()));
    for (const n of nodes) if (n.child.exitCode === null && n.child.signalCode === null) n.child.kill('SIGKILL');
    await files?.close();
    await mosquitto?.dispose();
    dropPgSchemas();
    fs.rmSync(root, { recursive: true, force: true });
  });

  const hex = (id: bigint) => id.toString(16).padStart(16, '0');

  test('commands and ID requests through either node are answered; console events reach both nodes', async () => {
    // An event stream on node 1 sees what node 0 does.
    const seen: string[] = [];
    const stream = await new Promise<http.ClientRequest>((resolve) => {
      const req = http.get(`${nodes[1].base}/api/events`, { headers: auth }, (res) => {
        res.on('data', (b: Buffer) => seen.push(b.toString()));
        resolve(req);
      });
    });
    try {
      // All devices at once; each device's three commands one after another, through both nodes. (Commands to one
      // device sent at the same moment through two nodes can reach it out of order, and the device, which keeps
      // the strict order, refuses the older one as a replay: docs/c2.md, "Several nodes".)
      const perDevice = await Promise.all(
        devices.map(async (d, i) => [
          await api(nodes[0], 'POST', `/api/devices/${hex(d.id)}/action`, { actionId: 1 }),
          await api(nodes[1], 'POST', `/api/devices/${hex(d.id)}/action`, { actionId: 2 }),
          await api(nodes[i % 2], 'POST', `/api/devices/${hex(d.id)}/id`, {}),
        ]),
      );
      const answers = perDevice.flat();
      expect(answers.map((a) => a.status)).toEqual(Array(3 * DEVICES).fill(200));
      expect(answers.filter((_, k) => k % 3 !== 2).map((a) => a.body.status)).toEqual(Array(2 * DEVICES).fill(0x20));
      expect(answers.filter((_, k) => k % 3 === 2).map((a) => a.body.identification)).toEqual(Array(DEVICES).fill('srup-virtual 1.0.0'));
      const r = await api(nodes[0], 'POST', `/api/devices/${hex(devices[0].id)}/profile`, { profile: 'srup' });
      expect(r.status).toBe(200);
      await api(nodes[0], 'POST', '/api/devices', { id: 'abcdef', publicKey: fs.readFileSync(path.join(root, 'node0', 'public.pem'), 'utf8'), label: 'from node 0' });
      await until('node 1 streamed node 0 registering a device', () => seen.join('').includes('event: devices'));
      expect(seen.join('')).toMatch(/event: c2\ndata: \{"kind":"c2","event":\{"type":"response"/);
    } finally {
      stream.destroy();
    }
  }, 60_000);

  test('kill -9 of one node during a campaign and a burst of commands: the other finishes, nothing twice', async () => {
    const image = demoImage('srup-virtual', '2.0.0', 32 * 1024);
    files.serve('/fw-2.bin', image, { chunk: 4096, delayMs: 20 });
    const digest = createHash('sha256').update(image).digest('hex');
    for (const list of executed.values()) list.length = 0;
    const [a, b] = nodes;
    const c = await api(a, 'POST', '/api/campaigns', { name: 'fw 2', url: files.url('/fw-2.bin'), digest, devices: devices.map((d) => hex(d.id)), autoActivate: true });
    expect(c.status).toBe(200);
    const campaign = c.body.id as number;

    // A burst of commands through both nodes, each with its own action id per device; node 0 dies in it.
    const burst: { device: bigint; actionId: number; via: 0 | 1; status: number | null }[] = [];
    const calls: Promise<void>[] = [];
    for (let k = 0; k < 40; k++) {
      const d = devices[k % DEVICES];
      const entry = { device: d.id, actionId: 10 + k, via: (k % 2) as 0 | 1, status: null as number | null };
      burst.push(entry);
      calls.push(
        api(nodes[entry.via], 'POST', `/api/devices/${hex(d.id)}/action`, { actionId: entry.actionId }).then(
          (r) => void (entry.status = r.status === 200 ? (r.body.status as number) : -r.status),
          () => void (entry.status = -1),
        ),
      );
      if (k === 15) {
        a.child.kill('SIGKILL');
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    await Promise.all(calls);
    const answered = burst.filter((e) => e.status !== null && e.status > 0);
    // Every command the surviving node was asked is answered (0x2E: the agent knows actions 1 and 2 only), or,
    // when the device's answer was on its way to the dead node, times out (504); those asked of the dead node
    // may have gone out or not. Below: each of them was executed once at most, every answered one exactly once.
    const viaB = burst.filter((e) => e.via === 1);
    expect(viaB.filter((e) => e.status !== 0x2e && e.status !== -504)).toEqual([]);
    const timedOut = viaB.filter((e) => e.status === -504);

    // Node 1 finishes the campaign (a download whose answer died with node 0 times out and is sent again).
    let last: unknown = null;
    const done = await until(
      'the campaign finished on node 1',
      async () => {
        const v = (await api(b, 'GET', `/api/campaigns/${campaign}`)).body as { done: number; targets: { state: string; device: string }[] };
        last = v;
        const failed = v.targets.filter((t) => t.state === 'failed').map((t) => t.device);
        if (failed.length > 0) await api(b, 'POST', `/api/campaigns/${campaign}/retry`, { devices: failed });
        return v.targets.every((t) => t.state === 'confirmed') ? v : null;
      },
      90_000,
    ).catch((e: Error) => {
      throw new Error(`${e.message}: ${JSON.stringify(last)}`);
    });
    expect(done.done).toBe(DEVICES);
    await until('every device runs 2.0.0', () => devices.every((d) => d.firmware.version === '2.0.0'));

    // No command executed twice; every answered one executed once.
    for (const [id, list] of executed) {
      const mine = burst.filter((e) => e.device === id).map((e) => e.actionId);
      const ran = list.filter((x) => mine.includes(x));
      expect(new Set(ran).size).toBe(ran.length);
      for (const e of answered.filter((x) => x.device === id)) expect(ran.filter((x) => x === e.actionId)).toHaveLength(1);
    }
    // No sequence ID sent twice to a device, none accepted twice from one (operator actions carry none).
    const db = new PgDb(dbUrl);
    try {
      const dup = db.all<{ direction: string; n: number }>(
        `SELECT direction, COUNT(*) AS n FROM (SELECT direction, device, sequence_id FROM audit WHERE direction IN ('in', 'out') GROUP BY direction, device, sequence_id HAVING COUNT(*) > 1) d GROUP BY direction`,
      );
      expect(dup).toEqual([]);
      const sent = db.get<{ n: number }>(`SELECT COUNT(*) AS n FROM audit WHERE direction = 'out'`)!.n;
      expect(Number(sent)).toBeGreaterThan(40);
      // The figures for the record.
      const lost = burst.filter((e) => e.via === 0 && !(e.status !== null && e.status > 0)).length;
      const ranOnce = [...executed.values()].reduce((n, l) => n + l.filter((x) => x >= 10).length, 0);
      process.stdout.write(
        `two nodes, kill -9 of node 0: ${answered.length}/40 commands answered, ${ranOnce} executed (each once), ` +
          `${lost} asked of node 0 unanswered, ${timedOut.length} asked of node 1 timed out (answer was on its way to node 0), ` +
          `0 executed twice, 0 sequence IDs reused, 0 replays accepted, campaign confirmed on ${done.done}/${DEVICES} devices\n`,
      );
    } finally {
      db.close();
    }
  }, 150_000);
});
