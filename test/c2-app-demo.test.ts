/**
 * `npm start` (scripts/start.mjs → `srup demo`) as a user runs it: a child process with the embedded broker, the
 * C2 server and two virtual devices. The challenge the human-moderated device prints in the terminal is the one
 * the server's API shows; approving it joins the device; Ctrl-C stops everything cleanly.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { renderGridText } from '../modules/challenge/index.js';
import { login, request, until } from './support/browser.js';
import { capture } from './support/cli.js';
import { main } from '../tools/srup.js';

const root = path.join(__dirname, '..');

describe('npm start (srup demo)', () => {
  let child: ChildProcess | null = null;
  let dir = '';

  afterAll(() => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('starts broker, server and devices; the terminal challenge matches the console; Ctrl-C stops it', async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'c2-demo-'));
    child = spawn(process.execPath, [path.join(root, 'scripts', 'start.mjs'), '--data', dir, '--virtual-devices', '2', '--http', '0'], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
    await until(`the demo is up (stdout: ${out} stderr: ${err})`, () => out.includes('Press Ctrl-C') && /Blink code/.test(out), 90000);
    expect(out).toMatch(/Starting the embedded MQTT broker… mqtt:\/\/127\.0\.0\.1:\d+/);
    expect(out).toMatch(/Virtual device 1\/2: [0-9a-f]{16} asks for a human-moderated join/);
    const url = /Console: +(http:\/\/127\.0\.0\.1:\d+)\//.exec(out)![1];
    const token = /Login token: +(\S+)/.exec(out)![1];
    const s = await login(url, token);
    const headers = { Cookie: s.cookie };
    const joins = await until('the pending join', async () => {
      const j = (await request(url, 'GET', '/api/joins', { headers })).body.joins as { id: string; challenge: { grid: number[]; blink: string } | null }[];
      return j.length === 1 && j[0].challenge ? j : null;
    });
    // What the terminal shows (letters and blink digits) is what the console shows.
    expect(out).toContain(renderGridText(joins[0].challenge!.grid));
    expect(out).toContain(`Blink code: ${joins[0].challenge!.blink.split('').join(' ')}`);
    const r = await request(url, 'POST', `/api/devices/${joins[0].id}/approve`, { headers: { ...headers, Origin: url, 'X-CSRF-Token': s.csrf }, json: {} });
    expect(r.status).toBe(200);
    await until('the device reports it joined', () => out.includes(`Device ${joins[0].id}: joined`));
    const devices = (await request(url, 'GET', '/api/devices', { headers })).body.devices as { state: string }[];
    expect(devices.map((d) => d.state)).toEqual(['joined', 'joined']);
    expect(fs.existsSync(path.join(dir, 'firmware-1.1.0.bin'))).toBe(true);
    const exited = new Promise<number | null>((resolve) => child!.on('exit', (code) => resolve(code)));
    child.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(out).toContain('Stopping…');
  }, 120000);

  test('--virtual-devices takes up to 500 (a fleet to page through in the console); more is a usage error', async () => {
    const out = capture();
    const err = capture();
    expect(await main(['demo', '--virtual-devices', '501'], { stdout: out.stream, stderr: err.stream })).toBe(2);
    expect(err.text()).toContain('--virtual-devices must be 0..500');
    expect(out.text()).toBe('');
  });
});
