/**
 * Findings of the firmware review (crypto/, modules/store, hosts/moddable, provisioning), each pinned by the
 * behaviour a user would notice. The hosts/moddable code runs here against small stand-ins for the SDK
 * modules it imports (jest virtual modules), so only its own decisions are under test.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { parseCommandArgs } from '../tools/lib/cli.js';
import { provisionCommand } from '../tools/commands/provision.js';
import { parsePrivateKeyPem, parsePublicKeyPem, privateKeyToDer, publicKeyToDer } from '../crypto/keys.js';
import { CounterLog } from '../modules/store/counter-log.js';
import { crc32 } from '../modules/store/crc32.js';
import { FlashKeyStore, FlashSequenceStore, partitionImage } from '../modules/store/flash-stores.js';
import { DEFAULT_LAYOUT, MemoryFlash, SRUP_PARTITION_SIZE } from '../modules/store/flash.js';
import { DEFAULT_PRESENTER, RecordSlots, encodeRecordSlot, type DeviceRecord } from '../modules/store/record.js';

const ROOT = join(__dirname, '..');
const KEYS = join(__dirname, 'data', 'srup-vectors', 'keys');

async function provision(argv: string[]): Promise<number> {
  const sink = new Writable({ write: (_c, _e, cb) => cb() });
  return provisionCommand.run(parseCommandArgs(provisionCommand, argv), { stdout: sink, stderr: sink, stdin: process.stdin });
}

describe('srup provision: files holding the private key', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'srup-review-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const args = (): string[] => [
    '--out', dir, '--server-id', '1', '--server-key', join(KEYS, 'signer-2.public.pem'),
    '--broker', 'mqtt://127.0.0.1:1883', '--partitions', join(ROOT, 'partitions.csv'),
  ];
  const mode = (f: string): number => statSync(join(dir, f)).mode & 0o777;

  test('fresh images are readable by their owner only', async () => {
    expect(await provision(args())).toBe(0);
    expect(mode('srup-partition.bin')).toBe(0o600);
    expect(mode('srup-sim.bin')).toBe(0o600);
  });

  test('--force over world-readable files leaves the new images readable by their owner only', async () => {
    for (const f of ['srup-partition.bin', 'srup-sim.bin']) {
      writeFileSync(join(dir, f), 'old');
      chmodSync(join(dir, f), 0o644);
    }
    expect(await provision([...args(), '--force'])).toBe(0);
    expect(mode('srup-partition.bin')).toBe(0o600);
    expect(mode('srup-sim.bin')).toBe(0o600);
  });
});

// ------------------------------------------------------------------------------------------------ ESP32 updater

interface FakeEsp {
  prefs: Map<string, unknown>;
  running: string;
  restarts: number;
  completeFails: boolean;
}

/** hosts/moddable/esp32/updater.ts over stand-ins for `ota`, `preference` and `mc/ffi`. */
function loadUpdater(esp: FakeEsp): { makeUpdater(): import('../modules/agent/host.js').Updater } {
  let mod: unknown;
  jest.isolateModules(() => {
    jest.doMock('ota', () => ({
      __esModule: true,
      default: class {
        write(): void {}
        cancel(): void {}
        complete(): void {
          if (esp.completeFails) throw new Error('end failed');
        }
      },
    }), { virtual: true });
    jest.doMock('preference', () => ({
      __esModule: true,
      default: {
        get: (d: string, k: string) => esp.prefs.get(`${d}/${k}`),
        set: (d: string, k: string, v: unknown) => void esp.prefs.set(`${d}/${k}`, v),
        delete: (d: string, k: string) => void esp.prefs.delete(`${d}/${k}`),
      },
    }), { virtual: true });
    jest.doMock('mc/ffi', () => ({
      __esModule: true,
      default: class {
        esp_restart(): void {
          esp.restarts++;
        }
        esp_ota_mark_app_valid_cancel_rollback(): number {
          return 0;
        }
        esp_app_get_elf_sha256(dst: ArrayBuffer, size: number): number {
          const u = new Uint8Array(dst);
          const n = Math.min(esp.running.length, size - 1);
          for (let i = 0; i < n; i++) u[i] = esp.running.charCodeAt(i);
          u[n] = 0;
          return n + 1;
        }
      },
    }), { virtual: true });
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    mod = require('../hosts/moddable/esp32/updater');
  });
  return mod as { makeUpdater(): import('../modules/agent/host.js').Updater };
}

