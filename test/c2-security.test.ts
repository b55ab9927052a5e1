/**
 * The console's HTTP server against hostile or careless requests: a logged-out session's event stream, malformed
 * image names, an unbounded audit query, and an image larger than the server takes.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { Writable } from 'node:stream';
import { C2Client } from '../tools/c2/client.js';
import { main } from '../tools/srup.js';
import { MAX_IMAGE_BYTES } from '../tools/c2/campaigns.js';
import { findMosquitto } from './support/mosquitto.js';
import { login, request, startStack, until, type Stack } from './support/browser.js';

const describeIf = findMosquitto() ? describe : describe.skip;
if (!findMosquitto()) process.stderr.write('c2 security tests skipped: no mosquitto binary (apt-get install -y mosquitto)\n');

describeIf('C2 server security', () => {
  let stack: Stack;
  let base: string;
  let token: string;

  beforeAll(async () => {
    stack = await startStack({ devices: 0 });
    base = stack.app.url;
    token = stack.app.operatorToken as string;
  }, 60000);

  afterAll(async () => {
    await stack?.stop();
  });

  test('logging out ends the session\'s event stream: nothing more reaches it', async () => {
    const s = await login(base, token);
    let text = '';
    let ended = false;
    const req = http.get(new URL('/api/events', base), { headers: { Cookie: s.cookie } }, (res) => {
      expect(res.statusCode).toBe(200);
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => (ended = true));
      res.on('close', () => (ended = true));
    });
    req.on('error', () => (ended = true));
    try {
      await until('the stream opens', () => text.includes('retry:'));
      stack.app.emit({ kind: 'devices' });
      await until('the event arrives', () => text.includes('event: devices'));
      const out = await request(base, 'POST', '/api/logout', { headers: { Origin: base, Cookie: s.cookie } });
      expect(out.status).toBe(200);
      await until('the stream ends', () => ended, 2000);
      const before = text.length;
      stack.app.emit({ kind: 'campaign', id: 7 });
      await new Promise((r) => setTimeout(r, 100));
      expect(text.length).toBe(before);
      expect(text).not.toContain('event: campaign');
    } finally {
      req.destroy();
    }
  });

  test('the CLI shows a device\'s text without its control characters: no terminal escapes, no forged lines', async () => {
    const id = 0xbadc0de5n;
    stack.app.addDevice(id, stack.app.identity.publicPem, { label: 'lab\x1b[8m' });
    const evil = 'fw\x1b]0;owned\x07\x1b[2J\r\nffffffffffffffff  joined  srup 1.0 \u202e';
    stack.app.registry.updateDevice(id, { identification: evil + ' 9.9', firmwareName: evil, firmwareVersion: '9.9' }, Date.now());
    const run = async (args: string[]) => {
      let text = '';
      const stream = new Writable({ write(c, _e, cb) { text += c.toString(); cb(); } });
      const code = await main(['c2', ...args, '--data', path.join(stack.dir, 'c2')], { stdout: stream as never, stderr: stream as never });
      return { code, text };
    };
    for (const args of [['list'], ['show', id.toString(16)]]) {
      const { code, text } = await run(args);
      expect(code).toBe(0);
      expect(text).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/);
      // The forged row stays inside the device's own line.
      expect(text.split('\n').filter((l) => l.startsWith('ffffffffffffffff'))).toEqual([]);
      expect(text).toContain('fw\\x1b]0;owned\\x07\\x1b[2J\\r\\nffffffffffffffff');
    }
    // --json keeps the text exactly as the device sent it.
    const { text } = await run(['show', id.toString(16), '--json']);
    expect(JSON.parse(text).identification).toBe(evil + ' 9.9');
  });

  test('a JSON body over 1 MiB is answered 413, not a reset connection', async () => {
    const s = await login(base, token);
    const r = await request(base, 'POST', '/api/devices', {
      headers: { Origin: base, Cookie: s.cookie, 'X-CSRF-Token': s.csrf },
      json: { id: '1234', publicKey: 'x'.repeat(2 * 1024 * 1024) },
    });
    expect(r.status).toBe(413);
    expect(r.body.error).toBe('request body too large');
  });

  test('a malformed image name is not found (not an internal error)', async () => {
    for (const p of ['/images/%E0%A4%A.bin', '/images/%', '/images/..%2fc2.db', '/images/%2e%2e%2fprivate.pem']) {
      const r = await request(base, 'GET', p);
      expect([p, r.status]).toEqual([p, 404]);
      expect(r.text).toBe('not found\n');
    }
  });

  test('the audit query is bounded whatever limit is asked for', async () => {
    const reg = stack.app.registry;
    for (let i = 0; i < 620; i++) {
      reg.appendAudit({ at: i, direction: 'in', device: 0x1234n, type: 'data', sequenceId: BigInt(i + 1), token: new Uint8Array(0), status: null, bytes: new Uint8Array(4) });
    }
    const s = await login(base, token);
    const ask = async (q: string) => {
      const r = await request(base, 'GET', `/api/audit${q}`, { headers: { Cookie: s.cookie } });
      expect(r.status).toBe(200);
      return (r.body.audit as unknown[]).length;
    };
    expect(await ask('')).toBe(100);
    expect(await ask('?limit=10')).toBe(10);
    expect(await ask('?limit=100000')).toBe(500);
    expect(await ask('?limit=-1')).toBe(100);
    expect(await ask('?limit=2.5')).toBe(100);
    expect(await ask('?limit=abc')).toBe(100);
  });

  test('a campaign URL must be http(s), also when its digest is given', async () => {
    const id = 0x5eed5eedn;
    stack.app.addDevice(id, stack.app.identity.publicPem);
    stack.app.registry.updateDevice(id, { state: 'joined', joinKind: 'simple' }, Date.now());
    const s = await login(base, token);
    for (const url of ['ftp://example.com/fw.bin', 'javascript:alert(1)', 'not a url', 'file:///etc/passwd']) {
      const r = await request(base, 'POST', '/api/campaigns', {
        headers: { Origin: base, Cookie: s.cookie, 'X-CSRF-Token': s.csrf },
        json: { url, digest: 'a'.repeat(64), devices: [id.toString(16)] },
      });
      expect([url, r.status]).toEqual([url, 400]);
    }
    expect(stack.app.campaigns.list()).toEqual([]);
  });

  test('an image larger than the server takes is refused with a clear message, also from the CLI', async () => {
    const s = await login(base, token);
    // The Content-Length alone says it is too large: refused before anything is read.
    const big = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = http.request(new URL('/api/images', base), {
        method: 'POST',
        headers: { Origin: base, Cookie: s.cookie, 'X-CSRF-Token': s.csrf, 'Content-Type': 'application/octet-stream', 'Content-Length': MAX_IMAGE_BYTES + 1 },
      }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      });
      req.on('error', reject);
      req.write(Buffer.alloc(1024));
    });
    expect(big.status).toBe(413);
    expect(JSON.parse(big.text).error).toMatch(/too large/);
    // The CLI streams the file: it gets the server's answer, not "no C2 server".
    const file = path.join(stack.dir, 'huge.bin');
    fs.closeSync(fs.openSync(file, 'w'));
    fs.truncateSync(file, MAX_IMAGE_BYTES + 1); // sparse: no disk space used
    const cliToken = fs.readFileSync(path.join(stack.dir, 'c2', 'cli-token'), 'utf8').trim();
    const client = new C2Client({ base, token: cliToken });
    await expect(client.upload('/api/images', file)).rejects.toMatchObject({ status: 413, message: expect.stringMatching(/too large/) });
    fs.rmSync(file);
    // Nothing was left behind in the images directory.
    const images = path.join(stack.dir, 'c2', 'images');
    expect(fs.existsSync(images) ? fs.readdirSync(images) : []).toEqual([]);
  }, 60000);
});

describeIf('C2 server uploads', () => {
  let stack: Stack;
  let base: string;

  beforeAll(async () => {
    stack = await startStack({ devices: 0 });
    base = stack.app.url;
  }, 60000);

  afterAll(async () => {
    await stack?.stop();
  });

  const images = () => {
    const dir = path.join(stack.dir, 'c2', 'images');
    return fs.existsSync(dir) ? fs.readdirSync(dir) : [];
  };

  test('an upload the client abandons leaves no temporary file behind', async () => {
    const s = await login(base, stack.app.operatorToken as string);
    const req = http.request(new URL('/api/images', base), {
      method: 'POST',
      headers: { Origin: base, Cookie: s.cookie, 'X-CSRF-Token': s.csrf, 'Content-Type': 'application/octet-stream', 'Content-Length': 10 * 1024 * 1024 },
    });
    req.on('error', () => undefined);
    req.write(Buffer.alloc(1024 * 1024));
    await until('the upload starts', () => images().some((f) => f.startsWith('.upload-')), 5000);
    req.destroy();
    await until('the temporary file is removed', () => images().length === 0, 5000);
  });

  test('a chunked upload that grows past the limit is answered 413', async () => {
    const s = await login(base, stack.app.operatorToken as string);
    const r = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = http.request(new URL('/api/images', base), {
        method: 'POST',
        headers: { Origin: base, Cookie: s.cookie, 'X-CSRF-Token': s.csrf, 'Content-Type': 'application/octet-stream', 'Transfer-Encoding': 'chunked' },
      }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      });
      req.on('error', reject);
      const chunk = Buffer.alloc(4 * 1024 * 1024);
      let sent = 0;
      const pump = () => {
        while (sent <= MAX_IMAGE_BYTES + chunk.length) {
          sent += chunk.length;
          if (!req.write(chunk)) {
            req.once('drain', pump);
            return;
          }
        }
      };
      req.on('response', () => (sent = Infinity));
      pump();
    });
    expect(r.status).toBe(413);
    expect(JSON.parse(r.text).error).toMatch(/larger than/);
    await until('nothing is left behind', () => images().length === 0, 5000);
  }, 60000);
});

describeIf('C2 server first start', () => {
  test('a second server on a data directory another one is still starting in is refused, and touches nothing', async () => {
    const { spawn } = await import('node:child_process');
    const os = await import('node:os');
    const { C2App } = await import('../tools/c2/app.js');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2-race-'));
    // Another live process holds the directory: it is between creating its identity and listening.
    const other = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      fs.writeFileSync(path.join(dir, 'c2.lock'), `${other.pid}\n`);
      await expect(C2App.start({ dataDir: dir, brokerUrl: 'mqtt://127.0.0.1:1', httpPort: 0, log: () => undefined }))
        .rejects.toThrow(`another C2 server (pid ${other.pid}) is using`);
      expect(fs.readdirSync(dir)).toEqual(['c2.lock']);
    } finally {
      other.kill();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
