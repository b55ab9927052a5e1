/**
 * The bounded inbound queue both sides put between the MQTT client and their receive steps (the device agent,
 * modules/agent/agent.ts; the C2 engine, modules/c2/engine.ts). A signature check costs tens of milliseconds on
 * an ESP32 and a fraction of one on Node; a flood of forged messages with a valid sender and fresh sequence IDs
 * cannot be refused without one. Without this queue every such message was checked in the MQTT client's
 * callback, in arrival order, so a genuine command waited behind every forgery the broker had queued (10,000
 * forgeries: seconds on Node, minutes on a board). With it:
 *
 *   - While the receiver keeps up, a message is processed at once, in the client's callback (no extra turn):
 *     the side asks admit() first and, when it says so, processes the message itself, then calls done().
 *     (The side's own call keeps the XS stack as deep as it was without the queue.)
 *   - Once processing has run back to back for SLICE_MS, the receiver is saturated: messages are queued instead,
 *     and processed in slices of SLICE_MS between turns of the event loop (clock.setTimeout 0), so that the MQTT
 *     client keeps reading (and acknowledging) in between.
 *   - What can be refused without a signature check (`rank` null: wrong topic, malformed header, unknown
 *     sender, a sequence ID already seen, our own echo) is never queued: it is processed at once.
 *   - The queue holds at most `maxMessages` messages and `maxBytes` bytes (one message always fits). Messages
 *     are taken best first: the smallest step past the sequence ID expected from their sender (`rank`), then
 *     arrival order. A genuine peer's step is 1 (or a few), a forgery's random sequence ID is ~2^63 steps
 *     away, so a genuine command goes next whatever is queued. When the queue is full, an implausible message
 *     (more than PLAUSIBLE_STEP steps away) is dropped, the worst first: a flood costs forged messages, never
 *     unbounded delay or memory. Drops are counted and logged once per REPORT_MS (warn 'inbound_dropped'
 *     {dropped, queued, total}). Plausible messages (a burst of genuine commands that waited at the broker) are
 *     never dropped: with the queue full of them, the best is processed at once, holding up the MQTT client as
 *     it did without a queue.
 *   - Per sender, best first is ascending sequence ID: a peer's own messages keep their order.
 *
 * What it cannot do: a forger who knows a device's next sequence ID (by reading its topic) ranks like the
 * genuine peer; then only the broker ACL (docs/broker-acl.md) keeps forgeries away. The bound holds either way.
 */
import { peekHeader } from './codec.js';
import type { Clock, Log } from './ports.js';

/** How long processing may run back to back before messages are queued, and how long one slice of the queue runs. */
export const SLICE_MS = 20;
/** How often dropped messages are reported, at most. */
export const REPORT_MS = 10_000;
/**
 * A message at most this many steps past the expected sequence ID is plausible: it may be genuine (a peer's
 * commands sent while the receiver was away, answers it did not get) and is never dropped. A forgery's random
 * sequence ID is ~2^63 steps away.
 */
export const PLAUSIBLE_STEP = 65536n;

const NONE = new Uint8Array(0);

export interface InboundQueueOptions {
  readonly clock: Clock;
  readonly log: Log;
  readonly maxMessages: number;
  readonly maxBytes: number;
  /**
   * null when the message will be refused without a signature check; otherwise how many steps its sequence ID
   * is past the one expected next from its sender (1n for the next one): lower goes first.
   */
  rank(topic: string, payload: Uint8Array): bigint | null;
  /** The side's receive steps and what follows them; must not throw (a throw is logged and ignored). */
  process(topic: string, payload: Uint8Array): void;
}

interface Entry {
  readonly topic: string;
  readonly payload: Uint8Array;
  readonly rank: bigint;
  readonly order: number;
  readonly sender: bigint;
  readonly seq: bigint;
}

