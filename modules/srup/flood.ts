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
 * So a side that is behind — it has been checking messages back to back for BEHIND_MS, each arriving within
 * GAP_MS of the previous one's end — refuses, without a signature check, any message more than PLAUSIBLE_STEPS
 * past the expected one (reason 'implausible', session.ts). A side that keeps up checks every message as
 * before, so a genuine message is never refused for its step unless the side is flooded at that moment, and
 * the next genuine one after the flood is checked. Nothing is queued: the MQTT client hands over one message at
 * a time and the next waits in the socket (and at the broker) until this one is done, so memory stays what it
 * was, and a flood of N forgeries costs one or two signature checks plus N header reads.
 *
 * Refusals are counted and logged, the first at once and then at most every LOG_EVERY_MS while they go on (`warn
 * flood_shed shed=N total=N`), not one line each.
 * A forger that sees the device's topic can copy the next sequence ID: only the broker's access rules keep that
 * one away (docs/broker-acl.md).
 */
import type { Clock, Log } from './ports.js';

/** Back-to-back checking (ms) after which a side counts as behind. */
export const BEHIND_MS = 20;
/** A message that arrives within this many ms of the previous one's end continues the run. */
export const GAP_MS = 10;
/** How far past the expected sequence ID a message is still plausible while the side is behind. */
export const PLAUSIBLE_STEPS = 65536n;
/** At most one log line about refused messages this often (ms). */
export const LOG_EVERY_MS = 10_000;

export class FloodGate {
  /** When the current run of back-to-back checking began, and when the last check ended. */
  private runStart = 0;
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
    if (now - this.lastEnd > GAP_MS) this.runStart = now;
    this.behindNow = now - this.runStart >= BEHIND_MS;
  }

  end(): void {
    this.lastEnd = this.clock.now();
  }

  /**
   * The highest sequence ID the side checks now from a peer with these counters: null (any) while the side
   * keeps up, else PLAUSIBLE_STEPS past the one expected next.
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
    this.shedSinceLog++;
    if (this.timer === null) this.report();
  }

  private report(): void {
    this.timer = null;
    if (this.shedSinceLog === 0) return;
    this.log('warn', 'flood_shed', { shed: this.shedSinceLog, total: this.shedTotal });
    this.shedSinceLog = 0;
    this.timer = this.clock.setTimeout(() => this.report(), LOG_EVERY_MS);
  }
}
