/**
 * The `srup` command line as a separate process for end-to-end tests: tools/srup.ts bundled once per test file
 * with esbuild (so the tests never run a stale dist/), and a handle on a running `srup device` that parses its
 * JSON log lines from stderr.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';
import { sleep } from './e2e-world.js';

const ROOT = path.join(__dirname, '..', '..');

/** Bundles the CLI into .tmp/e2e/ (inside the project, so node_modules resolves); returns the script path. */
export async function bundleCli(): Promise<string> {
  const outDir = path.join(ROOT, '.tmp', 'e2e');
  fs.mkdirSync(outDir, { recursive: true });
  const outfile = path.join(outDir, `srup-${process.pid}-${Date.now()}.mjs`);
  await build({
    absWorkingDir: ROOT,
    stdin: {
      contents: "import { main } from './tools/srup.ts';\nprocess.exitCode = await main(process.argv.slice(2));\n",
      resolveDir: ROOT,
      sourcefile: 'srup-e2e-entry.ts',
      loader: 'ts',
    },
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    logLevel: 'error',
  });
  return outfile;
}

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI to completion. */
export function runCli(script: string, args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

export type LogLine = Record<string, unknown> & { event: string; level: string };

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of running) c.kill('SIGKILL');
});

/** A running `srup device` (or its supervisor). */
export class DeviceProcess {
  readonly lines: LogLine[] = [];
  stdout = '';
  stderrText = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly child: ChildProcess;

  constructor(script: string, args: string[]) {
    const child = spawn(process.execPath, [script, 'device', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], detached: false });
    this.child = child;
    running.add(child);
    let pending = '';
    child.stdout!.on('data', (d: Buffer) => (this.stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => {
      const s = d.toString();
      this.stderrText += s;
      pending += s;
      const parts = pending.split('\n');
      pending = parts.pop() ?? '';
      for (const p of parts) {
        if (process.env.SRUP_E2E_DEBUG) process.stderr.write(`[device ${child.pid}] ${p}\n`);
        try {
          const o = JSON.parse(p) as LogLine;
          if (typeof o.event === 'string') this.lines.push(o);
        } catch {
          // not a log line
        }
      }
    });
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        running.delete(child);
        resolve({ code, signal });
      });
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  events(event: string): LogLine[] {
    return this.lines.filter((l) => l.event === event);
  }

  async waitFor(event: string, count = 1, ms = 30_000, pred: (l: LogLine) => boolean = () => true): Promise<void> {
    const deadline = Date.now() + ms;
    while (this.lines.filter((l) => l.event === event && pred(l)).length < count) {
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        await sleep(50); // let the last lines in
        if (this.lines.filter((l) => l.event === event && pred(l)).length >= count) return;
        throw new Error(`device process ended (${this.child.exitCode ?? this.child.signalCode}) before '${event}':\n${this.stderrText}`);
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for '${event}' ×${count}:\n${this.stderrText.slice(-4000)}`);
      await sleep(10);
    }
  }

  kill(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }
}
