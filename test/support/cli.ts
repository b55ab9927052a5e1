/** Runs one `srup` invocation in this process through the same main() that bin/srup.js runs, output captured. */
import { Writable } from 'node:stream';
import { main } from '../../tools/srup.js';

export function capture(): { stream: Writable; text: () => string } {
  let s = '';
  const stream = new Writable({
    write(chunk, _enc, cb) {
      s += chunk.toString();
      cb();
    },
  });
  return { stream, text: () => s };
}

/** `srup c2 ARGS…`: the exit status and what it wrote to stdout and stderr. */
export async function c2Cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out = capture();
  const err = capture();
  const code = await main(['c2', ...args], { stdout: out.stream, stderr: err.stream });
  return { code, out: out.text(), err: err.text() };
}