describe('ESP32 updater (hosts/moddable/esp32/updater.ts)', () => {
  test('an activation that completes restarts, and the next boot of the new image is unconfirmed', () => {
    const esp: FakeEsp = { prefs: new Map(), running: 'aaaa', restarts: 0, completeFails: false };
    const u = loadUpdater(esp).makeUpdater();
    expect(u.bootState()).toBe('normal');
    u.begin();
    u.write(Uint8Array.of(1, 2, 3));
    u.finish();
    u.activate();
    expect(esp.restarts).toBe(1);
    esp.running = 'bbbb';
    expect(loadUpdater(esp).makeUpdater().bootState()).toBe('unconfirmed');
  });

  test('no OTA begins while the running image is pending verify; once confirmed it is normal and one can', () => {
    const esp: FakeEsp = { prefs: new Map(), running: 'aaaa', restarts: 0, completeFails: false };
    const u = loadUpdater(esp).makeUpdater();
    u.begin();
    u.write(Uint8Array.of(1));
    u.finish();
    u.activate();
    esp.running = 'bbbb';
    const booted = loadUpdater(esp).makeUpdater();
    expect(booted.bootState()).toBe('unconfirmed');
    expect(() => booted.begin()).toThrow('the running image is pending verify: confirm it before a new update');
    expect(esp.prefs.get('srup/activatedFrom')).toBe('aaaa');
    expect(booted.confirm()).toBe(true);
    expect(booted.bootState()).toBe('normal');
    expect(esp.prefs.has('srup/activatedFrom')).toBe(false);
    expect(() => booted.begin()).not.toThrow();
  });

  test('an image the bootloader refuses (OTA complete fails) does not make the next boot report a rollback', () => {
    const esp: FakeEsp = { prefs: new Map(), running: 'aaaa', restarts: 0, completeFails: true };
    const u = loadUpdater(esp).makeUpdater();
    u.begin();
    u.write(Uint8Array.of(1, 2, 3));
    u.finish();
    expect(() => u.activate()).toThrow('end failed');
    expect(esp.restarts).toBe(0);
    // Some later, unrelated restart of the same (old) image: nothing was activated, nothing rolled back.
    expect(loadUpdater(esp).makeUpdater().bootState()).toBe('normal');
  });
});

// ------------------------------------------------------------------------------------------------ challenge presenter

describe('challenge presenter (hosts/moddable/presenter-common.ts)', () => {
  /**
   * On the ESP32, Time.ticks is the FreeRTOS millisecond tick count (u32) handed to JS as an int32: after
   * 2^31 ms (24.8 days up) it jumps from 2147483647 to -2147483648 and counts on from there.
   */
  test('the blink keeps its pace, without an exception, while Time.ticks wraps through 2^31', () => {
    const clock = { ticks: 0x7fffffff - 100 };
    let tick: (() => void) | null = null;
    let mod: unknown;
    jest.isolateModules(() => {
      jest.doMock('time', () => ({ __esModule: true, default: { get ticks() { return clock.ticks; } } }), { virtual: true });
      jest.doMock('timer', () => ({
        __esModule: true,
        default: {
          repeat: (fn: () => void) => ((tick = fn), 1),
          clear: () => undefined,
        },
      }), { virtual: true });
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      mod = require('../hosts/moddable/presenter-common');
    });
    // Typed here: the hosts/moddable sources are type-checked by their own tsconfig, with the SDK's typings.
    const { ChallengePresenter } = mod as {
      ChallengePresenter: new (out: {
        led: ((on: boolean) => void) | null;
        grid: ((rgb: Uint8Array | null) => void) | null;
        log: (line: string) => void;
      }) => { showChallenge(secret: Uint8Array): void; clearChallenge(): void };
    };
    const led: boolean[] = [];
    const p = new ChallengePresenter({ led: (on: boolean) => void led.push(on), grid: null, log: () => undefined });
    // Secret "1b…": the first digit is 1, so one flash (0-250 ms on), then 1000 ms dark.
    p.showChallenge(new TextEncoder().encode('1b' + '0'.repeat(30)));
    expect(tick).not.toBeNull();
    const at = (elapsed: number): void => {
      clock.ticks = ((0x7fffffff - 100 + elapsed) << 0) | 0; // the int32 the SDK hands over
      tick!();
    };
    at(10);
    expect(led[led.length - 1]).toBe(true);
    at(150); // across the wrap: 50 ms after it
    expect(led[led.length - 1]).toBe(true);
    at(300); // the flash is over
    expect(led[led.length - 1]).toBe(false);
    p.clearChallenge();
  });
});

