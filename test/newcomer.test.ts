/**
 * What a newcomer meets first: the files one command writes must be taken by the next, and options and error
 * messages must say what they mean.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { generateRsaKeyPair } from '../hosts/node/crypto.js';
import { consoleLog, textLogLine } from '../hosts/node/host.js';
import { serverPassword } from '../tools/commands/c2.js';
import { initDeviceDir } from '../tools/commands/device.js';
import { main } from '../tools/srup.js';

const dirs: string[] = [];
function tmp(name: string): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `srup-newcomer-${name}-`));
  dirs.push(d);
  return d;
}
afterAll(() => { for (const d of dirs) fs.rmSync(d, { recursive: true, force: true }); });

async function run(args: string[]): Promise<{ code: number; out: string }> {
  let out = '';
  const stream = new Writable({ write(c, _e, cb) { out += c.toString(); cb(); } });
  const code = await main(args, { stdout: stream as never, stderr: stream as never });
  return { code, out };
}

describe('srup device init, then srup c2 add-device', () => {
  const server = generateRsaKeyPair(2048);

  test('the device.json that device init writes is taken by add-device (its key is read from beside it)', async () => {
    const root = tmp('init-add');
    initDeviceDir({ out: path.join(root, 'dev'), serverId: 0x5e12n, serverKeyPem: server.publicPem, broker: 'mqtt://127.0.0.1:1883', deviceId: 0x4a0fn });
    const r = await run(['c2', 'add-device', path.join(root, 'dev', 'device.json'), '--data', path.join(root, 'c2'), '--http', '1']);
    expect(r).toEqual({ code: 0, out: 'device 0000000000004a0f registered (provisioned)\n' });
  });

  test('an --id that contradicts the file is refused; the same id written otherwise is fine', async () => {
    const root = tmp('init-id');
    initDeviceDir({ out: path.join(root, 'dev'), serverId: 0x5e12n, serverKeyPem: server.publicPem, broker: 'mqtt://127.0.0.1:1883', deviceId: 0x4a0fn });
    const file = path.join(root, 'dev', 'device.json');
    const bad = await run(['c2', 'add-device', file, '--id', '4a10', '--data', path.join(root, 'c2'), '--http', '1']);
    expect(bad.code).toBe(2);
    expect(bad.out).toContain(`--id 4a10 is not the id in ${file} (0000000000004a0f)`);
    const same = await run(['c2', 'add-device', file, '--id', '4A0F', '--data', path.join(root, 'c2'), '--http', '1']);
    expect(same.code).toBe(0);
  });
});

describe('srup c2 serve: the broker password', () => {
  const dir = () => tmp('pw');

  test('from --password-file, else $SRUP_BROKER_PASSWORD; never both --password and --password-file', () => {
    const file = path.join(dir(), 'pw');
    fs.writeFileSync(file, 'from-file\n');
    const saved = process.env.SRUP_BROKER_PASSWORD;
    try {
      process.env.SRUP_BROKER_PASSWORD = 'from-env';
      expect(serverPassword({ 'password-file': file })).toBe('from-file');
      expect(serverPassword({})).toBe('from-env');
      expect(serverPassword({ password: 'given' })).toBe('given');
      delete process.env.SRUP_BROKER_PASSWORD;
      expect(serverPassword({})).toBeUndefined();
      expect(() => serverPassword({ password: 'a', 'password-file': file })).toThrow('give --password or --password-file, not both');
    } finally {
      if (saved === undefined) delete process.env.SRUP_BROKER_PASSWORD;
      else process.env.SRUP_BROKER_PASSWORD = saved;
    }
  });
});

describe('messages that say what is wrong', () => {
  test('srup keygen --out under /proc fails at once with the directory it could not make', async () => {
    const r = await run(['keygen', '--out', '/proc/srup-no-such/x']);
    expect(r.code).toBe(2);
    expect(r.out).toMatch(/^srup keygen: cannot create \/proc\/srup-no-such\/x: (Error: )?ENOENT/);
  });

  test('a missing FILE and a missing data directory are named as such', async () => {
    const decode = await run(['decode']);
    expect(decode.code).toBe(2);
    expect(decode.out.split('\n')[0]).toBe('srup decode: missing FILE (the message to decode)');
    const c2 = await run(['c2']);
    expect(c2.out.split('\n')[0]).toBe('srup c2: missing subcommand');
    const list = await run(['c2', 'list', '--data', '/nonexistent/srup-c2']);
    expect(list).toEqual({ code: 2, out: "srup c2: no C2 data directory /nonexistent/srup-c2 (give the server's --data DIR, or set SRUP_C2_DATA)\n" });
  });
});

describe('--log text', () => {
  test('lines are "time LEVEL event key=value", plain words bare and other text quoted, never JSON objects', () => {
    expect(textLogLine('T', 'warn', 'rejected', { reason: 'replay', type: 'activate', seq: 7, why: 'no such "x"', ok: true, none: null }))
      .toBe('T WARN  rejected reason=replay type=activate seq=7 why="no such \\"x\\"" ok=true none=null');
    let out = '';
    const log = consoleLog({ format: 'text', stream: new Writable({ write(c, _e, cb) { out += c.toString(); cb(); } }) as never, now: () => new Date(0) });
    log('info', 'device_process_started', { pid: 42 });
    expect(out).toBe('1970-01-01T00:00:00.000Z INFO  device_process_started pid=42\n');
  });
});
