/**
 * The ESP32 memory gate's workload (scripts/xs-heap.mjs bundles this file and runs it on test/xs/heap-host.c):
 * the device flows of the portable suite on one device, with RSA-2048 keys and the pure crypto.
 *
 *   1. boot from a provisioned `srup` partition: the flash stores over a MemoryFlash holding the image that
 *      `srup provision` writes (tools/lib/provision.ts), opened at boot as hosts/moddable/main.ts does;
 *   2. a human-moderated join, approved by the operator;
 *   3. 20 commands: actions (handled and unknown), data both ways, ID requests;
 *   4. a 1 MiB update: initiate, the image streamed through the agent's Downloader (4 KiB chunks made on the fly,
 *      never held whole) into an Updater that keeps nothing, digest checked by the agent, activate, restart
 *      (a second boot from flash), confirmation.
 *
 * What is measured, and why this way. The baseline is taken after a forced collection once everything that is
 * not the device's RAM is in place: the bundle's code and module-level objects (on the device the project's
 * modules are preloaded into flash, so their code and frozen module objects cost no RAM), the C2 engine with
 * its key, the broker, and the `srup` partition's bytes (flash on the device). Then heapMark() paints the XS
 * stack, holds it to the ESP32's size and arms the growth cap, and the device boots. The machine runs as a
 * tight growable heap (small initial sizes, small increments: XS grows only when a collection leaves too
 * little free), so its final reservation bounds the peak of live data within one growth step. The device's
 * share is reservation minus baseline, for chunks (bytes) and slots (a count, the same at either word size);
 * scripts/xs-heap.mjs turns it into 32-bit bytes. It is an upper bound of the agent's own share: the C2 engine
 * and the broker run in the same heap, and their per-message work (signing with the server's key, routing)
 * is counted with it. The C2's audit log is not kept (on Node it is in SQLite), nor are logs or events.
 *
 * Prints progress lines and, last, one line `HEAP {json}` with the counters; or `HEAP-FAIL reason`.
 */
import pems from 'srup-heap:keys';
import { parsePrivateKeyPem } from '../../crypto/keys.js';
import { pureCrypto } from '../../crypto/pure.js';
import type { RsaPrivateKey } from '../../crypto/types.js';
import { Agent } from '../../modules/agent/agent.js';
import type { AgentEvent } from '../../modules/agent/agent.js';
import type { BootState, DownloadResult, Downloader, Updater } from '../../modules/agent/host.js';
import { C2Engine } from '../../modules/c2/engine.js';
import type { C2Event } from '../../modules/c2/events.js';
import type { AuditEntry, AuditInput, Reading, ReadingInput } from '../../modules/c2/registry.js';
import { MemoryRegistry } from '../../modules/c2/memory-registry.js';
import { idTopicHex, toHex } from '../../modules/srup/bytes.js';
import { Status } from '../../modules/srup/schema.js';
import { FlashKeyStore, FlashSequenceStore } from '../../modules/store/flash-stores.js';
import { BLOCK_SIZE, MemoryFlash, SRUP_PARTITION_SIZE } from '../../modules/store/flash.js';
import { DEFAULT_PRESENTER } from '../../modules/store/record.js';
import { provisionImage } from '../../tools/lib/provision.js';
import { MemoryBroker } from '../portable/broker.js';
import { ChallengeRecorder, ManualClock } from '../portable/fakes.js';
import { DEVICE, SERVER } from '../portable/flow-world.js';
import { seededRandomBytes } from '../portable/prng.js';

declare function print(...args: unknown[]): void;
declare function gc(): void;
declare function heapMark(): void;
declare function heapStats(): HeapStats;

interface HeapStats {
  chunks: number;
  chunksReserved: number;
  slots: number;
  slotsReserved: number;
  slotBytes: number;
  stackSlots: number;
  stackPeak: number;
  stackRest: number;
  stackMark: number;
  allocated: number;
  limit: number;
}

