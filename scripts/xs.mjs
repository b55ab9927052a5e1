// Runs plain scripts on a real XS engine: the `xsnap` command built from the sources that ship in the
// @agoric/xsnap npm package (MODDABLE-NOTES.md §5). Used by xs-test.mjs and the benchmarks.
//
//   ensureXsnap()      -> absolute path of the xsnap binary, building it once (about 25 s) when missing
//   runBundle(jsPath)  -> { code, signal, stdout, stderr, ms } of `xsnap -s jsPath`
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

export const projectRoot = join(dirname(fileURLToPath(import.meta.url)), '..');

export function xsnapPackageDir() {
  const require = createRequire(join(projectRoot, 'package.json'));
  return dirname(require.resolve('@agoric/xsnap/package.json'));
}

function sleep(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Path of the plain xsnap binary; builds it with the package's own makefile if it is not there yet. */
/**
 * Several scripts may ask for the same built binary at once: the first takes the lock (a directory) and builds,
 * the others wait. Returns null when `binary` exists (built meanwhile), else the function that releases the
 * lock, to be called when the build is done or failed. A lock left behind by a build that died is stale after
 * five minutes.
 */
export function takeBuildLock(lock, binary) {
  const started = Date.now();
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch (e) {
      if (e.code !== 'EEXIST') throw e;
      if (existsSync(binary)) return null;
      if (Date.now() - statSync(lock).mtimeMs > 5 * 60_000) {
        rmdirSync(lock);
        continue;
      }
      if (Date.now() - started > 10 * 60_000) throw new Error(`gave up waiting for ${lock}`);
      sleep(500);
    }
  }
  if (existsSync(binary)) {
    rmdirSync(lock);
    return null;
  }
  return () => rmdirSync(lock);
}

export function ensureXsnap() {
  const pkg = xsnapPackageDir();
  const moddable = join(pkg, 'moddable');
  const binary = join(moddable, 'build', 'bin', 'lin', 'release', 'xsnap');
  if (existsSync(binary)) return binary;

  // Several scripts may ask at once: the first one builds, the others wait for it.
  mkdirSync(join(moddable, 'build'), { recursive: true });
  const release = takeBuildLock(join(moddable, 'build', '.xsnap-build.lock'), binary);
  if (release === null) return binary;
  try {
    const makeDir = join(pkg, 'xsnap-native', 'xsnap', 'makefiles', 'lin');
    console.log('Building the xsnap XS engine from @agoric/xsnap (once, about 25 s)...');
    const r = spawnSync('make', ['-f', 'xsnap.mk', 'GOAL=release', `MODDABLE=${moddable}`], {
      cwd: makeDir,
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    });
    if (r.error) throw new Error(`cannot run make: ${r.error.message}`);
    if (r.status !== 0 || !existsSync(binary)) {
      throw new Error(`building xsnap failed (make exit ${r.status}):\n${r.stdout}${r.stderr}`);
    }
    return binary;
  } finally {
    release();
  }
}

/**
 * Runs one script (not a module) on XS. Resolves with the exit status and the whole output; never rejects
 * for a failing script, only when xsnap cannot be started at all.
 */
export function runBundle(jsPath, { timeoutMs = 300_000 } = {}) {
  const binary = ensureXsnap();
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(binary, ['-s', jsPath], { stdio: ['ignore', 'pipe', 'pipe'] });
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
      resolve({
        code,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        ms: Date.now() - t0,
      });
    });
  });
}
