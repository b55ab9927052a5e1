/**
 * Fakes of the agent's host interfaces (modules/agent/host.ts) that run on any engine (jest re-exports them from
 * test/support/fakes.ts):
 *
 *   FakeDownloader     serves byte arrays by URL in chunks, one promise job per chunk; can answer an HTTP error,
 *                      be unreachable, cut off half way, or hold a download until released
 *   FakeUpdater        two image slots in memory; activate() records a restart instead of restarting; reboot()
 *                      then boots the activated image, 'unconfirmed' until confirm()
 *   RecordingPresenter records showChallenge / clearChallenge
 *   ChallengeRecorder  a presenter that draws what the device would show (grid, LED map, blink code)
 *   ManualClock        timers that fire only when the test calls advance(ms)
 *   CollectingLog      collects log lines; rejections() lists the receive pipeline's reasons
 *   seededRandom       deterministic RandomBytes (NOT cryptographic): reproducible tokens in tests
 *   fakeHost           an AgentHost from a transport, stores and crypto, with the fakes above for the rest
 *
 * A test "reboots" a device by closing its agent, calling updater.reboot(), and constructing a new Agent over
 * the same key store, sequence store, updater and broker client id.
 */
import type { Crypto, RandomBytes } from '../../crypto/types.js';
import type {
  AgentHost,
  BootState,
  Clock,
  DownloadResult,
  Downloader,
  KeyStore,
  Log,
  LogLevel,
  Presenter,
  SequenceStore,
  Transport,
  Updater,
} from '../../modules/agent/host.js';
import { blinkCode, challengeGrid, gridRgb } from '../../modules/challenge/index.js';
import { capBrightness, pixelMap, type MatrixLayout } from '../../modules/matrix/layout.js';

// ------------------------------------------------------------------------------------------------ downloader

export interface ServeOptions {
  /** Bytes per chunk (default 1024). */
  chunkSize?: number;
  /** Delivers only this many bytes, then ends with error 'file' (a connection cut off half way). */
  cutOffAt?: number;
  /** The download waits for this before its first chunk (to keep a download running during a test). */
  hold?: Promise<void>;
}

type Route =
  | { kind: 'body'; body: Uint8Array; options: ServeOptions }
  | { kind: 'fail'; result: Exclude<DownloadResult, { ok: true }> };

export class FakeDownloader implements Downloader {
  /** Every URL asked for, in order. */
  readonly requests: string[] = [];
  /** The largest chunk handed to a sink so far. */
  largestChunk = 0;
  private readonly routes = new Map<string, Route>();

  /** Serves `body` at `url`. */
  serve(url: string, body: Uint8Array, options: ServeOptions = {}): this {
    this.routes.set(url, { kind: 'body', body: body.slice(), options });
    return this;
  }

  /** Answers `url` with a failure, e.g. {ok: false, error: 'http_error', status: 500}. */
  fail(url: string, result: Exclude<DownloadResult, { ok: true }>): this {
    this.routes.set(url, { kind: 'fail', result });
    return this;
  }

  /** Unknown URLs answer http_error 404. */
  async download(url: string, onChunk: (chunk: Uint8Array) => void): Promise<DownloadResult> {
    this.requests.push(url);
    await Promise.resolve();
    const route = this.routes.get(url);
    if (route === undefined) return { ok: false, error: 'http_error', status: 404 };
    if (route.kind === 'fail') return route.result;
    const { body, options } = route;
    if (options.hold) await options.hold;
    const size = options.chunkSize ?? 1024;
    const end = options.cutOffAt === undefined ? body.length : Math.min(options.cutOffAt, body.length);
    let sent = 0;
    while (sent < end) {
      const chunk = body.slice(sent, Math.min(sent + size, end));
      this.largestChunk = Math.max(this.largestChunk, chunk.length);
      try {
        onChunk(chunk);
      } catch (e) {
        return { ok: false, error: 'file', message: `sink refused: ${String(e)}` };
      }
      sent += chunk.length;
      await Promise.resolve(); // chunks arrive over time, as from a socket
    }
    if (options.cutOffAt !== undefined && options.cutOffAt < body.length) {
      return { ok: false, error: 'file', message: `connection closed after ${sent} of ${body.length} bytes` };
    }
    return { ok: true, bytes: sent };
  }
}

// ------------------------------------------------------------------------------------------------ updater

/**
 * Two slots: `running` (the image executing now) and the inactive one being written. Misuse (write before
 * begin, finish twice, activate with no finished image) throws, so a test notices an agent that does it.
 */
export class FakeUpdater implements Updater {
  /** The image running now. */
  running: Uint8Array;
  /** The inactive slot's content (what begin()/write() produced), or null after abort(). */
  inactive: Uint8Array | null = null;
  /** 'idle' | 'writing' | 'finished' for the inactive slot. */
  slotState: 'idle' | 'writing' | 'finished' = 'idle';
  /** Set by activate(): the device asked to restart into the inactive slot. */
  restartRequested = false;
  /** What confirm() returns (default true). */
  confirmResult = true;
  /** Every method called, in order, e.g. ['begin', 'write:1024', 'finish', 'activate']. */
  readonly calls: string[] = [];
  private boot: BootState = 'normal';
  private parts: Uint8Array[] = [];
  private previous: Uint8Array | null = null;

  constructor(running: Uint8Array = new Uint8Array([0x01])) {
    this.running = running.slice();
  }