export class InboundQueue {
  private readonly o: InboundQueueOptions;
  /** Waiting messages; null while none wait (nothing allocated while the side keeps up). */
  private entries: Entry[] | null = null;
  private bytes = 0;
  private arrivals = 0;
  /** When the current run of back-to-back processing began, and when its last message ended. */
  private runStart = 0;
  private runEnd = -Infinity;
  private drainTimer: unknown = null;
  private reportTimer: unknown = null;
  private unreported = 0;
  private droppedTotal = 0;
  private waiters: (() => void)[] | null = null;
  private closed = false;
  /** The message admit() hands to the caller to process now. */
  topic = '';
  payload: Uint8Array = NONE;

  constructor(options: InboundQueueOptions) {
    this.o = options;
  }

  /** Messages waiting. */
  get queued(): number {
    return this.entries === null ? 0 : this.entries.length;
  }

  /** Messages dropped because the queue was full, since the start. */
  get dropped(): number {
    return this.droppedTotal;
  }

  /**
   * One MQTT message. True: the caller processes `topic` and `payload` of this queue now (this message, or, when
   * the queue is full of plausible messages, the best one that waited: the newcomer takes its place), then calls
   * done(). False: it was queued (`process` will get it) or dropped (an implausible one, or closed).
   */
  admit(topic: string, payload: Uint8Array): boolean {
    if (this.closed) return false;
    this.topic = topic;
    this.payload = payload;
    if (this.entries === null && this.drainTimer === null) {
      const now = this.o.clock.now();
      // Back to back with the last message (no turn of the event loop between them): the same run.
      if (now - this.runEnd > 1) this.runStart = now;
      if (now - this.runStart < SLICE_MS) return true;
    }
    // Saturated: only now is the message looked at (nothing is spent on it while the side keeps up).
    const rank = this.safeRank(topic, payload);
    if (rank === null) return true;
    let sender = -1n;
    let seq = 0n;
    try {
      const h = peekHeader(payload);
      sender = h.senderId;
      seq = h.sequenceId;
    } catch {
      // ranked without a SRUP header (a side's own test rank): arrival order within the rank
    }
    const now = this.enqueue({ topic, payload, rank, order: this.arrivals++, sender, seq });
    this.schedule();
    return now;
  }

  /** The message admit() let through has been processed. */
  done(): void {
    this.runEnd = this.o.clock.now();
    this.topic = '';
    this.payload = NONE;
  }

  /** Resolves once nothing is queued. */
  drained(): Promise<void> {
    if (this.entries === null) return Promise.resolve();
    return new Promise((resolve) => (this.waiters ??= []).push(resolve));
  }

  /** Drops what is queued and stops; later pushes are ignored. */
  close(): void {
    this.closed = true;
    this.entries = null;
    this.bytes = 0;
    if (this.drainTimer !== null) this.o.clock.clearTimeout(this.drainTimer);
    if (this.reportTimer !== null) this.o.clock.clearTimeout(this.reportTimer);
    this.drainTimer = this.reportTimer = null;
    const w = this.waiters;
    this.waiters = null;
    if (w !== null) for (const f of w) f();
  }

  private safeRank(topic: string, payload: Uint8Array): bigint | null {
    try {
      return this.o.rank(topic, payload);
    } catch {
      return null; // the receive steps say why
    }
  }

  /**
   * Queues `e` within the bound. Implausible messages (more than PLAUSIBLE_STEP past the expected sequence ID) make
   * room: the worst of them is dropped, or the newcomer when it is the worst. Plausible messages are never dropped:
   * when nothing implausible is left to drop, the best waiting message is handed to the caller to process now
   * (true), which holds up the MQTT client for as long as that takes, as without a queue.
   */
  private enqueue(e: Entry): boolean {
    const { maxMessages, maxBytes } = this.o;
    const entries = (this.entries ??= []);
    const size = e.payload.length;
    let evicted = 0; // counted once the newcomer is in (the report says how many wait)
    while (entries.length > 0 && (entries.length >= maxMessages || this.bytes + size > maxBytes)) {
      const worst = this.worst(entries);
      const w = entries[worst];
      const newcomerWorse = w.rank < e.rank || (w.rank === e.rank && w.order < e.order);
      if (w.rank > PLAUSIBLE_STEP || e.rank > PLAUSIBLE_STEP) {
        if (newcomerWorse) {
          this.drop(evicted + 1);
          return false;
        }
        entries.splice(worst, 1);
        this.bytes -= w.payload.length;
        evicted++;
        continue;
      }
      // Both plausible: the best waiting message is processed now, and the newcomer waits in its place.
      const best = entries.splice(this.best(entries), 1)[0];
      this.bytes -= best.payload.length;
      this.put(entries, e);
      if (evicted > 0) this.drop(evicted);
      this.topic = best.topic;
      this.payload = best.payload;
      return true;
    }
    this.put(entries, e);
    if (evicted > 0) this.drop(evicted);
    return false;
  }

