#!/usr/bin/env node
// npm run sim: the firmware in the Moddable simulator, end to end.
//
// Builds manifest.json for the Linux simulator (mcconfig -d -m -p lin -t build), provisions a device for an
// mqtts broker (RSA certificates, the record's CA, host name checked), and runs mcsim headless (xvfb-run):
//   - first against an impostor broker whose certificate another CA signed: the device must log the TLS failure
//     and retry with backoff, never abort; then the real broker appears on the same port and it connects;
//   - a human-moderated join (the C2 side approves only when the grid and blink code the device presents, read
//     from its trace output, match the challenge the engine generated), an ID request, 20 actions, a 1 MiB
//     update over http, activate: the simulated restart is a second simulator run, which confirms the new image
//     and then downloads another 1 MiB image over https (TLS max_fragment_length 4096).
// The simulator build runs in a fixed XS heap sized for the ESP32 (manifest.json, platforms.lin.creation: no
// growth, so running out aborts the run and fails it); a probe forces a collection every 100 ms and reports the
// live heap, printed at the end in 64-bit bytes and as the ESP32's 32-bit figure.
// Prints one line per check and `N passed, N failed`.
//
// `npm run sim -- --example sensor` builds and runs examples/sensor instead (a user's firmware on the agent's
// manifest): it joins (human-moderated), three readings arrive at the C2 and verify, the period action shortens the
// interval, the LED action is answered, and after a restart the new period is still in force.
//
// Needs an installed Moddable SDK ($MODDABLE, mcconfig on PATH) and xvfb-run; without them it says so in one
// line and exits 0. Exit status 1 when a check failed.
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes as nodeRandomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const exampleAt = process.argv.indexOf('--example');
const EXAMPLE = exampleAt >= 0 ? process.argv[exampleAt + 1] : null;
if (EXAMPLE !== null && EXAMPLE !== 'sensor') {
  console.log(`npm run sim: unknown example '${EXAMPLE}' (there is: sensor)`);
  process.exit(2);
}
const APP = EXAMPLE === 'sensor' ? 'srup-sensor' : 'srup-agent';
const STEP_TIMEOUT_MS = 60_000;
const IMAGE_BYTES = 1024 * 1024;
const COMMANDS = 20;
/** The join timeout the device is provisioned with (srup provision --join-timeout; not the default 120 s). */
const JOIN_TIMEOUT_S = 150;
/** The goals of the memory budget, 32-bit bytes (docs/firmware.md): TLS MQTT and an http update; an https update. */
const GOAL_HTTP = 64 * 1024;
const GOAL_HTTPS = 96 * 1024;

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
        "export { startMosquitto, makeTestPki, freePort } from './test/support/mosquitto.ts';",
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
  const heap = { chunks: 0, slots: 0, stack: 0, aborted: null };
  const rl = createInterface({ input: child.stdout });
  rl.on('line', (text) => {
    if (text.startsWith('instruments')) return;
    const probe = /^srup: heap live chunks=(\d+) slots=(\d+) peak chunks=(\d+) slots=(\d+) stack=(\d+)/.exec(text);
    if (probe) {
      heap.chunks = Math.max(heap.chunks, Number(probe[3]));
      heap.slots = Math.max(heap.slots, Number(probe[4]));
      heap.stack = Math.max(heap.stack, Number(probe[5]));
      if (!process.env.SRUP_SIM_VERBOSE) return;
    }
    if (/fixed size heap|XS abort|memory full|stack overflow/i.test(text)) heap.aborted ??= text;
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
    const text = String(d);
    if (/fixed size heap|XS abort|memory full|stack overflow/i.test(text)) heap.aborted ??= text.trim();
    if (process.env.SRUP_SIM_VERBOSE) process.stderr.write(`  [${label} stderr] ${text}`);
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

/** Ends a run: the simulator (when still running), then every cleanup in reverse order, then the work folder. */
async function tearDown(sim, cleanups, work) {
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

/** A file server on loopback: http, or https with the test PKI's RSA server certificate and chain. */
async function serveFile(body, pki) {
  const handler = (req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
    res.end(body);
  };
  const server = pki
    ? https.createServer({ cert: readFileSync(pki.serverChainFile), key: readFileSync(pki.serverKeyFile) }, handler)
    : http.createServer(handler);
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { url: `${pki ? 'https' : 'http'}://127.0.0.1:${server.address().port}/firmware.bin`, close: () => new Promise((r) => server.close(r)) };
}

const KiB = (n) => `${(n / 1024).toFixed(1)} KiB`;

/** The live peak of one run in 64-bit bytes and as the ESP32's 32-bit figure (slots 16 bytes; chunk bytes as measured here, an upper bound). */
function heapFigures(h) {
  return { bytes64: h.chunks + h.slots * 32, bytes32: h.chunks + h.slots * 16 };
}

async function main() {
  const h = await loadHarness();
  const work = mkdtempSync(join(tmpdir(), 'srup-sim-'));
  const cleanups = [];
  let sim = null;
  const runs = [];
  try {
    // Two PKIs, both RSA: the broker's real one, and another CA's for an impostor on the same address.
    const pki = h.makeTestPki(join(work, 'pki'));
    const otherPki = h.makeTestPki(join(work, 'other-pki'), { caName: 'Another CA' });
    const port = await h.freePort();
    const brokerUrl = `mqtts://127.0.0.1:${port}`;

    // The C2 server's identity, and a device provisioned for it, trusting the real CA.
    const server = h.generateRsaKeyPair(2048);
    const serverId = BigInt('0x' + nodeRandomBytes(8).toString('hex')) | 1n;
    writeFileSync(join(work, 'server-public.pem'), server.publicPem);
    const devDir = join(work, 'dev');
    const out = { write: () => true };
    const args = h.parseCommandArgs(h.provisionCommand, [
      '--out', devDir,
      '--server-id', serverId.toString(16),
      '--server-key', join(work, 'server-public.pem'),
      '--broker', brokerUrl,
      '--ca', pki.caFile,
      '--partitions', join(root, 'partitions.csv'),
      '--join-timeout', String(JOIN_TIMEOUT_S),
    ]);
    await h.provisionCommand.run(args, { stdout: out, stderr: out, stdin: process.stdin });
    const registryEntry = JSON.parse(readFileSync(join(devDir, 'device.json'), 'utf8'));
    const deviceId = BigInt('0x' + registryEntry.id);
    const image = join(devDir, 'srup-sim.bin');

    // Build for the simulator, with the image path, a human-moderated join and the heap probe in mc/config.
    const t0 = Date.now();
    const build = spawnSync('mcconfig', ['-d', '-m', '-p', 'lin', '-t', 'build', `srupImage=${image}`, 'srupJoin=human', 'srupHeapProbe=1'], {
      cwd: root,
      encoding: 'utf8',
    });
    if (!check('firmware builds for the simulator', build.status === 0, `${((Date.now() - t0) / 1000).toFixed(1)} s`)) {
      console.log((build.stdout + build.stderr).split('\n').filter((l) => !l.startsWith('# ')).slice(-20).join('\n'));
      return;
    }
    const so = findBuild();

    // ---- run 1, part 1: an impostor broker (certificate from another CA) on the device's broker address
    const impostor = await h.startMosquitto({ tls: { pki: otherPki }, port });
    cleanups.push(() => impostor.dispose());
    sim = startSimulator(so, 'sim');
    runs.push({ label: 'run 1: mqtts, join, 20 commands, 1 MiB update over http', heap: sim.heap, goal: GOAL_HTTP });
    const [, joinTimeout] = await sim.waitFor(/^srup: sim device [0-9a-f]+ broker \S+ join timeout (.*) heap/, 'the device\'s first line');
    check('the join timeout provisioned in the record is the device\'s', joinTimeout === `${JOIN_TIMEOUT_S} s`, joinTimeout);
    const [, reason] = await sim.waitFor(/^srup: network: connection failed: (.*)$/, 'the TLS failure with the impostor');
    check('a broker certificate from another CA is refused and logged, without an abort', true, reason);
    await sim.waitFor(/^srup: event disconnected|^srup: network: connection failed: .*$/, 'the transport to notice');
    const failures = await withTimeout(
      (async () => {
        for (;;) {
          const n = sim.lines.filter((l) => l.startsWith('srup: network: connection failed')).length;
          if (n >= 2) return n;
          await new Promise((r) => setTimeout(r, 200));
        }
      })(),
      STEP_TIMEOUT_MS,
      'a second attempt',
    );
    check('the device retries with backoff and keeps running', sim.heap.aborted === null, `${failures} attempts so far`);
    await impostor.dispose();

    // ---- the real broker appears on the same address; the C2 engine connects to it
    const broker = await h.startMosquitto({ tls: { pki }, port });
    cleanups.push(() => broker.dispose());
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
    const transport = new h.MqttTransport({ url: brokerUrl, ca: pki.ca, clientId: h.srupClientId(serverId) });
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

    await sim.waitFor(/^srup: event connected/, 'the device to connect to the real broker');
    check('with the right broker it connects over TLS (RSA certificate, the record\'s CA, host name checked)', true);

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

    const statuses = [];
    for (let i = 0; i < COMMANDS; i++) statuses.push(await withTimeout(engine.sendAction(deviceId, 0), STEP_TIMEOUT_MS, `action ${i + 1}`));
    const done = statuses.filter((s) => s === 0x20).length;
    check(`${COMMANDS} actions performed`, done === COMMANDS, `${done} answered 0x20`);

    const firmware = nodeRandomBytes(IMAGE_BYTES);
    const httpFile = await serveFile(firmware, null);
    cleanups.push(httpFile.close);
    const staged = await withTimeout(engine.initiateUpdate(deviceId, httpFile.url, createHash('sha256').update(firmware).digest('hex')), STEP_TIMEOUT_MS * 3, 'the http download');
    check('1 MiB update over http downloaded and its SHA-256 verified', staged.state === 'staged', `state ${staged.state}, status ${staged.status}`);
    const written = existsSync(`${image}.ota`) ? readFileSync(`${image}.ota`) : Buffer.alloc(0);
    check('the image written by the updater is the served file', written.equals(firmware), `${written.length} bytes`);

    // Settles once the device has confirmed the new image (or failed), so only after the restart below.
    const activated = engine.activateUpdate(staged.token);
    activated.catch(() => {});
    await sim.waitFor(/^srup: restart requested/, 'the simulated restart');
    await new Promise((r) => setTimeout(r, 1200)); // one more probe line
    await sim.stop();
    sim = null;

    // ---- run 2: the "new image" boots, reconnects, confirms; then an update over https
    sim = startSimulator(so, 'sim after restart');
    runs.push({ label: 'run 2: restart, confirm, 1 MiB update over https', heap: sim.heap, goal: GOAL_HTTPS });
    const confirmed = await withTimeout(activated, STEP_TIMEOUT_MS, 'the update confirmation');
    check('after the restart the device confirms the update', confirmed.state === 'confirmed', `state ${confirmed.state}`);
    const again = await withTimeout(engine.sendAction(deviceId, 0), STEP_TIMEOUT_MS, 'an action after the restart');
    check('counters survive the restart (a new command is accepted)', again === 0x20);

    const secondImage = nodeRandomBytes(IMAGE_BYTES);
    const httpsFile = await serveFile(secondImage, pki);
    cleanups.push(httpsFile.close);
    const staged2 = await withTimeout(engine.initiateUpdate(deviceId, httpsFile.url, createHash('sha256').update(secondImage).digest('hex')), STEP_TIMEOUT_MS * 3, 'the https download');
    check('1 MiB update over https downloaded and verified', staged2.state === 'staged', `state ${staged2.state}, status ${staged2.status}`);
    await new Promise((r) => setTimeout(r, 1200)); // one more probe line
  } catch (e) {
    check('run', false, e instanceof Error ? e.message : String(e));
  } finally {
    await tearDown(sim, cleanups, work);
  }
  for (const r of runs) {
    check(`${r.label}: no XS abort, the fixed heap was enough`, r.heap.aborted === null, r.heap.aborted ?? '');
    const f = heapFigures(r.heap);
    check(`${r.label}: live heap peak within ${KiB(r.goal)} (32-bit)`, r.heap.slots > 0 && f.bytes32 <= r.goal, `${KiB(f.bytes32)}`);
  }
  console.log(`${passed} passed, ${failed} failed`);
  const creation = JSON.parse(readFileSync(join(root, 'modules', 'device', 'manifest.json'), 'utf8')).platforms.lin.creation;
  console.log(
    `XS heap limits (fixed, no growth): chunks ${creation.chunk.initial} bytes, ${creation.heap.initial} slots, stack ${creation.stack} slots`,
  );
  for (const r of runs) {
    const f = heapFigures(r.heap);
    console.log(
      `XS heap peak, ${r.label}: chunks ${r.heap.chunks} bytes + ${r.heap.slots} slots = ${f.bytes64} bytes (64-bit), ` +
        `${KiB(f.bytes32)} on the ESP32 (32-bit: slots x 16, chunks as measured); stack ${r.heap.stack} bytes`,
    );
  }
  process.exitCode = failed > 0 ? 1 : 0;
}

/** npm run sim -- --example sensor: examples/sensor in the simulator against a local broker (mqtts) and the C2 engine. */
async function sensorExample() {
  const h = await loadHarness();
  const work = mkdtempSync(join(tmpdir(), 'srup-sim-sensor-'));
  const cleanups = [];
  let sim = null;
  try {
    const pki = h.makeTestPki(join(work, 'pki'));
    const port = await h.freePort();
    const brokerUrl = `mqtts://127.0.0.1:${port}`;
    const server = h.generateRsaKeyPair(2048);
    const serverId = BigInt('0x' + nodeRandomBytes(8).toString('hex')) | 1n;
    writeFileSync(join(work, 'server-public.pem'), server.publicPem);
    const devDir = join(work, 'dev');
    const out = { write: () => true };
    const args = h.parseCommandArgs(h.provisionCommand, [
      '--out', devDir, '--server-id', serverId.toString(16), '--server-key', join(work, 'server-public.pem'),
      '--broker', brokerUrl, '--ca', pki.caFile, '--partitions', join(root, 'partitions.csv'),
    ]);
    await h.provisionCommand.run(args, { stdout: out, stderr: out, stdin: process.stdin });
    const registryEntry = JSON.parse(readFileSync(join(devDir, 'device.json'), 'utf8'));
    const deviceId = BigInt('0x' + registryEntry.id);
    const image = join(devDir, 'srup-sim.bin');
    // The simulator keeps preferences in one file on the host: start without a period saved by an earlier run.
    const prefs = '/tmp/modpreferences.json';
    if (existsSync(prefs)) {
      try {
        const p = JSON.parse(readFileSync(prefs, 'utf8'));
        delete p['srup-sensor'];
        writeFileSync(prefs, JSON.stringify(p));
      } catch {
        // not ours to repair
      }
    }

    const t0 = Date.now();
    const build = spawnSync('mcconfig', ['-d', '-m', '-p', 'lin', '-t', 'build', `srupImage=${image}`, 'srupJoin=human'], { cwd: join(root, 'examples', 'sensor'), encoding: 'utf8' });
    if (!check('examples/sensor builds for the simulator (its manifest includes modules/device/manifest.json)', build.status === 0, `${((Date.now() - t0) / 1000).toFixed(1)} s`)) {
      console.log((build.stdout + build.stderr).split('\n').filter((l) => !l.startsWith('# ')).slice(-20).join('\n'));
      return;
    }
    const so = findBuild();

    const broker = await h.startMosquitto({ tls: { pki }, port });
    cleanups.push(() => broker.dispose());
    const events = [];
    const transport = new h.MqttTransport({ url: brokerUrl, ca: pki.ca, clientId: h.srupClientId(serverId) });
    const engine = new h.C2Engine(
      { transport, registry: new h.MemoryRegistry(), crypto: h.nodeCrypto, random: h.randomBytes, clock: h.systemClock, log: () => {}, serverId, privateKey: server.privateKey },
      { onEvent: (e) => events.push({ ...e, receivedAt: Date.now() }) },
    );
    engine.provision(deviceId, h.parsePublicKeyPem(registryEntry.publicKey));
    await engine.start();
    cleanups.push(() => engine.stop());
    const readings = () => events.filter((e) => e.type === 'data' && e.device === deviceId && e.dataId === 'temperature');
    const until = (cond, what, ms = STEP_TIMEOUT_MS) =>
      withTimeout((async () => { while (!cond()) await new Promise((r) => setTimeout(r, 100)); })(), ms, what);
    const temperature = (e) => new DataView(e.data.buffer, e.data.byteOffset, 8).getFloat64(0, true);
    const meanInterval = (list) => (list.length < 2 ? NaN : (list.at(-1).receivedAt - list[0].receivedAt) / (list.length - 1));

    sim = startSimulator(so, 'sensor');
    await sim.waitFor(/^srup-sensor: period 3000 ms/, 'the default period');
    const [, grid, blink] = await sim.waitFor(/^srup: challenge grid=([0-3]{64}) blink=([1-4]{10})/, 'the device to show a challenge');
    await until(() => events.some((e) => e.type === 'challenge' && e.device === deviceId), 'the C2 challenge');
    const challenge = events.find((e) => e.type === 'challenge' && e.device === deviceId).challenge;
    const matches = challenge.grid.join('') === grid && challenge.blink === blink;
    check('the sensor shows the join challenge as the default firmware does, and it matches the C2\'s', matches, `blink ${blink}`);
    if (matches) await engine.approveJoin(deviceId);
    else await engine.refuseJoin(deviceId);
    await until(() => engine.device(deviceId)?.state === 'joined', 'the join');
    await sim.waitFor(/^srup-sensor: event ready/, 'the device to be ready');
    check('joined (human-moderated), and the device API reports ready', true);

    await until(() => readings().length >= 3, 'three readings', STEP_TIMEOUT_MS);
    const first = readings().slice(0, 3);
    check('three readings received and verified by the C2', first.every((e) => Number.isFinite(temperature(e))), first.map((e) => `${temperature(e)} °C`).join(', '));
    const ident = await withTimeout(engine.requestId(deviceId), STEP_TIMEOUT_MS, 'the ID response');
    check('ID request answered with the application\'s name and version', ident === 'srup-sensor 1.0.0', JSON.stringify(ident));

    await until(() => readings().length >= 5, 'five readings');
    const before = meanInterval(readings());
    const fast = await withTimeout(engine.sendAction(deviceId, 1), STEP_TIMEOUT_MS, 'the period action');
    await sim.waitFor(/^srup-sensor: period 1000 ms/, 'the new period');
    const from = readings().length;
    await until(() => readings().length >= from + 5, 'five readings at the new period');
    const after = meanInterval(readings().slice(from));
    check('the period action (1) changes the interval', fast === 0x20 && after < before, `0x${fast.toString(16)}; mean interval ${(before / 1000).toFixed(2)} s before, ${(after / 1000).toFixed(2)} s after`);
    const blinkStatus = await withTimeout(engine.sendAction(deviceId, 3), STEP_TIMEOUT_MS, 'the blink action');
    const unknown = await withTimeout(engine.sendAction(deviceId, 9), STEP_TIMEOUT_MS, 'an unknown action');
    check('the LED action (3) is done, an unknown action is 0x2E', blinkStatus === 0x20 && unknown === 0x2e, `0x${blinkStatus.toString(16)}, 0x${unknown.toString(16)}`);

    await sim.stop();
    sim = startSimulator(so, 'sensor after restart');
    await sim.waitFor(/^srup-sensor: period (\d+) ms/, 'the period after the restart');
    const kept = sim.lines.find((l) => /^srup-sensor: period \d+ ms/.test(l));
    const count = readings().length;
    await until(() => readings().length >= count + 2, 'readings after the restart');
    check('after a restart the period is still 1 s and readings go on (no second join)', kept === 'srup-sensor: period 1000 ms' && events.filter((e) => e.type === 'join_request').length === 1, kept);
    await new Promise((r) => setTimeout(r, 1200));
  } catch (e) {
    check('run', false, e instanceof Error ? e.message : String(e));
  } finally {
    await tearDown(sim, cleanups, work);
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exitCode = failed > 0 ? 1 : 0;
}

if (EXAMPLE === 'sensor') await sensorExample();
else await main();
// The MQTT client library may keep a timer or socket alive after the engine stopped.
process.exit(process.exitCode ?? 0);
