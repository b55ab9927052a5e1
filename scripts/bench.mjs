// Runs the benchmark sections and prints one table; writes bench/results.json.
//
//   npm run bench                      every section
//   npm run bench -- --only codec      sections whose name is, or starts with, "codec" (codec, codec.xs)
//   npm run bench -- --list            names only
//   npm run bench -- --quick           short measurements (a smoke test, not numbers to quote)
//
// A section is a script: bench/<name>.bench.ts runs on Node, bench/<name>.xs.bench.ts on the XS engine (the
// xsnap binary from scripts/xs.mjs). Each is bundled with esbuild into .tmp/bench/ and run in a fresh
// process; it reports rows {section, name, value, unit, target?, met?} as stdout lines starting with
// "@bench-row " (bench/lib.ts) and anything else it prints is progress. New sections need no change here.
import { build } from 'esbuild';
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { arch, cpus, loadavg, platform } from 'node:os';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { ensureXsnap, projectRoot as root } from './xs.mjs';

const ROW_PREFIX = '@bench-row ';
const SUFFIX = '.bench.ts';
const SECTION_TIMEOUT_MS = 5 * 60_000;

const { values: args } = parseArgs({
  options: {
    only: { type: 'string', multiple: true },
    list: { type: 'boolean' },
    quick: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (args.help) {
  console.log('Usage: npm run bench [-- --only NAME[,NAME…]] [--list] [--quick]');
  process.exit(0);
}

const benchDir = join(root, 'bench');
const sections = readdirSync(benchDir)
  .filter((f) => f.endsWith(SUFFIX))
  .map((f) => {
    const name = f.slice(0, -SUFFIX.length);
    return { name, file: join(benchDir, f), engine: name.endsWith('.xs') ? 'xs' : 'node' };
  })
  .sort((a, b) => (a.engine === b.engine ? a.name.localeCompare(b.name) : a.engine === 'node' ? -1 : 1));

if (args.list) {
  for (const s of sections) console.log(`${s.name.padEnd(24)} ${s.engine === 'xs' ? 'XS (xsnap)' : 'Node'}`);
  process.exit(0);
}

const wanted = (args.only ?? []).flatMap((o) => o.split(',')).map((o) => o.trim()).filter(Boolean);
const matches = (name, w) => name === w || name.startsWith(w + '.');
for (const w of wanted) {
  if (!sections.some((s) => matches(s.name, w))) {
    console.error(`bench: no section named "${w}" (sections: ${sections.map((s) => s.name).join(', ')})`);
    process.exit(2);
  }
}
const selected = wanted.length ? sections.filter((s) => wanted.some((w) => matches(s.name, w))) : sections;
const options = { minMs: args.quick ? 60 : 500 };

const outDir = join(root, '.tmp', 'bench');
mkdirSync(outDir, { recursive: true });

async function bundle(section) {
  const xs = section.engine === 'xs';
  const outfile = join(outDir, section.name + (xs ? '.js' : '.mjs'));
  await build({
    absWorkingDir: root,
    entryPoints: [section.file],
    outfile,
    bundle: true,
    // XS runs one plain script with nothing to import from: everything goes in.
    ...(xs
      ? { platform: 'neutral', format: 'iife', mainFields: ['module', 'main'], target: 'es2022' }
      : { platform: 'node', format: 'esm', packages: 'external', target: 'node20' }),
    loader: { '.pem': 'text' },
    banner: { js: `globalThis.BENCH_OPTIONS = ${JSON.stringify(options)};` },
    logLevel: 'warning',
  });
  return outfile;
}

function run(section, bundlePath, rows) {
  const [command, argv] =
    section.engine === 'xs' ? [ensureXsnap(), ['-s', bundlePath]] : [process.execPath, [bundlePath]];
  return new Promise((resolve) => {
    const child = spawn(command, argv, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    const timer = setTimeout(() => child.kill('SIGKILL'), SECTION_TIMEOUT_MS);
    let pending = '';
    let errors = '';
    const onLine = (line) => {
      if (line.startsWith(ROW_PREFIX)) {
        const row = JSON.parse(line.slice(ROW_PREFIX.length));
        rows.push({ ...row, engine: section.engine, bench: section.name });
        process.stderr.write(`    ${formatRate(row)}\n`);
      } else if (line.trim()) process.stderr.write(`  ${line}\n`);
    };
    child.stdout.on('data', (b) => {
      pending += b.toString('utf8');
      const lines = pending.split('\n');
      pending = lines.pop();
      lines.forEach(onLine);
    });
    child.stderr.on('data', (b) => {
      errors += b.toString('utf8');
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      resolve(`cannot start: ${e.message}`);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (pending) onLine(pending);
      if (code === 0) resolve(null);
      else resolve(`${signal ? `killed by ${signal}` : `exit status ${code}`}${errors ? `\n${errors.trimEnd()}` : ''}`);
    });
  });
}

// ---- formatting ----

function formatNumber(v) {
  if (v >= 100) return Math.round(v).toLocaleString('en-US');
  if (v >= 10) return v.toFixed(1);
  return v.toPrecision(3);
}

function formatDuration(us) {
  if (us >= 1000) return `${(us / 1000).toPrecision(3)} ms`;
  if (us >= 1) return `${us.toPrecision(3)} µs`;
  return `${(us * 1000).toPrecision(3)} ns`;
}

/** The samples' range around the median: "1,900,000–2,400,000 (±11%)", or '' for a row without samples. */
function formatSpread(row) {
  if (!row.spread) return '';
  const { min, max } = row.spread;
  const pct = row.value > 0 ? Math.round(((max - min) / 2 / row.value) * 100) : 0;
  return `${formatNumber(min)}–${formatNumber(max)} (±${pct}%)`;
}

function formatRate(row) {
  const per = row.unit === 'ops/s' ? `  (${formatDuration(1e6 / row.value)}/op)` : '';
  const spread = row.spread ? `, samples ${formatSpread(row)}` : '';
  return `${row.name}: ${formatNumber(row.value)} ${row.unit}${per}${spread}`;
}

function table(rows) {
  const header = ['section', 'benchmark', 'value', 'unit', 'per op', 'spread (slowest–fastest sample)', 'target', 'met'];
  const body = rows.map((r) => [
    r.section,
    r.name,
    formatNumber(r.value),
    r.unit,
    r.unit === 'ops/s' ? formatDuration(1e6 / r.value) : '',
    formatSpread(r),
    r.target ?? '',
    r.met === undefined ? '' : r.met ? 'met' : 'NOT MET',
  ]);
  const right = new Set([2, 4, 5]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells) =>
    cells
      .map((c, i) => (right.has(i) ? c.padStart(widths[i]) : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}

// ---- main ----

const rows = [];
const failures = [];
const t0 = Date.now();
for (const section of selected) {
  process.stderr.write(`[${section.name}] ${section.engine === 'xs' ? 'XS (xsnap)' : `Node ${process.version}`}\n`);
  let failure;
  try {
    failure = await run(section, await bundle(section), rows);
  } catch (e) {
    failure = e instanceof Error ? e.message : String(e);
  }
  if (failure) {
    failures.push({ section: section.name, error: failure });
    process.stderr.write(`[${section.name}] FAILED: ${failure}\n`);
  }
}

const seconds = ((Date.now() - t0) / 1000).toFixed(1);
console.log('');
console.log(rows.length ? table(rows) : '(no results)');
console.log('');
const cpu = cpus()[0]?.model ?? 'unknown CPU';
const cpuCount = cpus().length;
const load = loadavg()[0];
console.log(
  `${cpu} (${cpuCount} CPUs), ${platform()}-${arch()}, Node ${process.version}; load average ${load.toFixed(1)}; ` +
    `median of 10 samples per row (spread: the slowest and fastest sample); ${seconds} s${args.quick ? ' (--quick: short runs, not numbers to quote)' : ''}`,
);
if (load > cpuCount) console.log(`note: the machine was busy (load ${load.toFixed(1)} on ${cpuCount} CPUs); rates are lower than on an idle one`);
for (const f of failures) console.log(`section ${f.section} FAILED: ${f.error.split('\n')[0]}`);

const resultsPath = join(benchDir, 'results.json');
writeFileSync(
  resultsPath,
  JSON.stringify(
    {
      date: new Date().toISOString(),
      node: process.version,
      platform: `${platform()}-${arch()}`,
      cpu,
      cpus: cpuCount,
      loadavg: load,
      quick: Boolean(args.quick),
      sections: selected.map((s) => s.name),
      rows,
      failures,
    },
    null,
    2,
  ) + '\n',
);
console.log(`results: ${relative(process.cwd(), resultsPath) || resultsPath}`);
process.exitCode = failures.length ? 1 : 0;
