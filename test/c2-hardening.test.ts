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
