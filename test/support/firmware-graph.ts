/**
 * The firmware's module graph as mcconfig builds it, read from the sources and manifest.json: starting at the
 * manifest's `creation.main`, every runtime import (`import ... from`, `export ... from`, `import '...'`;
 * `import type` and `export type` are erased by TypeScript and are not edges) is resolved the way the build
 * resolves it: a relative import names a project module (its path from the root, without extension), which the
 * manifest must map to a source file for the platform; anything else is a module the manifest must bring in,
 * from `modules` or from an included SDK manifest.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';

export type Platform = 'esp32' | 'lin';

interface ManifestLike {
  include?: string[];
  modules?: Record<string, string>;
  preload?: string[];
  creation?: { main?: string };
  ffi?: unknown;
  platforms?: Record<string, ManifestLike>;
}

export interface PlatformManifest {
  /** Included SDK manifests ($(MODDABLE)/..., $(MODULES)/...), top-level and the platform's, of every project manifest. */
  readonly include: string[];
  /** Module name -> source path (from the project root, no extension), top-level and the platform's. */
  readonly modules: Map<string, string>;
  readonly preload: string[];
  readonly main: string;
  /** Whether a manifest declares `ffi` for the platform. */
  readonly ffi: boolean;
}

/**
 * The manifest `file` (default manifest.json) for `platform`, with the project manifests it includes (paths
 * relative to the including manifest, as mcconfig resolves them; module paths relative to their manifest).
 */
export function readManifest(root: string, platform: Platform, file = 'manifest.json'): PlatformManifest {
  const include: string[] = [];
  const modules = new Map<string, string>();
  const preload: string[] = [];
  let main: string | undefined;
  let ffi = false;
  const read = (path: string): void => {
    const m = JSON.parse(readFileSync(join(root, path), 'utf8')) as ManifestLike;
    const dir = posix.dirname(path);
    const p = m.platforms?.[platform] ?? {};
    for (const inc of [...(m.include ?? []), ...(p.include ?? [])]) {
      if (inc.startsWith('$(')) include.push(inc);
      else read(posix.normalize(posix.join(dir, inc)));
    }
    for (const src of [m.modules ?? {}, p.modules ?? {}])
      for (const [name, to] of Object.entries(src)) modules.set(name, posix.normalize(posix.join(dir, to)));
    preload.push(...(m.preload ?? []), ...(p.preload ?? []));
    main ??= m.creation?.main;
    if (p.ffi !== undefined) ffi = true;
  };
  read(file);
  return { include, modules, preload, main: main ?? 'main', ffi };
}

/** Runtime import specifiers of a TypeScript or JavaScript source. */
export function runtimeImports(source: string): string[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
  const found: string[] = [];
  const re = /(?:^|[;\n])\s*(import|export)\s+(type\s+)?([^'";]*?)\s*from\s*['"]([^'"]+)['"]|(?:^|[;\n])\s*import\s*['"]([^'"]+)['"]/g;
  for (let m = re.exec(code); m !== null; m = re.exec(code)) {
    if (m[5] !== undefined) found.push(m[5]);
    else if (m[2] === undefined) found.push(m[4]);
  }
  return found;
}

export interface GraphNode {
  /** The module name the firmware asks for. */
  readonly name: string;
  /** The project source it resolves to (root-relative, with extension), or null for an external module. */
  readonly file: string | null;
  /** Who imports it (module names). */
  readonly importedBy: string[];
}

export interface FirmwareGraph {
  readonly nodes: Map<string, GraphNode>;
  /** Relative imports that no manifest entry maps to a source file: "importer -> name". */
  readonly unmapped: string[];
}

/** How the graph reads sources: from disk by default; tests hand in changed sources. */
export interface SourceReader {
  exists(path: string): boolean;
  read(path: string): string;
}

export function diskReader(root: string): SourceReader {
  return { exists: (p) => existsSync(join(root, p)), read: (p) => readFileSync(join(root, p), 'utf8') };
}

function sourceFile(reader: SourceReader, path: string): string | null {
  for (const ext of ['.ts', '.js', '.mjs']) if (reader.exists(path + ext)) return path + ext;
  return null;
}

export function firmwareGraph(root: string, manifest: PlatformManifest, reader: SourceReader = diskReader(root)): FirmwareGraph {
  const nodes = new Map<string, GraphNode>();
  const unmapped: string[] = [];
  const queue: string[] = [];
  const visit = (name: string, by: string | null): void => {
    const known = nodes.get(name);
    if (known) {
      if (by !== null && !known.importedBy.includes(by)) known.importedBy.push(by);
      return;
    }
    const mapped = manifest.modules.get(name);
    const file = mapped !== undefined ? sourceFile(reader, mapped) : null;
    nodes.set(name, { name, file, importedBy: by === null ? [] : [by] });
    if (file !== null) queue.push(name);
  };
  visit(manifest.main, null);
  while (queue.length > 0) {
    const name = queue.shift() as string;
    const file = (nodes.get(name) as GraphNode).file as string;
    for (const spec of runtimeImports(reader.read(file))) {
      if (spec.startsWith('.')) {
        const moduleName = posix.normalize(posix.join(posix.dirname(file), spec)).replace(/\.(js|ts|mjs)$/, '');
        if (!manifest.modules.has(moduleName)) unmapped.push(`${name} -> ${moduleName}`);
        visit(moduleName, name);
      } else {
        visit(spec.replace(/\.js$/, ''), name);
      }
    }
  }
  return { nodes, unmapped };
}
