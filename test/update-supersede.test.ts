/**
 * A newer initiate from the server replaces a running download, with each host's real downloader: the old
 * download's connection is closed at once (not when the server next sends, nor after the stall window), the old
 * command is answered 0xFE and the new image is staged. Node: hosts/node/downloader.ts against a local HTTP
 * server that stops sending; Moddable: hosts/moddable/downloader.ts over a stand-in for the SDK's HTTP client.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { parsePrivateKeyPem, parsePublicKeyPem } from '../crypto/keys.js';
import { nodeCrypto } from '../hosts/node/crypto.js';
import { HttpDownloader as NodeDownloader } from '../hosts/node/downloader.js';
import { Agent } from '../modules/agent/agent.js';
import type { Downloader } from '../modules/agent/host.js';
import { MemoryKeyStore, MemorySequenceStore } from '../modules/agent/memory.js';
import { utf8 } from '../modules/srup/bytes.js';
import { decode } from '../modules/srup/codec.js';
import { Status } from '../modules/srup/schema.js';
import { sealMessage } from '../modules/srup/session.js';
import { CollectingLog, FakeUpdater, ManualClock, RecordingPresenter, seededRandom } from './support/fakes.js';
import { MemoryBroker } from './support/memory-broker.js';

const KEYS = path.join(__dirname, 'data', 'srup-vectors', 'keys');
const pem = (f: string) => fs.readFileSync(path.join(KEYS, f), 'utf8');
const devicePriv = parsePrivateKeyPem(pem('recipient-1.private.pem'));
const serverPriv = parsePrivateKeyPem(pem('signer-1.private.pem'));
const serverPub = parsePublicKeyPem(pem('signer-1.public.pem'));
const DEVICE = 0x04a0f1b2c3d4e5f6n;
const DEVICE_TOPIC = 'SRUP/4a0f1b2c3d4e5f6';
const SERVER = 0x5e12d3c4b5a69788n;
const IMAGE = new Uint8Array(Array.from({ length: 10_000 }, (_, i) => (i * 7) & 255));
const DIGEST = createHash('sha256').update(IMAGE).digest('hex');

async function device(downloader: Downloader) {
  const broker = new MemoryBroker();
  const updater = new FakeUpdater(new Uint8Array([1]));
  const seqs = new MemorySequenceStore();
  const agent = new Agent(
    {
      transport: broker.client('SRUP Client: 4a0f1b2c3d4e5f6'),
      keys: new MemoryKeyStore({ deviceId: DEVICE, privateKey: devicePriv, serverId: SERVER, peers: [[SERVER, serverPub]] }),
      sequences: seqs,
      clock: new ManualClock(),
      crypto: nodeCrypto,
      random: seededRandom(9),
      presenter: new RecordingPresenter(),
      downloader,
      updater,
      log: new CollectingLog().log,
    },
    { firmwareName: 'fw', firmwareVersion: '1.0.0' },
  );
  const c2 = broker.client('c2');
  c2.listen({ message: () => undefined, connected: () => undefined, disconnected: () => undefined });
  c2.start();
  agent.start();
  await broker.settle();
  let seq = 0n;
  const initiate = (url: string, token: string) =>
    c2.publish(DEVICE_TOPIC, sealMessage(nodeCrypto, serverPriv, { type: 'initiate', sequenceId: ++seq, senderId: SERVER, token: utf8(token), fields: { url: utf8(url), digest: utf8(DIGEST) } }));
  const answers = () =>
    broker.log
      .filter((p) => p.client?.startsWith('SRUP Client') === true)
      .map((p) => decode(p.payload))
      .map((m) => [Buffer.from(m.token).toString(), m.type === 'response' ? m.fields.status : -1]);
  return { broker, agent, updater, seqs, initiate, answers };
}

test('Node host: the stalled download is closed as soon as the newer initiate arrives', async () => {
  let firstClosed = false;
  const server = http.createServer((req, res) => {
    if (req.url === '/stalls.bin') {
      res.writeHead(200, { 'content-length': String(IMAGE.length) });
      res.write(IMAGE.subarray(0, 100)); // then nothing
      req.socket.on('close', () => (firstClosed = true));
      return;
    }
    res.writeHead(200, { 'content-length': String(IMAGE.length) });
    res.end(IMAGE);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  // A stall window far longer than the test: only the replacement can end the first download.
  const d = await device(new NodeDownloader({ stallWindowMs: 600_000 }));
  try {
    await d.initiate(`${base}/stalls.bin`, 'first');
    const until = Date.now() + 10_000;
    while (d.updater.calls.filter((c) => c.startsWith('write')).length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    expect(d.agent.updating).toBe(true);
    await d.initiate(`${base}/whole.bin`, 'second');
    await d.broker.settle();
    await d.agent.idle();
    await d.broker.settle();
    expect(d.answers()).toEqual(
      expect.arrayContaining([
        ['second', Status.UPDATE_SUCCESS],
        ['first', Status.UPDATE_FAIL_FILE],
      ]),
    );
    expect(d.answers()).toHaveLength(2);
    expect(d.updater.inactive).toEqual(IMAGE);
    expect(d.seqs.pendingUpdate()?.token).toEqual(utf8('second'));
    const closeBy = Date.now() + 5_000;
    while (!firstClosed && Date.now() < closeBy) await new Promise((r) => setTimeout(r, 10));
    expect(firstClosed).toBe(true);
  } finally {
    await d.agent.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
});

test('Moddable host: the running download is closed as soon as the newer initiate arrives', async () => {
  /** The request as the SDK's HTTP client gives it: read(into) fills `into` from the body. */
  type Body = { read(into: Uint8Array): number | undefined };
  type Req = {
    path: string;
    onHeaders?: (this: Body, status: number, headers: Map<string, string>) => void;
    onReadable?: (this: Body, count: number) => void;
    onDone?: (this: Body, error?: unknown) => void;
  };
  const body = (bytes: Uint8Array): Body => {
    let at = 0;
    return {
      read(into) {
        const n = Math.min(into.length, bytes.length - at);
        into.set(bytes.subarray(at, at + n));
        at += n;
        return n;
      },
    };
  };
  const clients: { req: Req | null; closed: boolean }[] = [];
  class FakeClient {
    private readonly me = { req: null as Req | null, closed: false };
    constructor() {
      clients.push(this.me);
    }
    request(r: Req): object {
      this.me.req = r;
      return {};
    }
    close(): void {
      this.me.closed = true;
    }
  }
  const timers = new Set<number>();
  let next = 1;
  let mod: unknown;
  jest.isolateModules(() => {
    jest.doMock('timer', () => ({
      __esModule: true,
      default: {
        set: () => {
          timers.add(next);
          return next++;
        },
        clear: (id: number | undefined) => void (id !== undefined && timers.delete(id)),
      },
    }), { virtual: true });
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    mod = require('../hosts/moddable/downloader');
  });
  (globalThis as unknown as { device: unknown }).device = { network: { http: { io: FakeClient } } };
  const { HttpDownloader } = mod as { HttpDownloader: new () => Downloader };
  const d = await device(new HttpDownloader());
  try {
    await d.initiate('http://files.example/first.bin', 'first');
    await d.broker.settle();
    const first = clients[0];
    const self = body(IMAGE.slice(0, 100));
    first.req!.onHeaders!.call(self, 200, new Map());
    first.req!.onReadable!.call(self, 100);
    expect(d.agent.updating).toBe(true);

    await d.initiate('http://files.example/second.bin', 'second');
    await d.broker.settle();
    expect(first.closed).toBe(true); // before the second's server even answered
    const second = clients[1];
    expect(second.req!.path).toBe('/second.bin');
    second.req!.onHeaders!.call(self, 200, new Map());
    second.req!.onReadable!.call(body(IMAGE), IMAGE.length);
    second.req!.onDone!.call(self);
    await d.broker.settle();
    await d.agent.idle();
    await d.broker.settle();
    expect(d.answers()).toEqual([
      ['first', Status.UPDATE_FAIL_FILE],
      ['second', Status.UPDATE_SUCCESS],
    ]);
    expect(d.updater.inactive).toEqual(IMAGE);
    expect(timers.size).toBe(0); // both downloads' timers cleared
  } finally {
    await d.agent.close();
    delete (globalThis as unknown as { device?: unknown }).device;
  }
});
