/**
 * The device API on Node as a user runs it: examples/node/sensor.mjs (which imports `srup-agent/device`) as its
 * own process against a real Mosquitto and the C2 engine: it joins, its readings arrive and verify, its actions
 * answer, and data from the server changes its period. The example is bundled with `srup-agent/device` pointed
 * at the sources (never a stale dist/); that the package export itself resolves is checked against dist/ when
 * the build has made it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';
import { decodeData } from '../modules/srup/data.js';
import { Status } from '../modules/srup/schema.js';
import { E2EWorld, until } from './support/e2e-world.js';

const ROOT = path.join(__dirname, '..');

describe('the Node device API example (examples/node/sensor.mjs)', () => {
  let w: E2EWorld;
  let script: string;
  let child: ChildProcess | null = null;

  beforeAll(async () => {
    w = await E2EWorld.start({ tls: false });
    const outDir = path.join(ROOT, '.tmp', 'e2e');
    fs.mkdirSync(outDir, { recursive: true });
    script = path.join(outDir, `node-sensor-${process.pid}.mjs`);
    await build({
      absWorkingDir: ROOT,
      entryPoints: ['examples/node/sensor.mjs'],
      outfile: script,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      packages: 'external',
      alias: { 'srup-agent/device': './hosts/node/device.ts' },
      logLevel: 'error',
    });
  });
  afterAll(async () => {
    child?.kill('SIGKILL');
    await w?.dispose();
    if (script) fs.rmSync(script, { force: true });
  });

  test('joins, sends readings every period, answers its actions, takes a new period from the server', async () => {
    const dev = w.newDevice('node-sensor');
    let out = '';
    let err = '';
    child = spawn(process.execPath, [script, dev.dir], { cwd: ROOT, env: { ...process.env, SENSOR_PERIOD_MS: '300' }, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));

    await until('ready', () => out.includes('ready: '), 30_000).catch((e: unknown) => {
      throw new Error(`${String(e)}\n${err}`);
    });
    expect(out.split('\n')[0]).toBe(`ready: device ${dev.id.toString(16).padStart(16, '0')}, server ${w.serverId.toString(16).padStart(16, '0')}`);
    expect(w.engine.device(dev.id)?.state).toBe('joined');

    const readings = () => w.eventsOf('data').filter((e) => e.device === dev.id && e.dataId === 'temperature');
    await until('three readings', () => readings().length >= 3, 30_000);
    for (const r of readings()) expect(typeof decodeData('double', r.data)).toBe('number');
    expect(out).toMatch(/^sent temperature=[-0-9.]+$/m);

    await expect(w.engine.sendAction(dev.id, 1)).resolves.toBe(Status.ACTION_SUCCESS);
    await expect(w.engine.sendAction(dev.id, 2)).resolves.toBe(Status.ACTION_FAIL);
    await expect(w.engine.sendAction(dev.id, 3)).resolves.toBe(Status.ACTION_UNKNOWN);
    await expect(w.engine.requestId(dev.id)).resolves.toBe('node-sensor 1.0.0');
    expect(out).toContain('action 1: blink\n');

    await w.engine.sendData(dev.id, 'period', 'int32', 1);
    await until('the new period', () => out.includes('period now 1 s\n'));
    expect(w.eventsOf('rejected')).toEqual([]);

    child.kill('SIGTERM');
    const code = await new Promise<number | null>((resolve) => child!.on('exit', (c) => resolve(c)));
    expect(code).toBe(0);
    if (process.env.SRUP_E2E_STATS) console.log(out);
  });

  test('the package export srup-agent/device names the device API (when the build has made dist/)', async () => {
    if (!fs.existsSync(path.join(ROOT, 'dist', 'device.mjs'))) {
      console.log('dist/device.mjs not built: run npm run build to check the package export');
      return;
    }
    const child2 = spawn(process.execPath, ['--input-type=module', '-e', "import * as m from 'srup-agent/device'; console.log(Object.keys(m).sort().join(' '))"], { cwd: ROOT });
    let text = '';
    child2.stdout.on('data', (d: Buffer) => (text += d.toString()));
    await new Promise((resolve) => child2.on('exit', resolve));
    expect(text).toBe('AgentError Device consoleLog defaultDataKind openNodeDevice\n');
  });
});
