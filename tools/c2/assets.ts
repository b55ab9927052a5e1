/**
 * The console's files: tools/c2/console/{index.html, app.js, app.css}, and challenge.js — modules/challenge
 * bundled for the browser as an ES module, so the page draws the grid and plays the blink code with the very
 * functions the device uses. Read (and bundled, with esbuild) once, on first request.
 */
import fs from 'node:fs';
import path from 'node:path';

export interface Asset {
  readonly type: string;
  readonly body: Buffer;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
};

const CONSOLE_DIR = path.join('tools', 'c2', 'console');
const CHALLENGE_ENTRY = path.join('modules', 'challenge', 'index.ts');
/** The same options as scripts/build.mjs uses for dist/console-challenge.js. */
const CHALLENGE_BUILD = {
  entryPoints: [CHALLENGE_ENTRY],
  bundle: true,
  format: 'esm' as const,
  platform: 'browser' as const,
  target: 'es2020',
};

/** The project root: the first directory up from the program or the working directory holding the console. */
export function projectRoot(): string {
  const starts = [process.env.SRUP_ROOT, process.argv[1] ? path.dirname(path.resolve(process.argv[1])) : undefined, process.cwd()];
  for (const s of starts) {
    if (!s) continue;
    let dir = path.resolve(s);
    for (;;) {
      if (fs.existsSync(path.join(dir, CONSOLE_DIR, 'index.html'))) return dir;
      const up = path.dirname(dir);
      if (up === dir) break;
      dir = up;
    }
  }
  throw new Error(`cannot find ${CONSOLE_DIR}: run from the srup-agent project (or set SRUP_ROOT)`);
}

const cache = new Map<string, Promise<Asset>>();

async function load(name: string): Promise<Asset> {
  const root = projectRoot();
  if (name === 'challenge.js') {
    // Built by scripts/build.mjs (npm install runs it); bundled here on demand when working from the sources.
    const prebuilt = path.join(root, 'dist', 'console-challenge.js');
    if (fs.existsSync(prebuilt)) return { type: TYPES['.js'], body: fs.readFileSync(prebuilt) };
    try {
      const esbuild = await import('esbuild');
      const out = await esbuild.build({ ...CHALLENGE_BUILD, absWorkingDir: root, write: false, logLevel: 'silent' });
      return { type: TYPES['.js'], body: Buffer.from(out.outputFiles![0].contents) };
    } catch (e) {
      throw new Error(`cannot bundle ${CHALLENGE_ENTRY} for the console (run npm run build): ${(e as Error).message}`);
    }
  }
  const file = path.join(root, CONSOLE_DIR, name);
  return { type: TYPES[path.extname(name)] ?? 'application/octet-stream', body: fs.readFileSync(file) };
}

export function consoleAsset(name: string): Promise<Asset> {
  let p = cache.get(name);
  if (p === undefined) {
    p = load(name);
    p.catch(() => cache.delete(name));
    cache.set(name, p);
  }
  return p;
}
