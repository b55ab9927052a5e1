/**
 * hosts/moddable pieces over stand-ins for the SDK modules they import (jest virtual modules, per test): the
 * ESP32 presenter's NeoPixel brightness, and the heap figure of release builds.
 */
import type { Presenter } from '../modules/agent/host.js';
import { DEFAULT_PRESENTER, type PresenterSettings } from '../modules/store/record.js';

describe('ESP32 presenter (hosts/moddable/esp32/presenter.ts): the brightness cap is applied once', () => {
  /** The SDK's NeoPixel driver as far as brightness goes: it scales every byte by its own brightness when it draws. */
  class FakeNeoPixel {
    static strips: FakeNeoPixel[] = [];
    brightness = 64; // the driver's default (modneopixel.c: 0x40)
    readonly pixels: number[];
    /** The bytes sent to the LEDs by the last update(), [r, g, b] per pixel. */
    drawn: [number, number, number][] = [];
    constructor(readonly options: { length: number; pin: number; order?: string }) {
      this.pixels = new Array<number>(options.length).fill(0);
      FakeNeoPixel.strips.push(this);
    }
    makeRGB(r: number, g: number, b: number): number {
      return (r << 16) | (g << 8) | b;
    }
    setPixel(i: number, c: number): void {
      this.pixels[i] = c;
    }
    fill(c: number): void {
      this.pixels.fill(c);
    }
    update(): void {
      const scale = (v: number) => (v * Math.max(0, Math.min(255, this.brightness))) >> 8;
      this.drawn = this.pixels.map((c) => [scale((c >> 16) & 255), scale((c >> 8) & 255), scale(c & 255)]);
    }
  }

  function makePresenter(s: PresenterSettings): Presenter {
    let mod: unknown;
    jest.isolateModules(() => {
      jest.doMock('neopixel', () => ({ __esModule: true, default: FakeNeoPixel }), { virtual: true });
      jest.doMock('pins/digital', () => ({ __esModule: true, default: { write: () => undefined } }), { virtual: true });
      jest.doMock('time', () => ({ __esModule: true, default: { ticks: 0 } }), { virtual: true });
      jest.doMock('timer', () => ({ __esModule: true, default: { repeat: () => 1, set: () => 1, clear: () => undefined } }), { virtual: true });
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      mod = require('../hosts/moddable/esp32/presenter');
    });
    return (mod as { makePresenter(s: PresenterSettings, log: (l: string) => void): Presenter }).makePresenter(s, () => undefined);
  }

  test.each([
    [32, 31],
    [255, 254],
  ])('cap %i: the brightest LED byte is %i (the driver at full brightness, 255), not a quarter of it', (cap, brightest) => {
    FakeNeoPixel.strips = [];
    const p = makePresenter({ ...DEFAULT_PRESENTER, matrixPin: 27, brightnessCap: cap });
    const strip = FakeNeoPixel.strips[0];
    expect(strip.options).toEqual({ length: 64, pin: 27, order: 'GRB' });
    expect(strip.brightness).toBe(255);
    p.showChallenge(new TextEncoder().encode('0123456789abcdef0123456789abcdef'));
    const bytes = strip.drawn.flat();
    expect(Math.max(...bytes)).toBe(brightest);
    // Every palette channel is 0 or 255: each byte is either off or at the cap (after the driver's >> 8).
    expect([...new Set(bytes)].sort((a, b) => a - b)).toEqual([0, brightest]);
    p.clearChallenge();
    expect(Math.max(...strip.drawn.flat())).toBe(0);
  });
});

describe('heap figure (hosts/moddable/heap.ts)', () => {
  function heapUsed(get: (index: number) => number | undefined): number | null {
    let mod: unknown;
    jest.isolateModules(() => {
      const names = ['XS Chunk Heap Used', 'XS Slot Heap Used'];
      jest.doMock('instrumentation', () => ({
        __esModule: true,
        default: { map: (name: string) => names.indexOf(name), get },
      }), { virtual: true });
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      mod = require('../hosts/moddable/heap');
    });
    return (mod as { heapUsed(): number | null }).heapUsed();
  }

  test('instrumented builds: chunk + slot bytes in use', () => {
    expect(heapUsed((i) => [30000, 12000][i])).toBe(42000);
  });

  test('release builds (Instrumentation.get gives undefined): null, not 0', () => {
    expect(heapUsed(() => undefined)).toBeNull();
    expect(heapUsed((i) => (i === 0 ? 30000 : undefined))).toBeNull();
  });

  test('no instrumentation at all (map throws): null', () => {
    expect(heapUsed(() => {
      throw new Error('dead strip!');
    })).toBeNull();
  });
});

describe('simulator updater (hosts/moddable/sim/updater.ts)', () => {
  /** The updater over an in-memory stand-in for the SDK's `file` module; `files` survives "restarts". */
  function boot(files: Map<string, string>): import('../modules/agent/host.js').Updater {
    class FakeFile {
      private data = '';
      constructor(private readonly path: string, write?: boolean) {
        if (!write && !files.has(path)) throw new Error('no such file');
        this.data = write ? '' : files.get(path)!;
        if (write) files.set(path, '');
      }
      read(): string {
        return this.data;
      }
      write(...items: (ArrayBuffer | string)[]): void {
        for (const i of items) this.data += typeof i === 'string' ? i : `[${i.byteLength} bytes]`;
        files.set(this.path, this.data);
      }
      close(): void {}
      static exists(path: string): boolean {
        return files.has(path);
      }
      static delete(path: string): boolean {
        return files.delete(path);
      }
    }
    let mod: unknown;
    jest.isolateModules(() => {
      jest.doMock('file', () => ({ __esModule: true, File: FakeFile }), { virtual: true });
      jest.doMock('../hosts/moddable/sim/flash', () => ({ __esModule: true, imagePath: () => '/sim/srup.bin' }));
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      mod = require('../hosts/moddable/sim/updater');
    });
    const u = (mod as { makeUpdater(): import('../modules/agent/host.js').Updater & { onRestart: () => void } }).makeUpdater();
    u.onRestart = () => undefined;
    return u;
  }

  test('no new image begins while the running one is unconfirmed; after confirm() it is normal and one can', () => {
    const files = new Map<string, string>();
    const u = boot(files);
    u.begin();
    u.write(Uint8Array.of(1, 2));
    u.finish();
    u.activate();
    const after = boot(files); // the harness's second run
    expect(after.bootState()).toBe('unconfirmed');
    expect(() => after.begin()).toThrow('the running image is pending verify: confirm it before a new update');
    expect(files.get('/sim/srup.bin.ota')).toBe('[2 bytes]'); // the activated image, untouched
    expect(after.confirm()).toBe(true);
    expect(after.bootState()).toBe('normal');
    after.begin();
    expect(files.get('/sim/srup.bin.ota')).toBe('');
  });
});