const IMAGE_BYTES = 1024 * 1024;
/** Bytes per downloaded chunk: more than an ESP32's TCP receive window hands over at once. */
const CHUNK_BYTES = 4096;
const URL = 'http://updates.test/fw-2.0.0.bin';

class GateFailure extends Error {}

function expect(ok: boolean, what: string): void {
  if (!ok) throw new GateFailure(what);
}

/** Byte i of the update image: a fixed pattern, made again for every chunk instead of kept. */
function imageByte(i: number): number {
  return (i * 7 + (i >>> 8) + (i >>> 16)) & 0xff;
}

function imageChunk(offset: number, length: number): Uint8Array {
  const c = new Uint8Array(length);
  for (let k = 0; k < length; k++) c[k] = imageByte(offset + k);
  return c;
}

/** Serves the image at URL in CHUNK_BYTES pieces, each made when it is handed on, one promise job apart. */
class StreamingDownloader implements Downloader {
  async download(url: string, onChunk: (chunk: Uint8Array) => void): Promise<DownloadResult> {
    await Promise.resolve();
    if (url !== URL) return { ok: false, error: 'http_error', status: 404 };
    let sent = 0;
    while (sent < IMAGE_BYTES) {
      const n = Math.min(CHUNK_BYTES, IMAGE_BYTES - sent);
      try {
        onChunk(imageChunk(sent, n));
      } catch (e) {
        return { ok: false, error: 'file', message: `sink refused: ${String(e)}` };
      }
      sent += n;
      await Promise.resolve();
    }
    return { ok: true, bytes: sent };
  }
}

/** An OTA slot that keeps nothing in RAM (a device writes flash): counts bytes and checks the call order. */
class CountingUpdater implements Updater {
  written = 0;
  state: 'idle' | 'writing' | 'finished' = 'idle';
  restartRequested = false;
  boot: BootState = 'normal';

  begin(): void {
    this.written = 0;
    this.state = 'writing';
  }
  write(chunk: Uint8Array): void {
    if (this.state !== 'writing') throw new Error('write() without begin()');
    this.written += chunk.length;
  }
  finish(): void {
    if (this.state !== 'writing') throw new Error('finish() without begin()');
    this.state = 'finished';
  }
  abort(): void {
    this.state = 'idle';
  }
  activate(): void {
    if (this.state !== 'finished') throw new Error('activate() without a finished image');
    this.restartRequested = true;
  }
  bootState(): BootState {
    return this.boot;
  }
  confirm(): boolean {
    if (this.boot !== 'unconfirmed') return false;
    this.boot = 'normal';
    return true;
  }
  /** The restart after activate(): the new image runs, unconfirmed. */
  reboot(): void {
    if (this.restartRequested) {
      this.restartRequested = false;
      this.state = 'idle';
      this.boot = 'unconfirmed';
    }
  }
}

/** The C2's registry without its audit trail and data history (the C2 keeps those in SQLite, not in a device's heap). */
class NoAuditRegistry extends MemoryRegistry {
  private audits = 0;
  private readingCount = 0;
  override appendAudit(entry: AuditInput): AuditEntry {
    this.audits++;
    return { ...entry, seq: this.audits } as AuditEntry;
  }
  override appendReading(r: ReadingInput): Reading {
    this.readingCount++;
    return { ...r, seq: this.readingCount };
  }
}

const noLog = (): void => undefined;

/**
 * Fills the heap's free space with objects that stay alive to the end, so that whatever the device allocates
 * after this makes the heap grow: loading the bundle leaves free space behind (up to a large chunk that the
 * parser needed), which would otherwise hide the device's first kilobytes. Returns the counters after a
 * collection, filler included: the baseline.
 */
