/**
 * What a flood of forged messages may cost a side, device or server: forged messages, never unbounded delay or
 * memory.
 *
 * Everything that can be refused without RSA already is (session.ts: own echo, decode, unknown sender, a seen
 * sequence ID). What is left is a message from a trusted sender with a new sequence ID and a signature that only
 * RSA can judge: tens of milliseconds on an ESP32. A forger who does not see the device's topic cannot know the
 * sequence ID expected next, so a forgery's is random: almost always far past the next one. A genuine peer's next
 * message is one step past max(last sent to, last accepted from) that peer (topics.ts nextSequenceId), or a few
 * steps when several are under way.
 *
 * So a side that is behind refuses, without a signature check, any message more than PLAUSIBLE_STEPS past the
 * expected one (reason 'implausible', session.ts). Behind is judged per window of at least BEHIND_MS during which
 * messages kept coming, each within GAP_MS of the previous one's end: the next window is behind when checking
 * took at least BUSY_SHARE of this one, or when this one was behind and still had forgeries to refuse. A pause
 * longer than GAP_MS ends it all. A server busy with many devices' genuine traffic is not behind while it has
 * time to spare, and a flood after hours of steady traffic is caught within a window or two. A side that keeps
 * up checks every message as before; a genuine message, a few steps ahead at most, is checked even while the side
 * is behind. Nothing is queued: the MQTT client hands over one message at
 * a time and the next waits in the socket (and at the broker) until this one is done, so memory stays what it
 * was, and a flood of N forgeries costs one or two signature checks plus N header reads.
 *
 * Refusals are counted and logged, the first at once and then at most every LOG_EVERY_MS while they go on (`warn
 * flood_shed shed=N total=N`), not one line each.
 * A forger that sees the device's topic can copy the next sequence ID: only the broker's access rules keep that
 * one away (docs/broker-acl.md).
 */
import type { Clock, Log } from './ports.js';

/** The shortest window (ms) over which a side's load is judged. */
export const BEHIND_MS = 20;
/** A message that arrives within this many ms of the previous one's end continues the run of windows. */
export const GAP_MS = 10;
/** The share of a window's time spent checking that makes the next window behind. */
export const BUSY_SHARE = 0.5;
/** How far past the expected sequence ID a message is still plausible while the side is behind. */
export const PLAUSIBLE_STEPS = 65536n;
/** At most one log line about refused messages this often (ms). */
export const LOG_EVERY_MS = 10_000;

export class FloodGate {
  /** When the current window began, the time spent checking in it, and how many it refused. */
  private windowStart = 0;
  private busy = 0;
  private windowShed = 0;
  /** When the current check began, and when the last one ended. */
  private began = 0;
  private lastEnd = Number.NEGATIVE_INFINITY;
  private behindNow = false;
  private shedSinceLog = 0;
  /** Pending while refusals are counted but not yet logged. */
  private timer: unknown = null;
  /** Messages refused as implausible since this gate was made. */
  shedTotal = 0;

  constructor(
    private readonly clock: Clock,
    private readonly log: Log,
  ) {}

  /** Call before checking a message (then end() after it). */
  begin(): void {
    const now = this.clock.now();
    const span = now - this.windowStart;
    if (now - this.lastEnd > GAP_MS) {
      this.behindNow = false; // a pause: keeping up
      this.next(now);
    } else if (span >= BEHIND_MS) {
      this.behindNow = this.busy >= span * BUSY_SHARE || (this.behindNow && this.windowShed > 0);
      this.next(now);
    }
    this.began = now;
  }

  end(): void {
    this.lastEnd = this.clock.now();
    this.busy += this.lastEnd - this.began;
  }

  private next(now: number): void {
    this.windowStart = now;
    this.busy = 0;
    this.windowShed = 0;
  }

  /** Whether the side is behind now (since the last begin()): only then is there a ceiling to ask for. */
  get behind(): boolean {
    return this.behindNow;
  }

  /**
   * The highest sequence ID the side checks now from a peer with these counters: null (any) while the side
   * keeps up, else PLAUSIBLE_STEPS past the one expected next. (Callers that pay to read the counters ask
   * `behind` first.)
   */
  ceiling(lastSent: bigint, lastAccepted: bigint): bigint | null {
    if (!this.behindNow) return null;
    return (lastSent > lastAccepted ? lastSent : lastAccepted) + PLAUSIBLE_STEPS;
  }

  /**
   * Counts a message refused as implausible. The first of a flood is logged at once, the rest every LOG_EVERY_MS
   * while they last (one timer, only while there is something to tell).
   */
  shed(): void {
    this.shedTotal++;
    this.windowShed++;
    this.shedSinceLog++;
    if (this.timer === null) this.report();
  }

  /** The side stops: the refusals not yet told are logged now, and no timer is left behind. */
  close(): void {
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    this.timer = null;
    if (this.shedSinceLog > 0) this.log('warn', 'flood_shed', { shed: this.shedSinceLog, total: this.shedTotal });
    this.shedSinceLog = 0;
  }

  private report(): void {
    this.timer = null;
    if (this.shedSinceLog === 0) return;
    this.log('warn', 'flood_shed', { shed: this.shedSinceLog, total: this.shedTotal });
    this.shedSinceLog = 0;
    this.timer = this.clock.setTimeout(() => this.report(), LOG_EVERY_MS);
  }
}
