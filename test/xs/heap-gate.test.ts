/**
 * The ESP32 memory gate (scripts/xs-heap.mjs) can fail: the same run with a budget of 1 KiB exits non-zero
 * and says so in its one line. (The script checks the other way to fail itself: a growth cap below the need
 * ends the run with "memory full".)
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const root = join(__dirname, '..', '..');

test('a 1 KiB budget fails the memory gate', () => {
  const r = spawnSync(process.execPath, [join(root, 'scripts', 'xs-heap.mjs'), '--budget', '1', '--no-self-check'], {
    cwd: root,
    encoding: 'utf8',
    maxBuffer: 16 * 1024 * 1024,
  });
  const lines = r.stdout.split('\n').filter((l) => l.startsWith('esp32 heap peak: '));
  expect(lines).toHaveLength(1);
  const m = /^esp32 heap peak: (\d+) KiB of 1 KiB$/.exec(lines[0]);
  expect(m).not.toBeNull();
  expect(Number(m?.[1])).toBeGreaterThan(1);
  expect(r.status).toBe(1);
}, 600_000);