  begin(): void {
    this.calls.push('begin');
    // As ESP-IDF with app rollback: no new OTA while the running image is pending verify.
    if (this.boot === 'unconfirmed') throw new Error('the running image is pending verify');
    this.parts = [];
    this.inactive = new Uint8Array(0);
    this.slotState = 'writing';
  }

  write(chunk: Uint8Array): void {
    this.calls.push(`write:${chunk.length}`);
    if (this.slotState !== 'writing') throw new Error('write() without begin()');
    this.parts.push(chunk.slice());
  }

  finish(): void {
    this.calls.push('finish');
    if (this.slotState !== 'writing') throw new Error('finish() without begin()');
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
    this.slotState = 'finished';
  }

  abort(): void {
    this.calls.push('abort');
    this.parts = [];
    this.inactive = null;
    this.slotState = 'idle';
  }

  activate(): void {
    this.calls.push('activate');
    if (this.slotState !== 'finished') throw new Error('activate() without a finished image');
    this.restartRequested = true;
  }

  bootState(): BootState {
    this.calls.push('bootState');
    return this.boot;
  }

  confirm(): boolean {
    this.calls.push('confirm');
    if (this.boot !== 'unconfirmed' || !this.confirmResult) return false;
    this.boot = 'normal';
    this.previous = null;
    return true;
  }

  /**
   * The device restarts. After activate(): the finished image runs, 'unconfirmed'; with `fail` the new image
   * does not come up and the bootloader rolls back ('rolled_back'). Without activate(): 'normal'. An
   * unconfirmed image that is rebooted again rolls back, as an OTA bootloader does.
   */
  reboot(options: { fail?: boolean } = {}): void {
    this.calls.push('reboot');
    if (this.restartRequested && this.inactive !== null && this.slotState === 'finished') {
      this.restartRequested = false;
      if (options.fail) {
        this.boot = 'rolled_back';
        return;
      }
      this.previous = this.running;
      this.running = this.inactive;
      this.inactive = null;
      this.slotState = 'idle';
      this.boot = 'unconfirmed';
    } else if (this.boot === 'unconfirmed' && this.previous !== null) {
      this.running = this.previous;
      this.previous = null;
      this.boot = 'rolled_back';
    } else {
      this.boot = 'normal';
    }
  }
}

// ------------------------------------------------------------------------------------------------ presenter

export class RecordingPresenter implements Presenter {
  /** What is shown now (null when nothing is). */
  current: Uint8Array | null = null;
  /** Every call: {op: 'show', secret} or {op: 'clear'}. */
  readonly history: ({ op: 'show'; secret: Uint8Array } | { op: 'clear' })[] = [];

  showChallenge(secret: Uint8Array): void {
    this.current = secret.slice();
    this.history.push({ op: 'show', secret: secret.slice() });
  }

  clearChallenge(): void {
    this.current = null;
    this.history.push({ op: 'clear' });
  }
}

// ------------------------------------------------------------------------------------------------ clocks

/** Timers that fire only in advance(); now() starts at `start`. */
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

  /** Timers not yet fired. */
  get pending(): number {
    return this.timers.size;
  }

  /** Moves time forward by `ms`, firing due timers in time order (ties in creation order). */
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

// ------------------------------------------------------------------------------------------------ log

export interface LogLine {
  level: LogLevel;
  event: string;
  detail: Record<string, string | number | boolean | null>;
}

export class CollectingLog {
  readonly lines: LogLine[] = [];
  /** The Log function to put in a host. */
  readonly log: Log = (level, event, detail = {}) => {
    this.lines.push({ level, event, detail: { ...detail } });
  };

  /** Lines with this event name. */
  events(event: string): LogLine[] {
    return this.lines.filter((l) => l.event === event);
  }

  /** The `reason` of every 'rejected' line, in order. */
  rejections(): string[] {
    return this.events('rejected').map((l) => String(l.detail.reason));
  }

  clear(): void {
    this.lines.length = 0;
  }
}

// ------------------------------------------------------------------------------------------------ randomness

/** Deterministic bytes from a seed (xorshift32): reproducible tokens and envelopes. NOT for real keys. */
export function seededRandom(seed = 1): RandomBytes {
  let s = seed >>> 0 || 1;
  return (n: number) => {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      s ^= s << 13;
      s >>>= 0;
      s ^= s >>> 17;
      s ^= s << 5;
      s >>>= 0;
      out[i] = s & 0xff;
    }
    return out;
  };
}

// ------------------------------------------------------------------------------------------------ host

export interface FakeHostParts {
  transport: Transport;
  keys: KeyStore;
  sequences: SequenceStore;
  crypto: Crypto;
  clock?: Clock;
  random?: RandomBytes;
  presenter?: Presenter;
  downloader?: Downloader;
  updater?: Updater;
  log?: Log;
}

/** An AgentHost: the given parts, and a ManualClock, seededRandom(1), fakes and a CollectingLog for the rest. */
export function fakeHost(parts: FakeHostParts): AgentHost {
  return {
    transport: parts.transport,
    keys: parts.keys,
    sequences: parts.sequences,
    crypto: parts.crypto,
    clock: parts.clock ?? new ManualClock(),
    random: parts.random ?? seededRandom(1),
    presenter: parts.presenter ?? new RecordingPresenter(),
    downloader: parts.downloader ?? new FakeDownloader(),
    updater: parts.updater ?? new FakeUpdater(),
    log: parts.log ?? new CollectingLog().log,
  };
}

// ------------------------------------------------------------------------------------------------ challenge

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
