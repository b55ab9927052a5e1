// The ESP32 memory gate (issue 8, "measure it three ways" (b)): runs the device flows of test/xs/heap-entry.ts
// (boot from a provisioned partition, a human join, 20 commands, a 1 MiB streamed update with restart) on a
// real XS engine and prints exactly one line
//
//     esp32 heap peak: N KiB of B KiB
//
// N is the agent's share of the XS heap at its peak, in the ESP32's 32-bit bytes: slots × 16 + chunk bytes.
// The slot count of a workload is the same at either word size; chunk bytes are taken as measured here
// (64-bit), which is conservative (32-bit chunks are 5-22 % smaller). The share is the heap's final
// reservation minus a baseline taken after loading the bundle: in a script engine the bundle's code and
// module-level objects are in the heap, on the device the project's modules are preloaded into flash. The
// heap is tight and growable (small initial sizes and increments; XS grows it only when a collection leaves
// less free than one increment), so the reservation bounds the peak of live data within one growth step;
// a hard cap on growth after the baseline makes running out a failure ("memory full"), not a number. See
// test/xs/heap-entry.ts for what is in the baseline. The SDK's TLS and MQTT are not part of this figure.
// The flows after the baseline run with the ESP32's XS stack (manifest.json, 512 slots, of which XS's own
// intrinsics hold about 160, as on the device), counted above the test driver's own frame; deeper aborts with
// "stack overflow". The stack peak is printed on the line before the gate's.
//
// Exit status 1 when N > B, when the flows fail, or when XS aborts. Then a self-check runs the same gate with
// a growth cap far below the need and requires it to fail: a gate that cannot fail is no gate.
//
//   node scripts/xs-heap.mjs [--budget KiB] [--cap KiB] [--no-self-check] [--json]
//
// The XS host (test/xs/heap-host.c) is compiled on first use against the XS sources in @agoric/xsnap and
// cached under node_modules/.cache.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { takeBuildLock, xsnapPackageDir } from './xs.mjs';

export const projectRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
const HOST_SOURCE = join(projectRoot, 'test', 'xs', 'heap-host.c');
const ENTRY = join(projectRoot, 'test', 'xs', 'heap-entry.ts');
const KEYS = join(projectRoot, 'test', 'data', 'srup-vectors', 'keys');
const OUT = join(projectRoot, '.tmp', 'xs', 'heap.js');

/** The gate's budget: the agent's share of the ESP32 XS heap, KiB of 32-bit bytes. */
export const BUDGET_KIB = 48;
/** One slot on the 32-bit ESP32. */
const SLOT_BYTES_32 = 16;

/**
 * The XS stack of the ESP32 build (manifest.json, platforms.esp32.creation.stack); 512 slots if the manifest
 * does not say (or is not plain JSON).
 */
function esp32StackSlots() {
  try {
    const m = JSON.parse(readFileSync(join(projectRoot, 'manifest.json'), 'utf8'));
    const v = m?.platforms?.esp32?.creation?.stack;
    if (Number.isInteger(v) && v > 0) return v;
  } catch {
    // fall through
  }
  return 512;
}

/**
 * The machine: small initial sizes and increments (a tight growable heap). The stack: loading the bundle
 * needs more than the device (esbuild's one function scope for every module's top level; on the device each
 * module has its own, preloaded), so the load runs with 4096 slots and the flows after the baseline with the
 * ESP32's stack only (counted above the test driver's frame, see test/xs/heap-host.c): deeper is "stack
 * overflow", a failure.
 */
export const CREATION = {
  initialChunkBytes: 64 * 1024,
  incrementalChunkBytes: 1024,
  initialSlots: 4096,
  incrementalSlots: 64,
  loadStackSlots: 4096,
  stackSlots: esp32StackSlots(),
};

// The XS engine files the host needs (the package's xsnap build less its own main and text/base64 modules).
const XS_SOURCES = [
  'xsAll', 'xsAPI', 'xsArguments', 'xsArray', 'xsAtomics', 'xsBigInt', 'xsBoolean', 'xsCode', 'xsCommon',
  'xsDataView', 'xsDate', 'xsDebug', 'xsDefaults', 'xsError', 'xsFunction', 'xsGenerator', 'xsGlobal', 'xsJSON',
  'xsLexical', 'xsLockdown', 'xsMapSet', 'xsMarshall', 'xsMath', 'xsMemory', 'xsModule', 'xsNumber', 'xsObject',
  'xsPlatforms', 'xsProfile', 'xsPromise', 'xsProperty', 'xsProxy', 'xsRegExp', 'xsRun', 'xsScope', 'xsScript',
  'xsSnapshot', 'xsSourceMap', 'xsString', 'xsSymbol', 'xsSyntaxical', 'xsTree', 'xsType', 'xsdtoa', 'xsre', 'xsmc',
];