  private put(entries: Entry[], e: Entry): void {
    entries.push(e);
    this.bytes += e.payload.length;
  }

  /** The index of the worst entry: highest rank, then latest arrival. */
  private worst(entries: Entry[]): number {
    let i = 0;
    for (let j = 1; j < entries.length; j++) {
      const a = entries[j];
      const b = entries[i];
      if (a.rank > b.rank || (a.rank === b.rank && a.order > b.order)) i = j;
    }
    return i;
  }

  /**
   * The index of the best entry: lowest rank, then earliest arrival; then the lowest sequence ID of that sender
   * (ranks are taken at arrival, against counters that move: a sender's own messages must keep their order).
   */
  private best(entries: Entry[]): number {
    let i = 0;
    for (let j = 1; j < entries.length; j++) {
      const a = entries[j];
      const b = entries[i];
      if (a.rank < b.rank || (a.rank === b.rank && a.order < b.order)) i = j;
    }
    const sender = entries[i].sender;
    for (let j = 0; j < entries.length; j++) {
      const a = entries[j];
      if (a.sender === sender && a.seq < entries[i].seq) i = j;
    }
    return i;
  }

  /**
   * The next slice, after the MQTT client had as long to read as the last slice (or run) took to process: half
   * of the time goes to taking messages off the connection, so that a genuine one behind a flood reaches the
   * queue (and its place at the front) soon, and half to checking the best of them.
   */
  private schedule(): void {
    if (this.drainTimer !== null || this.closed) return;
    const busy = this.runEnd - this.runStart;
    this.drainTimer = this.o.clock.setTimeout(() => {
      this.drainTimer = null;
      this.drain();
    }, busy > 0 ? busy : 0);
  }

  /** One slice: the best messages, until SLICE_MS have passed or none is left; then the next turn, if needed. */
  private drain(): void {
    const start = this.o.clock.now();
    let entries = this.entries;
    while (entries !== null && entries.length > 0) {
      const e = entries.splice(this.best(entries), 1)[0];
      this.bytes -= e.payload.length;
      try {
        this.o.process(e.topic, e.payload);
      } catch (err) {
        this.o.log('error', 'receive_failed', { topic: e.topic, why: String(err) });
      }
      entries = this.entries; // close() may have run
      if (this.o.clock.now() - start >= SLICE_MS) break;
    }
    this.runStart = start;
    this.runEnd = this.o.clock.now();
    if (entries !== null && entries.length > 0) {
      this.schedule();
      return;
    }
    this.entries = null;
    const w = this.waiters;
    this.waiters = null;
    if (w !== null) for (const f of w) f();
  }

  private drop(n: number): void {
    this.droppedTotal += n;
    this.unreported += n;
    if (this.reportTimer === null) this.report();
  }

  /** Logs the drops since the last report, and looks again after REPORT_MS while they continue. */
  private report(): void {
    if (this.unreported === 0 || this.closed) {
      this.reportTimer = null;
      return;
    }
    this.o.log('warn', 'inbound_dropped', { dropped: this.unreported, queued: this.queued, total: this.droppedTotal });
    this.unreported = 0;
    this.reportTimer = this.o.clock.setTimeout(() => this.report(), REPORT_MS);
  }
}
