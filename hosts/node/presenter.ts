/**
 * Shows the join challenge in a terminal: the 8×8 grid in 24-bit colour (and as letters), the blink code as
 * digits, and a one-cell "LED" that plays the blink schedule, repeating until clearChallenge(). The pictures
 * come from modules/challenge, so the C2 console shows the same thing.
 */
import type { Writable } from 'node:stream';
import type { Clock, Log, Presenter } from '../../modules/agent/host.js';
import {
  DEFAULT_PALETTE,
  blinkCode,
  blinkSchedule,
  challengeGrid,
  renderGridAnsi,
  renderGridText,
  type BlinkOptions,
  type BlinkStep,
  type Palette,
} from '../../modules/challenge/index.js';

const ESC = '\u001b';
const LED_ON = `${ESC}[48;2;255;255;255m  ${ESC}[0m`;
const LED_OFF = `${ESC}[48;2;40;40;40m  ${ESC}[0m`;

export interface TerminalPresenterOptions {
  /** Where to draw (default process.stdout). */
  out?: Writable;
  /** Play the blink code on an animated LED cell (default: when `out` is a TTY). */
  animate?: boolean;
  palette?: Palette;
  blink?: BlinkOptions;
  /** Timers for the animation (default: the real ones). */
  clock?: Pick<Clock, 'setTimeout' | 'clearTimeout'>;
  log?: Log;
}

export class TerminalPresenter implements Presenter {
  private readonly out: Writable;
  private readonly animate: boolean;
  private readonly palette: Palette;
  private readonly clock: Pick<Clock, 'setTimeout' | 'clearTimeout'>;
  private readonly options: TerminalPresenterOptions;
  private timer: unknown = null;
  private showing = false;

  constructor(options: TerminalPresenterOptions = {}) {
    this.options = options;
    this.out = options.out ?? process.stdout;
    this.animate = options.animate ?? (this.out as Writable & { isTTY?: boolean }).isTTY === true;
    this.palette = options.palette ?? DEFAULT_PALETTE;
    this.clock = options.clock ?? {
      setTimeout: (fn, ms) => setTimeout(fn, ms),
      clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
    };
  }

  showChallenge(secret: Uint8Array): void {
    this.stop();
    let cells: number[];
    let digits: string;
    let schedule: BlinkStep[];
    try {
      cells = challengeGrid(secret);
      const code = blinkCode(secret);
      digits = code.digits;
      schedule = blinkSchedule(code, this.options.blink);
    } catch (e) {
      // Bad input is refused, not thrown: the agent has already decided to show it.
      this.options.log?.('warn', 'challenge_not_shown', { why: (e as Error).message });
      this.out.write('Join challenge: cannot show it (the secret is not 32 hex characters)\n');
      return;
    }
    this.showing = true;
    this.out.write(
      '\nJoin challenge: compare with the operator console\n' +
        renderGridAnsi(cells, this.palette) +
        renderGridText(cells, this.palette) +
        `Blink code: ${digits.split('').join(' ')}\n`,
    );
    if (this.animate) this.play(schedule, 0);
  }

  clearChallenge(): void {
    const was = this.showing;
    this.stop();
    if (was) this.out.write(`${this.animate ? '\n' : ''}Join challenge cleared\n`);
  }

  private play(schedule: BlinkStep[], i: number): void {
    const step = schedule[i % schedule.length];
    this.out.write(`\rLED ${step.on ? LED_ON : LED_OFF}`);
    this.timer = this.clock.setTimeout(() => this.play(schedule, i + 1), step.ms);
  }

  private stop(): void {
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    this.timer = null;
    this.showing = false;
  }
}
