#!/usr/bin/env node
// npm run sim: the firmware in the Moddable simulator, end to end.
//
// Builds manifest.json for the Linux simulator (mcconfig -d -m -p lin -t build), provisions a device, starts a
// private Mosquitto and the C2 engine, runs mcsim headless (xvfb-run), and drives:
//   a human-moderated join (the C2 side approves only when the grid and blink code the device presents, read
//   from its trace output, match the challenge the engine generated), an ID request, an action, and an update
//   with activate: the simulated restart is a second simulator run, which confirms the new image.
// Prints one line per check, `N passed, N failed`, and the XS heap use from the SDK's instrumentation.
//
// Needs an installed Moddable SDK ($MODDABLE, mcconfig on PATH) and xvfb-run; without them it says so in one
// line and exits 0. Exit status 1 when a check failed.
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes as nodeRandomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const APP = 'srup-agent';
const STEP_TIMEOUT_MS = 60_000;

function onPath(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).status === 0;
}

const MODDABLE = process.env.MODDABLE;
if (!MODDABLE || !existsSync(MODDABLE) || !onPath('mcconfig')) {
  console.log('npm run sim: no Moddable SDK ($MODDABLE and mcconfig on PATH): skipped');
  process.exit(0);
}
if (!onPath('xvfb-run')) {
  console.log('npm run sim: xvfb-run not found (apt-get install xvfb): skipped');
  process.exit(0);
}

// ---------------------------------------------------------------------------------------------- harness code

/** The Node-side pieces (C2 engine, broker, provisioning) bundled from the TypeScript sources. */
async function loadHarness() {
  const esbuild = await import('esbuild');
  const outDir = join(root, 'node_modules', '.cache', 'srup-sim');
  mkdirSync(outDir, { recursive: true });
  const outfile = join(outDir, 'harness.mjs');
  await esbuild.build({
    stdin: {
      contents: [
        "export { C2Engine } from './modules/c2/engine.ts';",
        "export { MemoryRegistry } from './modules/c2/memory-registry.ts';",
        "export { MqttTransport, srupClientId } from './hosts/node/mqtt.ts';",
        "export { nodeCrypto, randomBytes, generateRsaKeyPair } from './hosts/node/crypto.ts';",
        "export { systemClock, consoleLog } from './hosts/node/host.ts';",
        "export { startMosquitto } from './test/support/mosquitto.ts';",
        "export { provisionCommand } from './tools/commands/provision.ts';",
        "export { parseCommandArgs } from './tools/lib/cli.ts';",
        "export { parsePublicKeyPem } from './crypto/keys.ts';",
      ].join('\n'),
      resolveDir: root,
      loader: 'ts',
    },
    bundle: true,
    platform: 'node',
    format: 'esm',
    packages: 'external',
    outfile,
    logLevel: 'warning',
  });
  return import(outfile);
}

// ---------------------------------------------------------------------------------------------- checks

