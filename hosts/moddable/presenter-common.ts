/**
 * The join challenge on device outputs: an LED playing the blink code (blinkAt over the schedule, polled
 * every 25 ms) and/or a grid painter given the 8×8 colours. The pictures come from modules/challenge.
 */
import Time from 'time';
import Timer from 'timer';
import type { Presenter } from '../../modules/agent/host.js';
import { blinkAt, blinkCode, blinkSchedule, challengeGrid, gridRgb, type BlinkStep } from '../../modules/challenge/index.js';

export interface ChallengeOutputs {
  /** Turns the LED on or off (null when there is none). */
  readonly led: ((on: boolean) => void) | null;
  /** Paints 64 cells, 3 bytes each in grid order; null clears (null when there is no grid). */
  readonly grid: ((rgb: Uint8Array | null) => void) | null;
  readonly log: (line: string) => void;
}

export class ChallengePresenter implements Presenter {
  private readonly out: ChallengeOutputs;
  private timer: Timer | null = null;

  constructor(out: ChallengeOutputs) {
    this.out = out;
  }

  showChallenge(secret: Uint8Array): void {
    this.clearChallenge();
    const cells = challengeGrid(secret);
    const code = blinkCode(secret);
    // One line a person (or the simulator harness) can compare with the C2 console.
    this.out.log(`challenge grid=${cells.join('')} blink=${code.digits}`);
    this.out.grid?.(gridRgb(cells));
    const led = this.out.led;
    if (led !== null) {
      const schedule: BlinkStep[] = blinkSchedule(code);
      const start = Time.ticks;
      let last: boolean | null = null;
      this.timer = Timer.repeat(() => {
        // Time.ticks is a u32 millisecond count handed over as an int32 (negative after 2^31 ms up): the
        // difference modulo 2^32 is the time elapsed, across the wrap too.
        const on = blinkAt(schedule, (Time.ticks - start) >>> 0);
        if (on !== last) led((last = on));
      }, 25);
    }
  }

  clearChallenge(): void {
    if (this.timer !== null) Timer.clear(this.timer);
    this.timer = null;
    this.out.led?.(false);
    this.out.grid?.(null);
  }
}
