/**
 * One message, few files (the design guide: a reader follows a message from MQTT bytes to the answer it causes
 * through at most five files, with no call that climbs back up).
 *
 *   - the walk, measured: while one command is handled, every call into a port (the crypto's verify and sign,
 *     the sequence store, the application's action handler, the transport's publish) records the project files on
 *     its call stack. Together they are the walk; each stack, read from the transport up, must name no file twice
 *     (A calls B calls A is a call climbing back up);
 *   - a command handler returns what to send, as a value, and calls nothing of the agent's;
 *   - the import graph of modules/, crypto/, hosts/ and tools/ has no cycle (type imports included).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, posix, relative, sep } from 'node:path';
import { parsePrivateKeyPem, parsePublicKeyPem } from '../crypto/keys.js';
import { pureCrypto } from '../crypto/pure.js';
import type { Crypto } from '../crypto/types.js';
import { Agent } from '../modules/agent/agent.js';
import * as commands from '../modules/agent/commands.js';
import type { AgentHost } from '../modules/agent/host.js';
import { MemoryKeyStore, MemorySequenceStore } from '../modules/agent/memory.js';
import { encode } from '../modules/srup/codec.js';
import { utf8 } from '../modules/srup/bytes.js';
import type { Message, MessageOf, UnsignedOf } from '../modules/srup/schema.js';
import { sign } from '../modules/srup/session.js';
import type { Transport, TransportHandlers } from '../modules/srup/ports.js';
import { C2Engine } from '../modules/c2/engine.js';
import { MemoryRegistry } from '../modules/c2/memory-registry.js';
import { idTopicHex } from '../modules/srup/bytes.js';
import { DEV_A, SERVER_ID, deviceMessage, testKeys } from './support/c2-wire.js';
import { CollectingLog, FakeDownloader, FakeUpdater, ManualClock, RecordingPresenter, seededRandom } from './support/fakes.js';

const ROOT = join(__dirname, '..');
const KEYS = join(__dirname, 'data', 'srup-vectors', 'keys');
const pem = (f: string) => readFileSync(join(KEYS, f), 'utf8');
const devicePriv = parsePrivateKeyPem(pem('recipient-1.private.pem'));
const serverPriv = parsePrivateKeyPem(pem('signer-1.private.pem'));
const serverPub = parsePublicKeyPem(pem('signer-1.public.pem'));
const DEVICE = 0x04a0f1b2c3d4e5f6n;
const SERVER = 0x5e12d3c4b5a69788n;

// ------------------------------------------------------------------------------------------------ stacks

/** The project files on the current call stack, outermost caller first (test code and libraries left out). */
function projectStack(): string[] {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 200;
  const stack = new Error().stack ?? '';
  Error.stackTraceLimit = limit;
  const files: string[] = [];
  for (const line of stack.split('\n').slice(1)) {
    const m = /\(?([^\s()]+\.ts):\d+:\d+\)?$/.exec(line.trim());
    if (m === null) continue;
    const file = relative(ROOT, m[1]).split(sep).join('/');
    if (!/^(modules|crypto|hosts|tools)\//.test(file)) continue;
    if (files[files.length - 1] !== file) files.push(file);
  }
  return files.reverse();
}

/** Records the project files on the stack at every port call made while `run` handles one message. */
class WalkRecorder {
  readonly stacks: { port: string; files: string[] }[] = [];
  record(port: string): void {
    this.stacks.push({ port, files: projectStack() });
  }
  /** Every file seen, in the order first seen. */
  files(): string[] {
    const seen: string[] = [];
    for (const s of this.stacks) for (const f of s.files) if (!seen.includes(f)) seen.push(f);
    return seen;
  }
  /** Stacks on which a file appears twice with another in between: a call that climbed back up. */
  climbs(): string[] {
    return this.stacks.filter((s) => new Set(s.files).size !== s.files.length).map((s) => `${s.port}: ${s.files.join(' -> ')}`);
  }
}

/** A transport whose messages the test delivers by hand; publish resolves at once (PUBACK). */
class HandTransport implements Transport {
  handlers: TransportHandlers | null = null;
  readonly published: { topic: string; payload: Uint8Array }[] = [];
  isConnected = false;
  constructor(private readonly walk: WalkRecorder) {}
  listen(h: TransportHandlers): void {
    this.handlers = h;
  }
  start(): void {
    this.isConnected = true;
    this.handlers?.connected(false);
  }
  publish(topic: string, payload: Uint8Array): Promise<void> {
    this.walk.record('transport.publish');
    this.published.push({ topic, payload });
    return Promise.resolve();
  }
  subscribe(): Promise<void> {
    return Promise.resolve();
  }
  unsubscribe(): Promise<void> {
    return Promise.resolve();
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

function recordingCrypto(walk: WalkRecorder): Crypto {
  return {
    ...pureCrypto,
    verify: (k, m, s) => {
      walk.record('crypto.verify');
      return pureCrypto.verify(k, m, s);
    },
    sign: (k, m) => {
      walk.record('crypto.sign');
      return pureCrypto.sign(k, m);
    },
  };
}

class RecordingKeys extends MemoryKeyStore {
  walk: WalkRecorder | null = null;
  override peerKey(id: bigint): ReturnType<MemoryKeyStore['peerKey']> {
    this.walk?.record('keys.peerKey');
    return super.peerKey(id);
  }
}

class RecordingSequences extends MemorySequenceStore {
  walk: WalkRecorder | null = null;
  override lastAccepted(peer: bigint): bigint {
    this.walk?.record('sequences.lastAccepted');
    return super.lastAccepted(peer);
  }
  override setLastAccepted(...a: Parameters<MemorySequenceStore['setLastAccepted']>): void {
    this.walk?.record('sequences.setLastAccepted');
    super.setLastAccepted(...a);
  }
  override setLastSent(...a: Parameters<MemorySequenceStore['setLastSent']>): void {
    this.walk?.record('sequences.setLastSent');
    super.setLastSent(...a);
  }
}

function serverMessage(type: 'action', seq: bigint, fields: MessageOf<'action'>['fields']): Uint8Array {
  const unsigned = { type, sequenceId: seq, senderId: SERVER, token: utf8(`t-${seq}`), fields } as UnsignedOf<'action'>;
  return encode(sign(pureCrypto, serverPriv, unsigned) as Message);
}

describe('the device: one action from MQTT bytes to its answer', () => {
  test('crosses five files (host ports aside), each stack read from the transport up names no file twice', async () => {
    const walk = new WalkRecorder();
    const transport = new HandTransport(walk);
    const sequences = new RecordingSequences();
    const keys = new RecordingKeys({ deviceId: DEVICE, privateKey: devicePriv, serverId: SERVER, peers: [[SERVER, serverPub]] });
    const host: AgentHost = {
      transport,
      keys,
      sequences,
      crypto: recordingCrypto(walk),
      clock: new ManualClock(),
      random: seededRandom(3),
      presenter: new RecordingPresenter(),
      downloader: new FakeDownloader(),
      updater: new FakeUpdater(),
      log: new CollectingLog().log,
    };
    const agent = new Agent(host, {
      firmwareName: 'walk',
      firmwareVersion: '1',
      onEvent: (e) => {
        if (e.type === 'action') walk.record('listener');
      },
      actions: {
        7: () => {
          walk.record('action handler');
          return true;
        },
      },
    });
    agent.start();
    await agent.idle();
    walk.stacks.length = 0;
    sequences.walk = walk;
    keys.walk = walk;

    transport.handlers?.message('SRUP/4a0f1b2c3d4e5f6', serverMessage('action', 1n, { actionId: 7 }));
    await agent.idle();

    expect(transport.published).toHaveLength(1);
    expect(walk.stacks.map((s) => s.port)).toEqual([
      'keys.peerKey',
      'sequences.lastAccepted',
      'crypto.verify',
      'sequences.setLastAccepted',
      'action handler',
      'listener',
      'sequences.lastAccepted',
      'crypto.sign',
      'sequences.setLastSent',
      'transport.publish',
    ]);
    // The agent drives; the shared steps (modules/srup/session.ts, the only file of the walk that calls the codec
    // and the crypto), the command handler and the outbox return to it and call nothing back; the event goes to
    // the application's listeners through context.ts.
    expect(walk.files()).toEqual([
      'modules/agent/agent.ts',
      'modules/srup/session.ts',
      'modules/agent/commands.ts',
      'modules/agent/context.ts',
      'modules/agent/outbox.ts',
    ]);
    expect(walk.stacks.find((s) => s.port === 'transport.publish')?.files).toEqual([
      'modules/agent/agent.ts',
      'modules/agent/outbox.ts',
    ]);
    expect(walk.climbs()).toEqual([]);
    await agent.close();
  });

  test('a command handler returns its event and answer as values, and is given no way to send', async () => {
    const host = { log: new CollectingLog().log, keys: null } as unknown as AgentHost;
    const m = {
      type: 'action',
      sequenceId: 9n,
      senderId: SERVER,
      token: utf8('tok'),
      fields: { actionId: 3 },
      signature: new Uint8Array(0),
    } as MessageOf<'action'>;
    const handled = await commands.onAction({ host, options: { firmwareName: 'a', firmwareVersion: '1', actions: { 3: () => false } } }, m);
    expect(handled).toEqual({
      event: { type: 'action', actionId: 3, status: 0x2f },
      reply: { type: 'response', peer: SERVER, token: utf8('tok'), fields: { status: 0x2f }, answering: 9n },
    });
    const id = commands.onIdRequest({ host, options: { firmwareName: 'fw', firmwareVersion: '2.0' } }, { ...m, type: 'id_request', fields: {} } as MessageOf<'id_request'>);
    expect(id.reply).toEqual({
      type: 'data',
      peer: SERVER,
      token: utf8('tok'),
      fields: { dataId: utf8('IDENTIFICATION_RESPONSE'), data: utf8('fw 2.0') },
      answering: 9n,
    });
  });
});

// ------------------------------------------------------------------------------------------------ imports

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(ROOT, dir))) {
    const p = posix.join(dir, e);
    if (statSync(join(ROOT, p)).isDirectory()) out.push(...sources(p));
    else if (p.endsWith('.ts') && !p.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** Relative imports of every source file (type imports included), as project paths. */
function importGraph(dirs: string[]): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  const re = /^\s*(?:import|export)\s[^'";]*?from\s+['"](\.{1,2}\/[^'"]+)['"]|^\s*import\s+['"](\.{1,2}\/[^'"]+)['"]/gm;
  for (const file of dirs.flatMap(sources)) {
    const text = readFileSync(join(ROOT, file), 'utf8');
    const deps: string[] = [];
    for (const m of text.matchAll(re)) {
      deps.push(posix.normalize(posix.join(posix.dirname(file), m[1] ?? m[2])).replace(/\.js$/, '.ts'));
    }
    graph.set(file, deps);
  }
  return graph;
}

/** Each import cycle once, as the files around it. */
function cycles(graph: Map<string, string[]>): string[][] {
  const found: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (f: string): void => {
    state.set(f, 'open');
    path.push(f);
    for (const d of graph.get(f) ?? []) {
      if (!graph.has(d)) continue;
      if (state.get(d) === 'open') found.push(path.slice(path.indexOf(d)));
      else if (state.get(d) === undefined) visit(d);
    }
    path.pop();
    state.set(f, 'done');
  };
  for (const f of [...graph.keys()].sort()) if (!state.has(f)) visit(f);
  return found;
}

describe('imports go one way', () => {
  test('no import cycle in modules/, crypto/, hosts/ or tools/ (type imports count)', () => {
    const graph = importGraph(['modules', 'crypto', 'hosts', 'tools']);
    expect(graph.get('modules/agent/agent.ts')).toContain('modules/agent/commands.ts');
    expect(cycles(graph)).toEqual([]);
  });

  test('the check finds a cycle: a command handler that imports the agent', () => {
    const graph = importGraph(['modules']);
    graph.set('modules/agent/commands.ts', [...(graph.get('modules/agent/commands.ts') ?? []), 'modules/agent/agent.ts']);
    expect(cycles(graph)).toEqual([['modules/agent/agent.ts', 'modules/agent/commands.ts']]);
  });

  test('the files the agent and the engine drive never import them', () => {
    const graph = importGraph(['modules']);
    for (const [dir, driver] of [
      ['modules/agent/', 'modules/agent/agent.ts'],
      ['modules/c2/', 'modules/c2/engine.ts'],
    ]) {
      const importers = [...graph].filter(([f, deps]) => f.startsWith(dir) && deps.includes(driver)).map(([f]) => f);
      expect(importers).toEqual(driver === 'modules/c2/engine.ts' ? ['modules/c2/index.ts'] : []);
    }
  });
});

// ------------------------------------------------------------------------------------------------ the C2

describe('the C2: a simple join from MQTT bytes to its answer', () => {
  test('crosses five files (host ports aside), and no call climbs back into the engine', async () => {
    const keys = testKeys();
    const walk = new WalkRecorder();
    const transport = new HandTransport(walk);
    const registry = new MemoryRegistry();
    registry.addDevice(DEV_A, keys.a.publicKey, 0);
    const recorded = new Set(['device', 'setLastAccepted', 'updateDevice', 'markSeen', 'appendAudit', 'recordAudit', 'allocateSequence']);
    const port = new Proxy(registry, {
      get(target, name, receiver) {
        const v = Reflect.get(target, name, receiver) as unknown;
        if (typeof v !== 'function') return v;
        return (...args: unknown[]) => {
          if (recorded.has(String(name))) walk.record(`registry.${String(name)}`);
          return (v as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    const engine = new C2Engine({
      transport,
      registry: port,
      crypto: recordingCrypto(walk),
      random: seededRandom(5),
      clock: new ManualClock(1_000_000),
      log: new CollectingLog().log,
      serverId: SERVER_ID,
      privateKey: keys.server,
    });
    await engine.start();
    walk.stacks.length = 0;
    const topic = `SRUP/servers/${idTopicHex(SERVER_ID)}/${idTopicHex(DEV_A)}`;
    transport.handlers?.message(topic, deviceMessage(keys.a, 'join_request', DEV_A, 1n, 'j', {}));
    await engine.idle();
    expect(transport.published).toHaveLength(1);
    // The registry is a port, as the transport: its group() runs the caller's writes in one transaction and calls
    // back the function it was given, so its own frames are left out, as the transport's are.
    const stacks = walk.stacks.map((s) => ({ port: s.port, files: s.files.filter((f) => f !== 'modules/c2/memory-registry.ts') }));
    const collapsed = stacks.map((s) => `${s.port}: ${s.files.filter((f, i) => f !== s.files[i - 1]).join(' -> ')}`);
    expect(collapsed).toEqual([
      'registry.device: modules/c2/engine.ts -> modules/c2/receive.ts',
      'crypto.verify: modules/c2/engine.ts -> modules/c2/receive.ts -> modules/srup/session.ts',
      'registry.setLastAccepted: modules/c2/engine.ts -> modules/c2/receive.ts',
      'registry.markSeen: modules/c2/engine.ts',
      'registry.recordAudit: modules/c2/engine.ts',
      'registry.updateDevice: modules/c2/engine.ts -> modules/c2/join.ts -> modules/c2/core.ts',
      'registry.device: modules/c2/join.ts',
      'registry.device: modules/c2/join.ts',
      'registry.device: modules/c2/join.ts',
      'registry.updateDevice: modules/c2/join.ts -> modules/c2/core.ts',
      'registry.allocateSequence: modules/c2/join.ts -> modules/c2/core.ts',
      'crypto.sign: modules/c2/join.ts -> modules/c2/core.ts -> modules/srup/session.ts',
      'registry.recordAudit: modules/c2/join.ts -> modules/c2/core.ts',
      'transport.publish: modules/c2/join.ts -> modules/c2/core.ts',
    ]);
    for (const line of collapsed) {
      const files = line.split(': ')[1].split(' -> ');
      expect([line, new Set(files).size]).toEqual([line, files.length]);
    }
    engine.stop();
  });
});