const filler: unknown[] = [];
function fillSlack(): HeapStats {
  for (let round = 0; round < 8; round++) {
    gc();
    const s = heapStats();
    const freeSlots = s.slotsReserved - s.slots;
    if (freeSlots > 32) {
      // An empty object is one slot; the array's items are chunk bytes, filled below.
      const objects: object[] = [];
      for (let i = 0; i < freeSlots - 32; i++) objects.push({});
      filler.push(objects);
      continue;
    }
    const freeBytes = s.chunksReserved - s.chunks;
    if (freeBytes > 256) {
      filler.push(new ArrayBuffer(freeBytes - 192));
      continue;
    }
    break;
  }
  gc();
  return heapStats();
}

async function main(): Promise<void> {
  // ---------------------------------------------------------------------------------------- not measured
  const serverKey: RsaPrivateKey = parsePrivateKeyPem(pems.server);
  const clock = new ManualClock(5_000_000);
  const broker = new MemoryBroker();
  const registry = new NoAuditRegistry();
  let challenge: Extract<C2Event, { type: 'challenge' }> | null = null;
  const engine = new C2Engine(
    {
      transport: broker.client('SRUP Client: c2'),
      registry,
      crypto: pureCrypto,
      random: seededRandomBytes(11),
      clock,
      log: noLog,
      serverId: SERVER,
      privateKey: serverKey,
    },
    {
      onEvent: (e) => {
        if (e.type === 'challenge') challenge = e;
      },
    },
  );
  await engine.start();

  // The partition as `srup provision` writes it; its bytes are flash on the device.
  const flash = new MemoryFlash(
    SRUP_PARTITION_SIZE,
    BLOCK_SIZE,
    (() => {
      const deviceKey = parsePrivateKeyPem(pems.device);
      engine.provision(DEVICE, deviceKey.publicKey);
      return provisionImage({
        deviceId: DEVICE,
        privateKey: deviceKey,
        serverId: SERVER,
        serverKey: serverKey.publicKey,
        brokerUrl: 'mqtts://broker.test:8883',
        ca: null,
        wifi: null,
        presenter: DEFAULT_PRESENTER,
      });
    })(),
  );
  // The image's digest, streamed as the server would compute it from its file.
  const digest = (() => {
    const h = pureCrypto.sha256Stream();
    for (let o = 0; o < IMAGE_BYTES; o += CHUNK_BYTES) h.update(imageChunk(o, Math.min(CHUNK_BYTES, IMAGE_BYTES - o)));
    return toHex(h.digest());
  })();

  async function settle(agent: Agent): Promise<void> {
    for (let round = 0; round < 100; round++) {
      const before = broker.log.length;
      await broker.settle();
      await engine.idle();
      await agent.idle();
      await broker.settle();
      const quiet = broker.log.length === before && !broker.busy;
      // The broker's log is a test aid: trimmed, so that it is not counted as the device's memory.
      broker.log.length = 0;
      if (quiet) return;
    }
    throw new GateFailure('the flows never settled');
  }

  async function during<T>(agent: Agent, p: Promise<T>): Promise<T> {
    let done = false;
    const q = p.then(
      (v) => ((done = true), v),
      (e: unknown) => {
        done = true;
        throw e;
      },
    );
    for (let i = 0; i < 20 && !done; i++) await settle(agent);
    if (!done) {
      q.catch(() => undefined);
      throw new GateFailure('a request never settled');
    }
    return q;
  }

  const base = fillSlack();
  print(
    `baseline (bundle, C2, partition bytes; free space filled): ${base.chunks} chunk bytes of ${base.chunksReserved}, ` +
      `${base.slots} slots of ${base.slotsReserved}`,
  );
  heapMark();

  // ---------------------------------------------------------------------------------------- the device
  const clientId = `SRUP Client: ${idTopicHex(DEVICE)}`;
  const presenter = new ChallengeRecorder();
  const downloader = new StreamingDownloader();
  const updater = new CountingUpdater();
  const received: string[] = [];
  let actionsRun = 0;
  let confirmed = 0;
  let boots = 0;

  function boot(): Agent {
    boots++;
    const agent = new Agent(
      {
        transport: broker.client(clientId),
        keys: new FlashKeyStore(flash),
        sequences: new FlashSequenceStore(flash),
        clock,
        crypto: pureCrypto,
        random: seededRandomBytes(0x5eed + boots),
        presenter,
        downloader,
        updater,
        log: noLog,
      },
      {
        firmwareName: 'srup-esp32',
        firmwareVersion: '2.0.0',
        actions: { 3: () => ((actionsRun++), true) },
        onData: (id) => {
          received.push(id);
        },
        onEvent: (e: AgentEvent) => {
          if (e.type === 'update_confirmed') confirmed++;
        },
      },
    );
    agent.start();
    return agent;
  }

  let agent = boot();
  await settle(agent);

  // Human-moderated join with the record's server.
  const outcome = agent.join('human');
  await settle(agent);
  const c = challenge as Extract<C2Event, { type: 'challenge' }> | null;
  expect(c !== null, 'the C2 saw no challenge');
  expect(presenter.current !== null, 'the device shows no challenge');
  expect(presenter.current?.blink === c?.challenge.blink, 'the device shows another challenge than the console');
  await engine.approveJoin(DEVICE);
  expect((await during(agent, outcome)) === 'joined', 'the human join did not end joined');
  presenter.shown.length = 0;

  // 20 commands.
  let commands = 0;
  for (let i = 0; i < 4; i++) {
    expect((await during(agent, engine.sendAction(DEVICE, 3))) === Status.ACTION_SUCCESS, 'action 3 not done');
    expect((await during(agent, engine.sendAction(DEVICE, 9))) === Status.ACTION_UNKNOWN, 'action 9 not unknown');
    expect((await during(agent, engine.requestId(DEVICE))) === 'srup-esp32 2.0.0', 'ID request answer');
    await during(agent, engine.sendData(DEVICE, 'setpoint', 'int32', 21 + i));
    await during(agent, agent.sendData('temp', 'int16', -300 + i));
    commands += 5;
  }
  expect(actionsRun === 4 && received.length === 4, `actions run ${actionsRun}, data received ${received.length}`);

  // The 1 MiB update, with activation, restart and confirmation.
  const staged = await during(agent, engine.initiateUpdate(DEVICE, URL, digest));
  expect(staged.state === 'staged' && staged.status === Status.UPDATE_SUCCESS, `update ${staged.state} ${staged.status}`);
  expect(updater.written === IMAGE_BYTES && updater.state === 'finished', `updater got ${updater.written} bytes`);
  const settled = engine.activateUpdate(DEVICE);
  await settle(agent);
  expect(updater.restartRequested, 'activate did not ask for a restart');
  await agent.close();
  updater.reboot();
  agent = boot();
  const done = await during(agent, settled);
  expect(done.state === 'confirmed' && done.status === Status.ACTIVATE_SUCCESS, `activation ${done.state} ${done.status}`);
  expect(confirmed === 1, 'no update_confirmed event');

  const end = heapStats();
  gc();
  const rest = heapStats();
  print(
    `HEAP ${JSON.stringify({
      base: { chunks: base.chunks, slots: base.slots, chunksReserved: base.chunksReserved, slotsReserved: base.slotsReserved },
      reserved: { chunks: end.chunksReserved, slots: end.slotsReserved },
      rest: { chunks: rest.chunks, slots: rest.slots },
      slotBytes: end.slotBytes,
      stack: { slots: end.stackSlots, peak: end.stackPeak, rest: end.stackRest, mark: end.stackMark },
      flows: { boots, commands, updateBytes: updater.written },
    })}`,
  );
}

main().catch((e: unknown) => {
  print(`HEAP-FAIL ${e instanceof GateFailure ? e.message : e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
});
