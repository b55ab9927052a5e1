/**
 * Fakes of the agent's host interfaces (modules/agent/host.ts) that run on any engine, for the flow cases:
 *
 *   ManualClock        timers that fire only in advance(ms)
 *   CollectingLog      collects log lines; rejections() lists the receive pipeline's reasons
 *   FakeDownloader     serves byte arrays by URL in chunks, one promise job per chunk
 *   FakeUpdater        two image slots; activate() records the restart; reboot() boots the activated image
 *   ChallengeRecorder  a presenter that draws what the device would show (grid, LED map, blink code)
 *   seededRandom       reproducible RandomBytes (NOT cryptographic)
 */
import type {
  BootState,
  Clock,
  DownloadResult,
  Downloader,
  Log,
  LogLevel,
  Presenter,
  Updater,
} from '../../modules/agent/host.js';
import type { RandomBytes } from '../../crypto/types.js';
import { blinkCode, challengeGrid, gridRgb } from '../../modules/challenge/index.js';
import { capBrightness, pixelMap, type MatrixLayout } from '../../modules/matrix/layout.js';
import { Prng } from './prng.js';

export class ManualClock implements Clock {
  private t: number;
  private nextId = 1;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();

  constructor(start = 0) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.timers.set(id, { at: this.t + Math.max(0, ms), fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  get pending(): number {
    return this.timers.size;
  }

  /** Moves time forward, firing due timers in time order (ties in creation order). */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let best: [number, { at: number; fn: () => void }] | null = null;
      for (const e of this.timers) if (e[1].at <= end && (best === null || e[1].at < best[1].at)) best = e;
      if (best === null) break;
      this.timers.delete(best[0]);
      this.t = best[1].at;
      best[1].fn();
    }
    this.t = end;
  }
}

export interface LogLine {
  readonly level: LogLevel;
  readonly event: string;
  readonly detail: Record<string, string | number | boolean | null>;
}

export class CollectingLog {
  readonly lines: LogLine[] = [];
  readonly log: Log = (level, event, detail = {}) => {
    this.lines.push({ level, event, detail: { ...detail } });
  };

  events(event: string): LogLine[] {
    return this.lines.filter((l) => l.event === event);
  }

  /** The `reason` of every 'rejected' line, in order. */
  rejections(): string[] {
    return this.events('rejected').map((l) => String(l.detail.reason));
  }
}

export function seededRandom(seed: number): RandomBytes {
  const p = new Prng(seed);
  return (n) => p.bytes(n);
}

export class FakeDownloader implements Downloader {
  readonly requests: string[] = [];
  private readonly bodies = new Map<string, { body: Uint8Array; chunkSize: number }>();

  serve(url: string, body: Uint8Array, chunkSize = 1024): this {
    this.bodies.set(url, { body: body.slice(), chunkSize });
    return this;
  }

  /** Unknown URLs answer HTTP 404. */
  async download(url: string, onChunk: (chunk: Uint8Array) => void): Promise<DownloadResult> {
    this.requests.push(url);
    await Promise.resolve();
    const route = this.bodies.get(url);
    if (route === undefined) return { ok: false, error: 'http_error', status: 404 };
    let sent = 0;
    while (sent < route.body.length) {
      const chunk = route.body.slice(sent, Math.min(sent + route.chunkSize, route.body.length));
      try {
        onChunk(chunk);
      } catch (e) {
        return { ok: false, error: 'file', message: `sink refused: ${String(e)}` };
      }
      sent += chunk.length;
      await Promise.resolve();
    }
    return { ok: true, bytes: sent };
  }
}

/** Two slots, as ESP32 OTA partitions. Misuse throws, so a case notices an agent that does it. */
export class FakeUpdater implements Updater {
  running: Uint8Array;
  inactive: Uint8Array | null = null;
  slot: 'idle' | 'writing' | 'finished' = 'idle';
  restartRequested = false;
  /** Every call in order: 'begin', 'write:<n>', 'finish', 'abort', 'activate', 'bootState', 'confirm', 'reboot'. */
  readonly calls: string[] = [];
  private boot: BootState = 'normal';
  private parts: Uint8Array[] = [];

  constructor(running: Uint8Array) {
    this.running = running.slice();
  }

  begin(): void {
    this.calls.push('begin');
    this.parts = [];
    this.inactive = null;
    this.slot = 'writing';
  }

  write(chunk: Uint8Array): void {
    this.calls.push(`write:${chunk.length}`);
    if (this.slot !== 'writing') throw new Error('write() without begin()');
    this.parts.push(chunk.slice());
  }

  finish(): void {
    this.calls.push('finish');
    if (this.slot !== 'writing') throw new Error('finish() without begin()');
    let n = 0;
    for (const p of this.parts) n += p.length;
    const img = new Uint8Array(n);
    let o = 0;
    for (const p of this.parts) {
      img.set(p, o);
      o += p.length;
    }
    this.inactive = img;
    this.parts = [];
    this.slot = 'finished';
  }

  abort(): void {
    this.calls.push('abort');
    this.parts = [];
    this.inactive = null;
    this.slot = 'idle';
  }

  activate(): void {
    this.calls.push('activate');
    if (this.slot !== 'finished') throw new Error('activate() without a finished image');
    this.restartRequested = true;
  }

  bootState(): BootState {
    this.calls.push('bootState');
    return this.boot;
  }

  confirm(): boolean {
    this.calls.push('confirm');
    if (this.boot !== 'unconfirmed') return false;
    this.boot = 'normal';
    return true;
  }

  /** The device restarts: into the activated image ('unconfirmed') if activate() was called, else as it was. */
  reboot(): void {
    this.calls.push('reboot');
    if (this.restartRequested && this.inactive !== null) {
      this.restartRequested = false;
      this.running = this.inactive;
      this.inactive = null;
      this.slot = 'idle';
      this.boot = 'unconfirmed';
    } else this.boot = 'normal';
  }
}

/** What a device shows for one challenge, derived the way hosts/moddable/presenter-common.ts derives it. */
export interface Shown {
  /** The decrypted secret, as the agent handed it over. */
  readonly secret: Uint8Array;
  readonly cells: number[];
  readonly blink: string;
  /** 64 × RGB in LED order on the device's matrix, brightness-capped. */
  readonly leds: Uint8Array;
}

export class ChallengeRecorder implements Presenter {
  readonly shown: Shown[] = [];
  current: Shown | null = null;
  clears = 0;

  constructor(
    private readonly layout: MatrixLayout = { size: 8, wiring: 'serpentine', rotation: 90 },
    private readonly cap = 32,
  ) {}

  showChallenge(secret: Uint8Array): void {
    const cells = challengeGrid(secret);
    const rgb = gridRgb(cells);
    const map = pixelMap(this.layout);
    const leds = new Uint8Array(64 * 3);
    for (let cell = 0; cell < 64; cell++) {
      const c = capBrightness([rgb[cell * 3], rgb[cell * 3 + 1], rgb[cell * 3 + 2]], this.cap);
      leds.set(c, map[cell] * 3);
    }
    const s: Shown = { secret: secret.slice(), cells, blink: blinkCode(secret).digits, leds };
    this.shown.push(s);
    this.current = s;
  }

  clearChallenge(): void {
    this.current = null;
    this.clears++;
  }
}
