/**
 * The C2 server against abuse that costs it time or memory: floods of wrong tokens, event-stream readers that
 * stop reading, and devices that send much or often.
 */
import { scryptSync, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { MAX_FAILURES, SCRYPT_CONCURRENCY } from '../tools/c2/auth.js';
import { joinAge } from '../tools/commands/c2.js';
import { findMosquitto } from './support/mosquitto.js';
import { login, request, startStack, until, type Stack } from './support/browser.js';

const describeIf = findMosquitto() ? describe : describe.skip;
if (!findMosquitto()) process.stderr.write('c2 hardening tests skipped: no mosquitto binary (apt-get install -y mosquitto)\n');

function legacyScryptHash(secret: string): string {
  const salt = randomBytes(16);
  const hash = scryptSync(secret, salt, 32, { N: 16384, r: 8, p: 1 });
  return ['scrypt', 16384, 8, 1, salt.toString('base64'), hash.toString('base64')].join('$');
}

describeIf('C2 server: wrong tokens', () => {
  let stack: Stack;
  let base: string;
  let cli: string;

  beforeAll(async () => {
    stack = await startStack({ devices: 0 });
    base = stack.app.url;
    cli = fs.readFileSync(path.join(stack.dir, 'c2', 'cli-token'), 'utf8').trim();
  }, 60000);

  afterAll(async () => {
    await stack?.stop();
  });

  test('tokens are stored as a digest: a wrong token is refused without a slow hash', async () => {
    expect(stack.app.store.meta('cli_token')).toMatch(/^sha256\$[0-9a-f]{64}$/);
    expect(stack.app.store.meta('operator_token')).toMatch(/^sha256\$[0-9a-f]{64}$/);
    expect(await stack.app.auth.checkBearer('not the token', 'test-a')).toBe('wrong');
    expect(stack.app.auth.slowChecksRunning).toBe(0);
    expect(await stack.app.auth.checkBearer(cli, 'test-a')).toBe('ok');
  });

  test(`after ${MAX_FAILURES} failures a client is answered 429, and the right token still gets through`, async () => {
    const statuses: number[] = [];
    for (let i = 0; i < MAX_FAILURES + 3; i++) {
      statuses.push((await request(base, 'GET', '/api/devices', { headers: { Authorization: `Bearer wrong-${i}` } })).status);
    }
    expect(statuses).toEqual([...Array(MAX_FAILURES).fill(401), 429, 429, 429]);
    expect((await request(base, 'GET', '/api/devices', { headers: { Authorization: `Bearer ${cli}` } })).status).toBe(200);
    // The login form is limited by the same count.
    const r = await request(base, 'POST', '/api/login', { headers: { Origin: base }, json: { token: 'guess' } });
    expect(r.status).toBe(429);
    expect(r.body.reason).toBe('rate_limited');
  });

  test('a data directory with scrypt hashes: wrong tokens never hold the server, and the first success replaces the hash', async () => {
    const s = await login(base, stack.app.operatorToken as string);
    stack.app.store.setMeta('cli_token', legacyScryptHash(cli));
    const auth = stack.app.auth as unknown as { failures: Map<string, unknown> };
    auth.failures.clear();
    let most = 0;
    const sample = setInterval(() => (most = Math.max(most, stack.app.auth.slowChecksRunning)), 1);
    const order: string[] = [];
    try {
      const wrong = Array.from({ length: 40 }, (_, i) =>
        request(base, 'GET', '/api/devices', { headers: { Authorization: `Bearer wrong-token-${i}` } }).then((r) => {
          order.push('wrong');
          return r.status;
        }),
      );
      await until('the slow checks run', () => stack.app.auth.slowChecksRunning > 0, 5000);
      // An operator's request while the wrong ones are being checked is answered before they all are.
      const mine = await request(base, 'GET', '/api/devices', { headers: { Cookie: s.cookie } });
      order.push('mine');
      expect(mine.status).toBe(200);
      const statuses = await Promise.all(wrong);
      expect(statuses.every((st) => st === 401 || st === 503)).toBe(true);
      expect(statuses.filter((st) => st === 503).length).toBeGreaterThan(0);
    } finally {
      clearInterval(sample);
    }
    expect(order.indexOf('mine')).toBeLessThan(order.length - 1);
    expect(most).toBeLessThanOrEqual(SCRYPT_CONCURRENCY);
    auth.failures.clear();
    expect((await request(base, 'GET', '/api/devices', { headers: { Authorization: `Bearer ${cli}` } })).status).toBe(200);
    expect(stack.app.store.meta('cli_token')).toMatch(/^sha256\$[0-9a-f]{64}$/);
  }, 60000);
});

describeIf('C2 server: event-stream readers', () => {
  let stack: Stack;
  let base: string;

  beforeAll(async () => {
    stack = await startStack({ devices: 0 });
    base = stack.app.url;
  }, 60000);

  afterAll(async () => {
    await stack?.stop();
  });

  /** An event stream on a raw socket; `read` false stops reading once the stream opened. */
  function openStream(cookie: string, read: boolean): { socket: net.Socket; text: () => string; closed: () => boolean; resume: () => void } {
    const port = Number(new URL(base).port);
    const socket = net.connect(port, '127.0.0.1');
    let text = '';
    let closed = false;
    socket.write(`GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nCookie: ${cookie}\r\n\r\n`);
    socket.on('data', (c: Buffer) => {
      text += c.toString('latin1');
      if (!read) socket.pause();
    });
    socket.on('close', () => (closed = true));
    socket.on('error', () => (closed = true));
    const resume = () => {
      read = true;
      socket.resume();
    };
    return { socket, text: () => text, closed: () => closed, resume };
  }

  test('a reader that stops reading is dropped once its unsent events pass the bound; a reading one stays', async () => {
    const s = await login(base, stack.app.operatorToken as string);
    const stalled = openStream(s.cookie, false);
    const reading = openStream(s.cookie, true);
    await until('both streams open', () => stalled.text().includes('retry:') && reading.text().includes('retry:'));
    expect(stack.app.http.eventReaders).toBe(2);
    // 16 MB of events: far more than the kernel's socket buffers take.
    for (let i = 0; i < 4000 && stack.app.http.eventReaders === 2; i++) {
      stack.app.emit({ kind: 'c2', event: { type: 'note', n: i, pad: 'p'.repeat(4000) } });
      if (i % 50 === 0) await new Promise((r) => setImmediate(r));
    }
    expect(stack.app.http.eventReaders).toBe(1);
    stalled.resume();
    await until('the stalled reader\'s connection is closed', () => stalled.closed(), 10000);
    expect(reading.closed()).toBe(false);
    stack.app.emit({ kind: 'devices' });
    await until('the reading stream still gets events', () => reading.text().includes('event: devices'));
    reading.socket.destroy();
  }, 60000);

  test('events carry no bulk payloads: a large data message is sent by its length only', () => {
    const seen: Record<string, unknown>[] = [];
    const off = stack.app.on((e) => {
      if (e.kind === 'c2') seen.push(e.event);
    });
    const onEngineEvent = (stack.app as unknown as { onEngineEvent(e: unknown): void }).onEngineEvent.bind(stack.app);
    onEngineEvent({ type: 'data', device: 0x12n, dataId: 'big', data: new Uint8Array(60 * 1024), token: new Uint8Array([0x61, 0x62]) });
    onEngineEvent({ type: 'data', device: 0x12n, dataId: 'small', data: new Uint8Array([1, 2]), token: new Uint8Array([0x61]) });
    off();
    expect(seen).toEqual([
      { type: 'data', device: '0000000000000012', dataId: 'big', data: null, dataLength: 61440, token: '6162', tokenLength: 2 },
      { type: 'data', device: '0000000000000012', dataId: 'small', data: '0102', dataLength: 2, token: '61', tokenLength: 1 },
    ]);
  });
});

describeIf('C2 server: pending joins expire with the device', () => {
  let stack: Stack;

  beforeAll(async () => {
    // Devices wait 6 s here: the server fails a join 5 s before, after 1 s.
    stack = await startStack({ devices: 1, app: { joinTimeoutMs: 6000 } });
  }, 60000);

  afterAll(async () => {
    await stack?.stop();
  });

  test('a pending join shows its age and expiry; once expired it is failed, not approvable, and never recorded as joined', async () => {
    const d = stack.devices[0];
    const outcome = d.join('human');
    const [j] = await until('the join is pending', () => stack.app.joins().length === 1 && stack.app.joins());
    expect(j.id).toBe(d.id.toString(16).padStart(16, '0'));
    expect(typeof j.requestedAt).toBe('number');
    expect(j.expiresAt).toBe(j.requestedAt + 1000);
    expect(joinAge({ requestedAt: j.requestedAt, expiresAt: j.expiresAt }, j.requestedAt + 400)).toBe('asked 0 s ago, expires in 1 s');
    expect(joinAge({ requestedAt: j.requestedAt, expiresAt: j.expiresAt }, j.requestedAt + 65_000)).toBe('asked 1 min 5 s ago, expired');
    await until('the join expires', () => stack.app.joins().length === 0, 10000);
    expect(stack.app.registry.device(d.id)!.state).toBe('failed');
    await expect(stack.app.approve(d.id)).rejects.toMatchObject({ reason: 'no_pending_join' });
    expect(await outcome).toBe('failed');
    expect(stack.app.registry.device(d.id)!.state).toBe('failed');
  }, 30000);
});