/** The C flags of the package's xsnap release build (its makefiles/lin/xsnap.mk), so the machine is the same. */
function cFlags(pkg) {
  const xs = join(pkg, 'moddable', 'xs');
  return [
    '-fno-common',
    '-DINCLUDE_XSPLATFORM',
    '-DXSPLATFORM="xsnapPlatform.h"',
    '-DmxLockdown=1',
    '-DmxMetering=1',
    '-DmxParse=1',
    '-DmxProfile=1',
    '-DmxRun=1',
    '-DmxSloppy=1',
    '-DmxSnapshot=1',
    '-DmxRegExpUnicodePropertyEscapes=1',
    '-DmxStringNormalize=1',
    '-DmxMinusZero=1',
    '-DmxBoundsCheck=1',
    '-O2',
    '-Wno-misleading-indentation',
    '-Wno-implicit-fallthrough',
    `-I${join(xs, 'includes')}`,
    `-I${join(xs, 'platforms')}`,
    `-I${join(xs, 'sources')}`,
    `-I${join(pkg, 'xsnap-native', 'xsnap', 'sources')}`,
  ];
}

function compile(cc, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(cc, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stdout.on('data', (b) => (err += b));
    child.stderr.on('data', (b) => (err += b));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${cc} ${args.join(' ')}\n${err}`))));
  });
}

/** Path of the heap host binary; compiles it (about 30 s, two at a time) when the cached one is missing. */
export async function ensureHeapHost() {
  const pkg = xsnapPackageDir();
  const version = JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')).version;
  const flags = cFlags(pkg);
  const hash = (...parts) => createHash('sha256').update(parts.join('\n')).digest('hex').slice(0, 16);
  // The engine's objects depend on the package and the flags; the binary also on our host's source.
  const engineKey = hash(version, flags.join(' '), XS_SOURCES.join(' '));
  const cache = join(projectRoot, 'node_modules', '.cache', 'srup-heap-host');
  const objDir = join(cache, `xs-${engineKey}`);
  const dir = join(cache, `host-${hash(engineKey, readFileSync(HOST_SOURCE, 'utf8'))}`);
  const binary = join(dir, 'heap-host');
  if (existsSync(binary)) return binary;

  mkdirSync(dir, { recursive: true });
  const release = takeBuildLock(join(cache, '.build.lock'), binary);
  if (release === null) return binary;
  try {
    const cc = process.env.CC || 'cc';
    const units = [
      ...XS_SOURCES.map((n) => join(pkg, 'moddable', 'xs', 'sources', `${n}.c`)),
      join(pkg, 'xsnap-native', 'xsnap', 'sources', 'xsnapPlatform.c'),
    ].map((src) => ({ src, obj: join(objDir, src.split('/').pop().replace(/\.c$/, '.o')) }));
    units.push({ src: HOST_SOURCE, obj: join(dir, 'heap-host.o') });
    const todo = units.filter((u) => !existsSync(u.obj));
    if (todo.length > 1) console.log('Building the XS heap host from @agoric/xsnap sources (once, about 30-90 s)...');
    mkdirSync(objDir, { recursive: true });
    let next = 0;
    const worker = async () => {
      while (next < todo.length) {
        const u = todo[next++];
        // Written under a temporary name, so that an interrupted build leaves no truncated object behind.
        await compile(cc, [u.src, ...flags, '-c', '-o', `${u.obj}.tmp`]);
        renameSync(`${u.obj}.tmp`, u.obj);
      }
    };
    await Promise.all([worker(), worker()]);
    const objects = units.map((u) => u.obj);
    const tmp = `${binary}.tmp`;
    await compile(cc, ['-rdynamic', ...objects, '-ldl', '-lm', '-lpthread', '-o', tmp]);
    renameSync(tmp, binary);
    return binary;
  } finally {
    release();
  }
}

const embeddedKeys = {
  name: 'srup-heap-keys',
  setup(b) {
    b.onResolve({ filter: /^srup-heap:keys$/ }, (args) => ({ path: args.path, namespace: 'srup-heap' }));
    b.onLoad({ filter: /.*/, namespace: 'srup-heap' }, () => ({
      contents: `export default ${JSON.stringify({
        server: readFileSync(join(KEYS, 'signer-1.private.pem'), 'utf8'),
        device: readFileSync(join(KEYS, 'recipient-1.private.pem'), 'utf8'),
      })};\n`,
      loader: 'js',
    }));
  },
};

/** Bundles test/xs/heap-entry.ts into one script for the host. */
export async function bundleHeapEntry() {
  mkdirSync(dirname(OUT), { recursive: true });
  const result = await build({
    entryPoints: [ENTRY],
    bundle: true,
    format: 'iife',
    target: 'es2022',
    platform: 'neutral',
    mainFields: ['module', 'main'],
    conditions: ['import', 'default'],
    write: false,
    logLevel: 'silent',
    plugins: [embeddedKeys],
  });
  writeFileSync(OUT, result.outputFiles[0].contents);
  return OUT;
}

function run(binary, args, timeoutMs) {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out = [];
    const err = [];
    child.stdout.on('data', (b) => out.push(b));
    child.stderr.on('data', (b) => err.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), ms: Date.now() - t0 });
    });
  });
}

/**
 * Runs the flows once. `capKiB`: growth allowed after the baseline, in KiB of the host's own (64-bit) bytes.
 * Resolves with { ok, kib, chunks, slots, stackPeak, stackSlots, ms, why, output }; `kib` is the agent's share
 * in 32-bit KiB when the flows ran to the end.
 */
export async function measureHeap({ capKiB = 4 * BUDGET_KIB, creation = CREATION, timeoutMs = 300_000 } = {}) {
  const binary = await ensureHeapHost();
  const script = await bundleHeapEntry();
  const args = [
    '-c', String(creation.initialChunkBytes),
    '-C', String(creation.incrementalChunkBytes),
    '-h', String(creation.initialSlots),
    '-H', String(creation.incrementalSlots),
    '-k', String(creation.loadStackSlots),
    '-K', String(creation.stackSlots),
    '-g', String(capKiB * 1024),
    script,
  ];
  const r = await run(binary, args, timeoutMs);
  const output = `${r.stdout}${r.stderr}`.trimEnd();
  const line = r.stdout.split('\n').find((l) => l.startsWith('HEAP '));
  const failed = r.stdout.split('\n').find((l) => l.startsWith('HEAP-FAIL '));
  const abort = /heap-host: XS abort: ([^\n]*)/.exec(r.stderr);
  if (r.code !== 0 || r.signal !== null || line === undefined) {
    const why = abort
      ? `XS abort: ${abort[1]}`
      : failed
        ? `flows failed: ${failed.slice('HEAP-FAIL '.length)}`
        : r.signal !== null
          ? `killed by ${r.signal}`
          : `exit ${r.code} without a result`;
    return { ok: false, why, ms: r.ms, output };
  }
  const h = JSON.parse(line.slice('HEAP '.length));
  // The agent's share: reservation minus baseline, chunks in bytes, slots as a count.
  const chunks = h.reserved.chunks - h.base.chunks;
  const slots = h.reserved.slots - h.base.slots;
  const bytes32 = slots * SLOT_BYTES_32 + chunks;
  return {
    ok: true,
    kib: Math.ceil(bytes32 / 1024),
    chunks,
    slots,
    rest: { chunks: h.rest.chunks - h.base.chunks, slots: h.rest.slots - h.base.slots },
    stackPeak: h.stack.peak,
    stackRest: h.stack.rest,
    stackSlots: creation.stackSlots,
    flows: h.flows,
    ms: r.ms,
    output,
  };
}

/** The gate's line. */
export function gateLine(kib, budgetKiB) {
  return `esp32 heap peak: ${kib} KiB of ${budgetKiB} KiB`;
}

async function main() {
  const argv = process.argv.slice(2);
  const opt = (name, dflt) => {
    const i = argv.indexOf(name);
    return i >= 0 ? Number(argv[i + 1]) : dflt;
  };
  const budget = opt('--budget', BUDGET_KIB);
  const cap = opt('--cap', 4 * BUDGET_KIB);
  const json = argv.includes('--json');
  const selfCheck = !argv.includes('--no-self-check');

  const m = await measureHeap({ capKiB: cap });
  if (json) {
    console.log(JSON.stringify({ budget, ...m, output: undefined }));
    if (!m.ok || m.kib > budget) process.exitCode = 1;
    return;
  }
  if (!m.ok) {
    console.log(m.output);
    console.log(`esp32 heap gate: ${m.why}`);
    process.exitCode = 1;
    return;
  }
  console.log(
    `esp32 heap: agent ${m.slots} slots + ${m.chunks} chunk bytes above the baseline (after the run ` +
      `${m.rest.slots} slots + ${m.rest.chunks} bytes live); XS stack peak ${m.stackPeak} of ${m.stackSlots} slots (${m.stackRest} of them XS's own); ` +
      `${m.flows.commands} commands, ${m.flows.updateBytes} update bytes, ${m.flows.boots} boots; ${(m.ms / 1000).toFixed(1)} s`,
  );
  console.log(gateLine(m.kib, budget));
  if (m.kib > budget) process.exitCode = 1;

  if (selfCheck) {
    // The same gate with a cap far below what the flows need must fail, and say why.
    const low = Math.max(1, Math.floor(m.kib / 8));
    const s = await measureHeap({ capKiB: low });
    if (s.ok || !/memory full/.test(s.why)) {
      console.log(`esp32 heap gate self-check FAILED: with a ${low} KiB cap the run ${s.ok ? 'passed' : `failed otherwise (${s.why})`}`);
      process.exitCode = 1;
    } else {
      console.log(`esp32 heap gate self-check: a ${low} KiB growth cap fails with ${s.why}`);
    }
  }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((e) => {
    console.error(e instanceof Error ? (e.stack ?? e.message) : e);
    process.exitCode = 1;
  });
}
