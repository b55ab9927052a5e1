/**
 * Properties of the C2 engine over generated input: no mangled message changes anything (and the genuine one
 * still works afterwards); any order of answers to pipelined requests, with duplicates, settles each request
 * exactly once with its own answer.
 */
import fc from 'fast-check';
import { concat, utf8 } from '../modules/srup/bytes.js';
import { deviceTopic, joinTopic } from '../modules/srup/topics.js';
import { DEV_A, DEV_B, SERVER_ID, deviceMessage, rigState, startRig, type Rig } from './support/c2-wire.js';

function snapshot(r: Rig) {
  return {
    ...rigState(r),
    updates: r.registry.updates(),
    events: r.events.filter((e) => e.type !== 'rejected').length,
  };
}

test('a genuine message with any byte changed, cut short or extended is rejected and changes nothing', async () => {
  const r = await startRig({}, (rig) => {
    rig.provision(DEV_A, 'joined');
    rig.provision(DEV_B, 'provisioned');
  });
  const genuine = deviceMessage(r.keys.a, 'data', DEV_A, 1n, 'tok-1', { dataId: utf8('temp'), data: Uint8Array.of(1, 2) });
  const join = deviceMessage(r.keys.b, 'join_request', DEV_B, 1n, 'j', {});
  const before = snapshot(r);
  const mangled = fc.oneof(
    fc.record({ base: fc.constantFrom(genuine, join), pos: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }).map(({ base, pos, xor }) => {
      const b = base.slice();
      b[pos % b.length] ^= xor;
      return { base, bytes: b };
    }),
    fc.record({ base: fc.constantFrom(genuine, join), len: fc.nat() }).map(({ base, len }) => ({ base, bytes: base.subarray(0, len % base.length) })),
    fc.record({ base: fc.constantFrom(genuine, join), extra: fc.uint8Array({ minLength: 1, maxLength: 8 }) }).map(({ base, extra }) => ({
      base,
      bytes: concat(base, extra),
    })),
    fc.uint8Array({ maxLength: 400 }).map((bytes) => ({ base: genuine, bytes })),
  );
  await fc.assert(
    fc.asyncProperty(mangled, async ({ base, bytes }) => {
      const topic = base === join ? joinTopic(SERVER_ID, DEV_B) : deviceTopic(DEV_A);
      const rejectedBefore = r.log.rejections().length;
      await r.inject(topic, bytes);
      expect(r.log.rejections().length).toBe(rejectedBefore + 1);
      expect(snapshot(r)).toEqual(before);
    }),
    { numRuns: 300 },
  );
  expect(r.log.events('handler_failed')).toEqual([]);
  await r.inject(deviceTopic(DEV_A), genuine);
  expect(r.eventsOf('data')).toHaveLength(1);
  await r.inject(joinTopic(SERVER_ID, DEV_B), join);
  expect(r.registry.device(DEV_B)!.state).toBe('joined');
});

test('answers to pipelined actions in any order, with duplicates, settle each request once with its own status', async () => {
  const r = await startRig({}, (rig) => rig.provision(DEV_A, 'joined'));
  let seq = 0n;
  let sentBefore = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 20 }).chain((n) =>
        fc.record({
          n: fc.constant(n),
          order: fc.shuffledSubarray([...Array(n).keys()], { minLength: n, maxLength: n }),
          dups: fc.array(fc.nat({ max: n - 1 }), { maxLength: 5 }),
          statuses: fc.array(fc.constantFrom(0x20, 0x2e, 0x2f), { minLength: n, maxLength: n }),
        }),
      ),
      async ({ n, order, dups, statuses }) => {
        const results: (number | string | null)[][] = Array.from({ length: n }, () => []);
        const calls = Array.from({ length: n }, (_, i) =>
          r.engine.sendAction(DEV_A, i).then(
            (s) => results[i].push(s),
            (e) => results[i].push(String(e)),
          ),
        );
        await r.settle();
        const sent = r.sentTo(DEV_A).slice(sentBefore);
        sentBefore += sent.length;
        expect(sent).toHaveLength(n);
        const answers = order.map((i) => deviceMessage(r.keys.a, 'response', DEV_A, ++seq, sent[i].token, { status: statuses[i] }));
        for (const a of answers) r.broker.inject(deviceTopic(DEV_A), a);
        // Duplicates: the same bytes again (replays), and fresh messages answering again (unmatched).
        for (const d of dups) r.broker.inject(deviceTopic(DEV_A), answers[d % answers.length]);
        for (const d of dups) {
          r.broker.inject(deviceTopic(DEV_A), deviceMessage(r.keys.a, 'response', DEV_A, ++seq, sent[d].token, { status: 0x20 }));
        }
        await r.settle();
        await Promise.all(calls);
        expect(results).toEqual(statuses.map((s) => [s]));
      },
    ),
    { numRuns: 20 },
  );
});
