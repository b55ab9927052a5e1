/**
 * The firmware's manifest against its module graph, for each platform the firmware builds for (esp32 and the
 * simulator, lin), without an SDK:
 *   - every module the firmware imports at run time is provided: a project module mapped by manifest.json, a
 *     module of an SDK manifest that manifest.json includes for that platform (hosts/moddable/sdk-modules.json,
 *     generated from the SDK by scripts/sdk-modules.mjs), or `mc/ffi` where the platform declares `ffi`;
 *     xsl does not check the imports of modules that are not preloaded, so a gap here fails only at boot;
 *   - the manifest maps nothing the firmware does not use (no test, tool, Node or other-platform code);
 *   - every project module of the graph is preloaded (its code then lives in flash, not in the XS heap), by
 *     exact name (mcconfig 8.2.3 matches wildcard preload entries against JavaScript files only), except the
 *     short list below.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { diskReader, firmwareGraph, readManifest, type FirmwareGraph, type Platform, type PlatformManifest, type SourceReader } from './support/firmware-graph.js';

const ROOT = join(__dirname, '..');
const PLATFORMS: Platform[] = ['esp32', 'lin'];

/**
 * Project modules of the firmware that are not preloaded, and why. Nothing else may be missing from `preload`.
 *   hosts/moddable/main  its body starts the device (reads flash, joins the network): preloaded, it would run
 *                        at link time on the build machine.
 */
const NOT_PRELOADED = new Set(['hosts/moddable/main']);

interface SdkModules {
  manifests: Record<string, Partial<Record<Platform, string[]>>>;
}
const sdk = JSON.parse(readFileSync(join(ROOT, 'hosts', 'moddable', 'sdk-modules.json'), 'utf8')) as SdkModules;