let passed = 0;
let failed = 0;
function check(name, ok, detail = '') {
  if (ok) passed++;
  else failed++;
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${detail ? ` (${detail})` : ''}`);
  return ok;
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------------------------------------- simulator

/** The simulator binary of the newest debug build of this app. */
function findBuild() {
  const base = join(MODDABLE, 'build', 'bin', 'lin');
  let best = null;
  for (const sub of readdirSync(base)) {
    const so = join(base, sub, 'debug', APP, 'mc.so');
    if (existsSync(so) && (best === null || statSync(so).mtimeMs > statSync(best).mtimeMs)) best = so;
  }
  return best;
}

/** One mcsim run: its `srup:` trace lines as events, and the peak heap from the instrumentation lines. */
function startSimulator(so, label) {
  const mcsim = join(MODDABLE, 'build', 'bin', 'lin', 'release', 'mcsim');
  const child = spawn('xvfb-run', ['-a', 'stdbuf', '-oL', '-eL', mcsim, so], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const waiters = [];
  const lines = [];
  const heap = { chunk: 0, slot: 0, columns: null };
  const rl = createInterface({ input: child.stdout });
  rl.on('line', (text) => {
    if (text.startsWith('instruments key:')) {
      heap.columns = text.slice('instruments key:'.length).trim().split(',');
      return;
    }
    if (text.startsWith('instruments:')) {
      if (heap.columns) {
        const v = text.slice('instruments:'.length).trim().split(',').map(Number);
        heap.chunk = Math.max(heap.chunk, v[heap.columns.indexOf('Chunk used')] ?? 0);
        heap.slot = Math.max(heap.slot, v[heap.columns.indexOf('Slot used')] ?? 0);
      }
      return;
    }
    if (process.env.SRUP_SIM_VERBOSE || text.startsWith('srup: ')) console.log(`  [${label}] ${text}`);
    lines.push(text);
    for (const w of [...waiters]) {
      const m = w.re.exec(text);
      if (m) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  });
  child.stderr.on('data', (d) => {
    if (process.env.SRUP_SIM_VERBOSE) process.stderr.write(`  [${label} stderr] ${d}`);
  });
  return {
    heap,
    lines,
    /** Resolves with the match of the first trace line (past or future) matching `re`. */
    waitFor(re, what) {
      for (const l of lines) {
        const m = re.exec(l);
        if (m) return Promise.resolve(m);
      }
      return withTimeout(new Promise((resolve) => waiters.push({ re, resolve })), STEP_TIMEOUT_MS, what);
    },
    stop() {
      // mcsim never exits by itself: end the whole process group (xvfb-run, Xvfb, mcsim) started above.
      try {
        process.kill(-child.pid, 'SIGTERM');
      } catch {
        // gone already
      }
      return new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', resolve);
        setTimeout(() => {
          try {
            process.kill(-child.pid, 'SIGKILL');
          } catch {
            // gone
          }
          resolve();
        }, 3000);
      });
    },
  };
}

// ---------------------------------------------------------------------------------------------- the run

async function main() {
  const h = await loadHarness();
  const work = mkdtempSync(join(tmpdir(), 'srup-sim-'));
  const cleanups = [];
  let sim = null;
  const heaps = [];
  try {
    const broker = await h.startMosquitto();
    cleanups.push(() => broker.dispose());

    // The C2 server's identity, and a device provisioned for it.
    const server = h.generateRsaKeyPair(2048);
    const serverId = BigInt('0x' + nodeRandomBytes(8).toString('hex')) | 1n;
    writeFileSync(join(work, 'server-public.pem'), server.publicPem);
    const devDir = join(work, 'dev');
    const out = { write: () => true };
    const args = h.parseCommandArgs(h.provisionCommand, [
      '--out', devDir,
      '--server-id', serverId.toString(16),
      '--server-key', join(work, 'server-public.pem'),
      '--broker', broker.url,
      '--partitions', join(root, 'partitions.csv'),
    ]);
    await h.provisionCommand.run(args, { stdout: out, stderr: out, stdin: process.stdin });
    const registryEntry = JSON.parse(readFileSync(join(devDir, 'device.json'), 'utf8'));
    const deviceId = BigInt('0x' + registryEntry.id);
    const image = join(devDir, 'srup-sim.bin');

    // Build for the simulator, with the image path and a human-moderated join in mc/config.
    const t0 = Date.now();
    const build = spawnSync('mcconfig', ['-d', '-m', '-p', 'lin', '-t', 'build', `srupImage=${image}`, 'srupJoin=human'], {
      cwd: root,
      encoding: 'utf8',
    });
    if (!check('firmware builds for the simulator', build.status === 0, `${((Date.now() - t0) / 1000).toFixed(1)} s`)) {
      console.log((build.stdout + build.stderr).split('\n').filter((l) => !l.startsWith('# ')).slice(-20).join('\n'));
      return;
    }
    const so = findBuild();

    // The C2 engine on the same broker.
    const events = [];
    const eventWaiters = [];
    const onEvent = (e) => {
      events.push(e);
      for (const w of [...eventWaiters])
        if (w.test(e)) {
          eventWaiters.splice(eventWaiters.indexOf(w), 1);
          w.resolve(e);
        }
    };
    const waitEvent = (test, what) => {
      const seen = events.find(test);
      if (seen) return Promise.resolve(seen);
      return withTimeout(new Promise((resolve) => eventWaiters.push({ test, resolve })), STEP_TIMEOUT_MS, what);
    };
    const transport = new h.MqttTransport({ url: broker.url, clientId: h.srupClientId(serverId) });
    const engine = new h.C2Engine(
      {
        transport,
        registry: new h.MemoryRegistry(),
        crypto: h.nodeCrypto,
        random: h.randomBytes,
        clock: h.systemClock,
        log: () => {},
        serverId,
        privateKey: server.privateKey,
      },
      { onEvent },
    );
    engine.provision(deviceId, h.parsePublicKeyPem(registryEntry.publicKey));
    await engine.start();
    cleanups.push(() => engine.stop());

    // The update file, served over HTTP on loopback.
    const firmware = nodeRandomBytes(64 * 1024);
    const digest = createHash('sha256').update(firmware).digest('hex');
    const httpServer = http.createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': firmware.length });
      res.end(firmware);
    });
    await new Promise((r) => httpServer.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => httpServer.close(r)));
    const url = `http://127.0.0.1:${httpServer.address().port}/firmware.bin`;

    // ---- run 1: join, ID request, action, update, activate
    sim = startSimulator(so, 'sim');
    heaps.push(sim.heap);
    await sim.waitFor(/^srup: event connected/, 'the device to connect');
    check('device connects to the broker (QoS 1, persistent session)', true);

    const [, grid, blink] = await sim.waitFor(/^srup: challenge grid=([0-3]{64}) blink=([1-4]{10})/, 'the device to show a challenge');
    const challengeEvent = await waitEvent((e) => e.type === 'challenge' && e.device === deviceId, 'the C2 challenge');
    const matches = challengeEvent.challenge.grid.join('') === grid && challengeEvent.challenge.blink === blink;
    check('device presents the C2\'s challenge (8x8 grid and blink code)', matches, `blink ${blink}`);
    if (matches) await engine.approveJoin(deviceId);
    else await engine.refuseJoin(deviceId);
    await waitEvent((e) => e.type === 'joined' && e.device === deviceId, 'the join to complete');
    const joinLine = await sim.waitFor(/^srup: join human (\w+)/, 'the device\'s join outcome');
    check('human-moderated join accepted on both sides', joinLine[1] === 'joined', `device: ${joinLine[1]}`);

    const ident = await withTimeout(engine.requestId(deviceId), STEP_TIMEOUT_MS, 'the ID response');
    check('ID request answered', /^srup-agent /.test(ident), JSON.stringify(ident));

    const status = await withTimeout(engine.sendAction(deviceId, 0), STEP_TIMEOUT_MS, 'the action response');
    check('action 0 performed', status === 0x20, `status 0x${status.toString(16)}`);

    const staged = await withTimeout(engine.initiateUpdate(deviceId, url, digest), STEP_TIMEOUT_MS * 2, 'the update download');
    check('update downloaded and its SHA-256 verified', staged.state === 'staged', `state ${staged.state}, status ${staged.status}`);
    const written = existsSync(`${image}.ota`) ? readFileSync(`${image}.ota`) : Buffer.alloc(0);
    check('the image written by the updater is the served file', written.equals(firmware), `${written.length} bytes`);

    // Settles once the device has confirmed the new image (or failed), so only after the restart below.
    const activated = engine.activateUpdate(staged.token);
    activated.catch(() => {});
    await sim.waitFor(/^srup: restart requested/, 'the simulated restart');
    await sim.stop();
    sim = null;

    // ---- run 2: the "new image" boots, reconnects and confirms
    sim = startSimulator(so, 'sim after restart');
    heaps.push(sim.heap);
    const confirmed = await withTimeout(activated, STEP_TIMEOUT_MS, 'the update confirmation');
    check('after the restart the device confirms the update', confirmed.state === 'confirmed', `state ${confirmed.state}`);
    const again = await withTimeout(engine.sendAction(deviceId, 0), STEP_TIMEOUT_MS, 'an action after the restart');
    check('counters survive the restart (a new command is accepted)', again === 0x20);
    await new Promise((r) => setTimeout(r, 1500)); // one more instrumentation sample
  } catch (e) {
    check('run', false, e instanceof Error ? e.message : String(e));
  } finally {
    if (sim) await sim.stop();
    for (const c of cleanups.reverse()) {
      try {
        await c();
      } catch {
        // best effort
      }
    }
    rmSync(work, { recursive: true, force: true });
  }
  console.log(`${passed} passed, ${failed} failed`);
  for (const [i, hp] of heaps.entries())
    console.log(`XS heap (run ${i + 1}, peak from instrumentation): chunk ${hp.chunk} bytes, slots ${hp.slot} bytes, total ${hp.chunk + hp.slot} bytes`);
  process.exitCode = failed > 0 ? 1 : 0;
}

await main();
// The MQTT client library may keep a timer or socket alive after the engine stopped.
process.exit(process.exitCode ?? 0);