describe('clock (hosts/moddable/clock.ts)', () => {
  test('now() keeps counting up while Time.ticks wraps through 2^31 and 2^32', () => {
    const clock = { ticks: 0 };
    let mod: unknown;
    jest.isolateModules(() => {
      jest.doMock('time', () => ({ __esModule: true, default: { get ticks() { return clock.ticks; } } }), { virtual: true });
      jest.doMock('timer', () => ({ __esModule: true, default: { set: () => 1, clear: () => undefined } }), { virtual: true });
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      mod = require('../hosts/moddable/clock');
    });
    const { moddableClock } = mod as { moddableClock: { now(): number } };
    const seen: number[] = [];
    for (const u32 of [5, 0x7fffff00, 0x80000010, 0xffffff00, 0x00000020, 0x7fffffff]) {
      clock.ticks = u32 | 0; // the int32 the SDK hands over
      seen.push(moddableClock.now());
    }
    expect(seen).toEqual([5, 0x7fffff00, 0x80000010, 0xffffff00, 0x100000020, 0x17fffffff]);
  });
});

// ------------------------------------------------------------------------------------------------ newer formats

/**
 * A partition last written by a firmware with a later format version (an OTA update that the bootloader then
 * rolled back, say). Reading on as if the newer slot or block were not there would bring back an older record
 * (a server the device has since left) or older replay counters (messages it has since accepted would be
 * accepted again), and the next write would destroy the newer data. The device must refuse instead.
 */
describe('a srup partition written in a later format version', () => {
  const device = parsePrivateKeyPem(readFileSync(join(KEYS, 'signer-1.private.pem'), 'utf8'));
  const server = parsePublicKeyPem(readFileSync(join(KEYS, 'signer-2.public.pem'), 'utf8'));
  const record = (serverId: bigint | null): DeviceRecord => ({
    deviceId: 0x4a0f3b2c1d0e4f56n,
    privateKey: privateKeyToDer(device),
    serverId,
    peers: serverId === null ? [] : [{ id: serverId, der: publicKeyToDer(server) }],
    brokerUrl: 'mqtts://broker.example:8883',
    ca: null,
    wifi: null,
    presenter: DEFAULT_PRESENTER,
  });
  const putU32 = (b: Uint8Array, o: number, v: number): void => {
    b.set([v & 255, (v >>> 8) & 255, (v >>> 16) & 255, v >>> 24], o);
  };

  test('record: a newer-version record in the newest slot is neither ignored nor overwritten', () => {
    const f = new MemoryFlash(SRUP_PARTITION_SIZE, 4096, partitionImage(record(0x5e7e7a1f00c0ffeen), SRUP_PARTITION_SIZE));
    // Slot B, generation 2, as a version 2 firmware would write it after leaving its server.
    const slot = encodeRecordSlot(record(null), 2, 4096);
    slot[4] = 2;
    putU32(slot, 28, crc32(slot, 0, 28));
    f.write(4096, slot);
    const before = f.bytes.slice();
    expect(() => new FlashKeyStore(f)).toThrow(expect.objectContaining({ reason: 'unsupported_version' }));
    expect(() => new RecordSlots(f, DEFAULT_LAYOUT).save(record(7n))).toThrow(expect.objectContaining({ reason: 'unsupported_version' }));
    expect(f.bytes).toEqual(before);
  });

  test('counter log: a newer-version block is neither ignored nor overwritten', () => {
    const f = new MemoryFlash(SRUP_PARTITION_SIZE);
    const s = new FlashSequenceStore(f);
    s.setLastAccepted(5n, 10n); // block 2, epoch 1
    // Block 3, epoch 2: a version 3 firmware's log, after it accepted message 20 (its entries are its own business).
    const h = new Uint8Array(16);
    h.set([0x53, 0x52, 0x43, 0x4c, 3]);
    putU32(h, 8, 2);
    putU32(h, 12, crc32(h, 0, 12));
    f.write(3 * 4096, h);
    f.write(3 * 4096 + 16, Uint8Array.of(0x01, 0, 4, 0, 1, 2, 3, 4));
    const before = f.bytes.slice();
    expect(() => new FlashSequenceStore(f)).toThrow(expect.objectContaining({ reason: 'unsupported_version' }));
    expect(() => new CounterLog(f, DEFAULT_LAYOUT)).toThrow(expect.objectContaining({ reason: 'unsupported_version' }));
    expect(f.bytes).toEqual(before);
  });

  test('a header whose version byte is damaged (CRC wrong) is still just an invalid slot or block', () => {
    const f = new MemoryFlash(SRUP_PARTITION_SIZE, 4096, partitionImage(record(0x5e7e7a1f00c0ffeen), SRUP_PARTITION_SIZE));
    const s = new FlashSequenceStore(f);
    s.setLastAccepted(5n, 10n);
    const keys = new FlashKeyStore(f);
    keys.setServerId(null); // slot B, generation 2
    f.bytes[4096 + 4] = 0x05; // as a torn or failing write might leave it
    f.bytes[2 * 4096 + 4] = 0x05;
    expect(new FlashKeyStore(f).serverId()).toBe(0x5e7e7a1f00c0ffeen);
    expect(new FlashSequenceStore(f).lastAccepted(5n)).toBe(0n);
  });
});