/** Every way the manifest fails the graph, as one line each (empty when it fits). */
function manifestProblems(platform: Platform, manifest: PlatformManifest, graph: FirmwareGraph): string[] {
  const problems = graph.unmapped.map((u) => `${platform}: relative import not mapped by manifest.json: ${u}`);
  const unmappedNames = new Set(graph.unmapped.map((u) => u.split(' -> ')[1]));
  const provided = new Map<string, string>();
  for (const inc of manifest.include) {
    const entry = sdk.manifests[inc];
    if (entry === undefined) problems.push(`${platform}: ${inc} is not in hosts/moddable/sdk-modules.json (run scripts/sdk-modules.mjs)`);
    for (const name of entry?.[platform] ?? []) if (!provided.has(name)) provided.set(name, inc);
  }
  if (manifest.ffi) provided.set('mc/ffi', 'manifest.json ffi');
  for (const node of graph.nodes.values()) {
    if (node.file !== null) {
      if (/^(test|tools|bench|scripts|hosts\/node)\//.test(node.file)) problems.push(`${platform}: not device code in the firmware: ${node.file}`);
      const other = platform === 'esp32' ? 'hosts/moddable/sim/' : 'hosts/moddable/esp32/';
      if (node.file.startsWith(other)) problems.push(`${platform}: the other platform's code in the firmware: ${node.file}`);
      continue;
    }
    if (unmappedNames.has(node.name)) continue;
    if (manifest.modules.has(node.name)) problems.push(`${platform}: ${node.name} is mapped by manifest.json but its source is missing`);
    else if (!provided.has(node.name))
      problems.push(`${platform}: ${node.name} (imported by ${node.importedBy.join(', ')}) is provided by no manifest included for ${platform}`);
  }
  for (const name of manifest.modules.keys()) {
    if (name.includes('*')) problems.push(`${platform}: wildcard module entry ${name}: list modules by exact name`);
    else if (!graph.nodes.has(name)) problems.push(`${platform}: manifest.json maps ${name}, which the firmware never imports`);
  }
  return problems;
}

function preloadProblems(platform: Platform, manifest: PlatformManifest, graph: FirmwareGraph): string[] {
  const problems: string[] = [];
  const preload = new Set(manifest.preload);
  for (const p of preload) if (p.includes('*')) problems.push(`${platform}: wildcard preload ${p} preloads no TypeScript module: use exact names`);
  for (const node of graph.nodes.values()) {
    if (node.file === null) continue;
    if (NOT_PRELOADED.has(node.name)) {
      if (preload.has(node.name)) problems.push(`${platform}: ${node.name} must not be preloaded`);
    } else if (!preload.has(node.name)) problems.push(`${platform}: ${node.name} is not preloaded`);
  }
  return problems;
}

/** The disk, with some files' text replaced. */
function withSources(changes: Record<string, string>): SourceReader {
  const disk = diskReader(ROOT);
  return { exists: (p) => p in changes || disk.exists(p), read: (p) => changes[p] ?? disk.read(p) };
}

describe.each(PLATFORMS)('firmware manifest on %s', (platform) => {
  const manifest = readManifest(ROOT, platform);
  const graph = firmwareGraph(ROOT, manifest);

  test('the graph reaches the agent, the stores and the platform host', () => {
    const files = [...graph.nodes.values()].map((n) => n.file).filter((f): f is string => f !== null);
    expect(files).toEqual(expect.arrayContaining(['hosts/moddable/main.ts', 'modules/agent/agent.ts', 'modules/store/flash-stores.ts', 'crypto/rsa.ts']));
    expect(files).toContain(platform === 'esp32' ? 'hosts/moddable/platform-esp32.ts' : 'hosts/moddable/platform-sim.ts');
  });

  test('every imported module is provided, and the manifest maps nothing else', () => {
    expect(manifestProblems(platform, manifest, graph)).toEqual([]);
  });

  test('every project module is preloaded by exact name, but the short list', () => {
    expect(preloadProblems(platform, manifest, graph)).toEqual([]);
  });
});

describe('the check fails where the firmware would', () => {
  const manifest = readManifest(ROOT, 'esp32');

  test('the classic `wifi` module imported on esp32 (only the ECMA-419 Wi-Fi is built there)', () => {
    const file = 'hosts/moddable/esp32/network.ts';
    const reader = withSources({ [file]: `import WiFi from 'wifi';\n${readFileSync(join(ROOT, file), 'utf8')}` });
    expect(manifestProblems('esp32', manifest, firmwareGraph(ROOT, manifest, reader))).toEqual([
      'esp32: wifi (imported by hosts/moddable/esp32/network) is provided by no manifest included for esp32',
    ]);
  });

  test('an SDK manifest dropped from the includes', () => {
    const without = { ...manifest, include: manifest.include.filter((i) => !i.endsWith('/drivers/neopixel/manifest.json')) };
    expect(manifestProblems('esp32', without, firmwareGraph(ROOT, without))).toEqual([
      'esp32: neopixel (imported by hosts/moddable/esp32/presenter) is provided by no manifest included for esp32',
    ]);
  });

  test('a test helper pulled into the firmware, and a module left out of preload', () => {
    const file = 'modules/agent/commands.ts';
    const reader = withSources({ [file]: `import '../../test/portable/harness.js';\n${readFileSync(join(ROOT, file), 'utf8')}` });
    const graph = firmwareGraph(ROOT, manifest, reader);
    expect(manifestProblems('esp32', manifest, graph)).toEqual(['esp32: relative import not mapped by manifest.json: modules/agent/commands -> test/portable/harness']);
    const unpreloaded = { ...manifest, preload: manifest.preload.filter((p) => p !== 'modules/srup/codec') };
    expect(preloadProblems('esp32', unpreloaded, firmwareGraph(ROOT, unpreloaded))).toEqual(['esp32: modules/srup/codec is not preloaded']);
  });
});

describe('project typings fill gaps only', () => {
  const declared = (text: string): string[] => [...text.matchAll(/declare\s+module\s+['"]([^'"]+)['"]/g)].map((m) => m[1]);
  const walk = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith('.d.ts') ? [join(dir, e.name)] : []));
  const npmTypings = new Set(walk(join(ROOT, 'node_modules', '@moddable', 'typings')).flatMap((f) => declared(readFileSync(f, 'utf8'))));

  test.each(['sdk-gaps.d.ts', 'npm-gaps.d.ts'])('%s declares no module that @moddable/typings declares', (file) => {
    const mine = declared(readFileSync(join(ROOT, 'hosts', 'moddable', 'typings', file), 'utf8'));
    expect(mine.length).toBeGreaterThan(0);
    expect(mine.filter((m) => npmTypings.has(m))).toEqual([]);
  });
});
