/**
 * The in-memory broker of test/portable/broker.ts (semantics there), as the jest tests use it: settle() waits
 * in turns of Node's event loop (setImmediate), so that I/O and Node timers a handler starts get to run, and
 * waitFor() gives up after a time limit.
 *
 *   const broker = new MemoryBroker();
 *   const device = broker.client('SRUP Client: 4a0f');   // a Transport; hand it to the agent
 *   await broker.settle();                                // every queued delivery made, handlers run
 *   await broker.waitFor((p) => p.topic === 'SRUP/4a0f'); // the first such publish, past or future
 */
import {
  MemoryBroker as PortableMemoryBroker,
  type BrokerScheduler,
  type Published,
} from '../portable/broker.js';

export { topicMatches, MemoryTransport, type ClientOptions, type Published } from '../portable/broker.js';

/** Node event-loop turns: quiet after 3 turns with nothing to deliver, at most 10 000 turns by default. */
export const EVENT_LOOP_TURNS: BrokerScheduler = {
  turn: () => new Promise<void>((r) => setImmediate(r)),
  quiet: 3,
  maxTurns: 10_000,
  name: 'MemoryBroker',
};

export class MemoryBroker extends PortableMemoryBroker {
  constructor() {
    super(EVENT_LOOP_TURNS);
  }

  /** Resolves with the first publish (already logged or future) that satisfies `match`. */
  waitFor(match: (p: Published) => boolean, timeoutMs = 10_000): Promise<Published> {
    return new Promise((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      let settled = false;
      const stop = this.watch(match, (p) => {
        settled = true;
        if (timer !== undefined) clearTimeout(timer);
        resolve(p);
      });
      if (settled) return;
      timer = setTimeout(() => {
        stop();
        reject(new Error('MemoryBroker.waitFor(): no matching publish'));
      }, timeoutMs);
    });
  }
}