// ------------------------------------------------------------------------------------------------ downloader

describe('HTTP downloader (hosts/moddable/downloader.ts)', () => {
  type Req = {
    onHeaders?: (this: Body, status: number, headers: Map<string, string>) => void;
    onReadable?: (this: Body, count: number) => void;
    onDone?: (this: Body, error?: unknown) => void;
  };

  /** The request as the SDK's HTTP client gives it: read(into) fills `into` from the body (byte i is i & 0xff). */
  interface Body {
    read(into: Uint8Array): number | undefined;
  }
  function body(): Body & { sent: number } {
    const b = {
      sent: 0,
      read(into: Uint8Array): number {
        for (let i = 0; i < into.length; i++) into[i] = (b.sent + i) & 0xff;
        b.sent += into.length;
        return into.length;
      },
    };
    return b;
  }

  /** Loads the downloader over a fake `timer` (run by hand) and a fake ECMA-419 HTTP client that never answers by itself. */
  function setup(): {
    download(url: string, onChunk: (c: Uint8Array) => void, control?: { stop: (() => void) | null }): Promise<unknown>;
    advance(ms: number): void;
    request(): Req;
    requests(): number;
    closed(): number;
    pendingTimers(): number;
  } {
    let now = 0;
    let nextId = 1;
    const timers = new Map<number, { at: number; fn: () => void }>();
    let req: Req | null = null;
    let requests = 0;
    let closes = 0;
    let mod: unknown;
    jest.isolateModules(() => {
      jest.doMock('timer', () => ({
        __esModule: true,
        default: {
          set: (fn: () => void, ms = 0) => {
            const id = nextId++;
            timers.set(id, { at: now + ms, fn });
            return id;
          },
          clear: (id: number | undefined) => void (id !== undefined && timers.delete(id)),
        },
      }), { virtual: true });
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      mod = require('../hosts/moddable/downloader');
    });
    class FakeClient {
      request(r: Req): object {
        req = r;
        requests++;
        return {};
      }
      close(): void {
        closes++;
      }
    }
    (globalThis as unknown as { device: unknown }).device = { network: { http: { io: FakeClient }, https: { io: FakeClient } } };
    const { HttpDownloader } = mod as {
      HttpDownloader: new () => { download(url: string, onChunk: (c: Uint8Array) => void, control?: { stop: (() => void) | null }): Promise<unknown> };
    };
    const d = new HttpDownloader();
    return {
      download: (url, onChunk, control) => d.download(url, onChunk, control),
      advance(ms: number): void {
        const end = now + ms;
        for (;;) {
          let next: [number, { at: number; fn: () => void }] | null = null;
          for (const e of timers) if (e[1].at <= end && (next === null || e[1].at < next[1].at)) next = e;
          if (next === null) break;
          timers.delete(next[0]);
          now = next[1].at;
          next[1].fn();
        }
        now = end;
      },
      request: () => req!,
      requests: () => requests,
      closed: () => closes,
      pendingTimers: () => timers.size,
    };
  }
  afterEach(() => {
    delete (globalThis as unknown as { device?: unknown }).device;
  });

  test('a server that accepts the connection but never answers does not hold the download for ever', async () => {
    const t = setup();
    let result: unknown = null;
    void t.download('http://files.example/fw.bin', () => undefined).then((r) => (result = r));
    t.advance(10 * 60 * 1000);
    await Promise.resolve();
    expect(result).toMatchObject({ ok: false, error: 'unreachable' });
    expect(t.closed()).toBe(1);
  });

  test('a body that stops arriving ends the download with error file; a steady one keeps it going', async () => {
    const t = setup();
    let result: unknown = null;
    const got: number[] = [];
    void t.download('http://files.example/fw.bin', (c) => void got.push(c.length)).then((r) => (result = r));
    const r = t.request();
    const self = body();
    r.onHeaders!.call(self, 200, new Map());
    for (let i = 0; i < 30; i++) {
      t.advance(20 * 1000); // slow but steady: 4 KiB every 20 s
      r.onReadable!.call(self, 4096);
    }
    await Promise.resolve();
    expect(result).toBeNull();
    expect(got.reduce((a, b) => a + b, 0)).toBe(30 * 4096);
    t.advance(60 * 1000);
    await Promise.resolve();
    expect(result).toMatchObject({ ok: false, error: 'file', message: 'stalled: 0 bytes in 30000 ms' });
    expect(t.closed()).toBe(1);
  });

  test('a server that drips a byte every 2 s is cut off after one window (30 s), not after an hour', async () => {
    const t = setup();
    let result: unknown = null;
    void t.download('http://files.example/fw.bin', () => undefined).then((r) => (result = r));
    const r = t.request();
    const self = body();
    r.onHeaders!.call(self, 200, new Map());
    for (let i = 0; i < 14; i++) {
      t.advance(2000);
      r.onReadable!.call(self, 1);
    }
    await Promise.resolve();
    expect(result).toBeNull(); // 28 s: still inside the first window
    t.advance(2000);
    await Promise.resolve();
    expect(result).toEqual({ ok: false, error: 'file', message: 'stalled: 14 bytes in 30000 ms' });
    expect(t.closed()).toBe(1);
  });

  test('a redirect is not followed (no other scheme, no private address): an HTTP error with its status, one request', async () => {
    for (const status of [301, 302, 307, 308]) {
      const t = setup();
      let result: unknown = null;
      const got: number[] = [];
      void t.download('https://files.example/fw.bin', (c) => void got.push(c.length)).then((r) => (result = r));
      t.request().onHeaders!.call(body(), status, new Map([['location', 'http://127.0.0.1/fw.bin']]));
      await Promise.resolve();
      expect(result).toEqual({ ok: false, error: 'http_error', status });
      expect([t.requests(), t.closed(), got.length]).toEqual([1, 1, 0]);
    }
  });

  test('control.stop() ends a running download at once: connection closed, error aborted, nothing more written', async () => {
    const t = setup();
    let result: unknown = null;
    const got: number[] = [];
    const control: { stop: (() => void) | null } = { stop: null };
    void t.download('http://files.example/fw.bin', (c) => void got.push(c.length), control).then((r) => (result = r));
    const r = t.request();
    const self = body();
    r.onHeaders!.call(self, 200, new Map());
    r.onReadable!.call(self, 100);
    expect(typeof control.stop).toBe('function');
    control.stop!();
    await Promise.resolve();
    expect(result).toEqual({ ok: false, error: 'aborted' });
    expect(t.closed()).toBe(1);
    expect(control.stop).toBeNull();
    r.onReadable!.call(self, 100); // late data from the closed connection
    expect(got).toEqual([100]);
    expect(t.pendingTimers()).toBe(0);
  });

  test('the body goes on in pieces of at most READ_BYTES, views of one reused buffer (no copy of each TLS record), in order', async () => {
    const t = setup();
    let result: unknown = null;
    const pieces: Uint8Array[] = [];
    let ok = true;
    let at = 0;
    void t
      .download('https://files.example/fw.bin', (c) => {
        pieces.push(c);
        for (let i = 0; i < c.length; i++) if (c[i] !== ((at + i) & 0xff)) ok = false;
        at += c.length;
      })
      .then((r) => (result = r));
    const r = t.request();
    const self = body();
    r.onHeaders!.call(self, 200, new Map());
    r.onReadable!.call(self, 4096); // one 4 KiB TLS record
    r.onReadable!.call(self, 1500);
    r.onDone!.call(self);
    await Promise.resolve();
    expect(result).toEqual({ ok: true, bytes: 5596 });
    expect(ok).toBe(true);
    expect(pieces.map((p) => p.length)).toEqual([1024, 1024, 1024, 1024, 1024, 476]);
    expect(new Set(pieces.map((p) => p.buffer)).size).toBe(1);
    expect(pieces[0].buffer.byteLength).toBe(1024);
  });
});
