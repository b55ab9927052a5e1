/**
 * The C2 engine against hand-built, signed device messages on the in-memory broker: what it publishes (exact
 * bytes), what it stores, and what it refuses. Every flow of the server side: joins (simple, human-moderated,
 * observed, join command), update, action, data, ID request, terminate, deregister, resign.
 */
import { openEnvelope } from '../crypto/envelope.js';
import { pureCrypto } from '../crypto/pure.js';
import { blinkCode, challengeGrid } from '../modules/challenge/index.js';
import { C2Error } from '../modules/c2/errors.js';
import { parseIdentification } from '../modules/c2/engine.js';
import { PERMISSIONS, receive } from '../modules/c2/receive.js';
import { TYPE_NAMES } from '../modules/srup/schema.js';
import { concat, fromHex, toHex, utf8 } from '../modules/srup/bytes.js';
import { Status } from '../modules/srup/schema.js';
import { deviceFilter, deviceTopic, joinTopic, serverJoinFilter } from '../modules/srup/topics.js';
import {
  DEV_A,
  DEV_B,
  SERVER_ID,
  STRANGER,
  as,
  deviceMessage,
  expectedServerBytes,
  rigState,
  startRig,
  text,
  type Rig,
} from './support/c2-wire.js';

const UUID4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const DIGEST = '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08';
const URL = 'https://updates.example/fw/sensor-1.3.0.bin';

function reason(e: unknown): string {
  return e instanceof C2Error ? e.reason : `not a C2Error: ${String(e)}`;
}

async function rejection(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return reason(e);
  }
  throw new Error('expected a rejection');
}

/** Captures whether a promise has settled, without awaiting it. */
function watch<T>(p: Promise<T>): { done: () => boolean; value: () => T; error: () => unknown } {
  let state: 'pending' | 'ok' | 'err' = 'pending';
  let value: T;
  let error: unknown;
  p.then(
    (v) => {
      state = 'ok';
      value = v;
    },
    (e) => {
      state = 'err';
      error = e;
    },
  );
  return { done: () => state !== 'pending', value: () => value, error: () => error };
}

const statusOf = (r: Rig, device: bigint) => r.sentTo(device).map((m) => (m.type === 'response' ? m.fields.status : m.type));

// ============================================================================================== start-up

describe('start', () => {
  test('subscribes its join filter and SRUP/<device>/# of every joined device, nothing else', async () => {
    const r = await startRig({}, (rig) => {
      rig.provision(DEV_A, 'joined');
      rig.provision(DEV_B, 'provisioned');
    });
    expect(r.broker.subscriptionsOf('SRUP Client: c2').sort()).toEqual(
      [`SRUP/servers/4c2a9e10b3d54f01/#`, `SRUP/123456789abcdef/#`].sort(),
    );
    expect(serverJoinFilter(SERVER_ID)).toBe('SRUP/servers/4c2a9e10b3d54f01/#');
    expect(deviceFilter(DEV_A)).toBe('SRUP/123456789abcdef/#');
    expect(r.eventsOf('connected')).toEqual([{ type: 'connected', sessionPresent: false }]);
  });

  test('commands need a started engine and a joined device', async () => {
    const r = await startRig({}, (rig) => rig.provision(DEV_B, 'provisioned'));
    expect(await rejection(r.engine.sendAction(DEV_A, 1))).toBe('unknown_device');
    expect(await rejection(r.engine.sendAction(DEV_B, 1))).toBe('not_joined');
    expect(await rejection(r.engine.requestId(DEV_B))).toBe('not_joined');
    expect(await rejection(r.engine.initiateUpdate(DEV_B, URL, DIGEST))).toBe('not_joined');
    r.engine.stop();
    expect(await rejection(r.engine.sendJoinCommand(DEV_B))).toBe('stopped');
    expect(r.sentTo(DEV_B)).toEqual([]);
  });
});

// ============================================================================================== joins

describe('simple join', () => {
  test('accepted by default: response 0x50 with the request token, exact bytes; device joined and subscribed', async () => {
    const r = await startRig({}, (rig) => rig.provision(DEV_A));
    const req = deviceMessage(r.keys.a, 'join_request', DEV_A, 7n, 'join-token-1', {});
    await r.inject(joinTopic(SERVER_ID, DEV_A), req);

    expect(joinTopic(SERVER_ID, DEV_A)).toBe('SRUP/servers/4c2a9e10b3d54f01/123456789abcdef');
    // nextSequenceId(lastSent 0, lastAccepted 7) = 8
    const want = expectedServerBytes(r.keys.server, 'response', 8n, utf8('join-token-1'), { status: 0x50 });
    expect(r.rawTo(DEV_A)).toEqual([want]);
    expect(r.rawTo(DEV_A)[0].length).toBe(20 + 12 + 2 + 256 + 1);

    const d = r.registry.device(DEV_A)!;
    expect(d.state).toBe('joined');
    expect(d.joinKind).toBe('simple');
    expect(d.joinToken).toBeNull();
    expect(d.lastSeen).toBe(1_000_000);
    expect(r.registry.sequence(DEV_A)).toEqual({ lastSent: 8n, lastAccepted: 7n });
    expect(r.broker.subscriptionsOf('SRUP Client: c2')).toContain('SRUP/123456789abcdef/#');
    expect(r.eventsOf('join_request')).toEqual([{ type: 'join_request', device: DEV_A, kind: 'simple', observer: null }]);
    expect(r.eventsOf('joined')).toEqual([{ type: 'joined', device: DEV_A, kind: 'simple' }]);

    const audit = r.registry.audit({ device: DEV_A });
    expect(audit.map((e) => [e.seq, e.direction, e.type, e.sequenceId, text(e.token), e.status])).toEqual([
      [1, 'in', 'join_request', 7n, 'join-token-1', null],
      [2, 'out', 'response', 8n, 'join-token-1', 0x50],
    ]);
    expect(audit[0].bytes).toEqual(req);
    expect(audit[1].bytes).toEqual(want);
  });

  test.each([
    ['refuse', 0x5e, 'refused'],
    ['fail', 0x5f, 'failed'],
  ] as const)('hook %s → response 0x%s', async (decision, status, state) => {
    const seen: unknown[] = [];
    const r = await startRig(
      {
        onJoinRequest: (req) => {
          seen.push(req);
          return decision;
        },
      },
      (rig) => rig.provision(DEV_A),
    );
    await r.inject(joinTopic(SERVER_ID, DEV_A), deviceMessage(r.keys.a, 'join_request', DEV_A, 1n, 'jt', {}));
    expect(seen).toEqual([{ device: DEV_A, kind: 'simple', observer: null }]);
    expect(r.rawTo(DEV_A)).toEqual([expectedServerBytes(r.keys.server, 'response', 2n, utf8('jt'), { status })]);
    expect(r.registry.device(DEV_A)!.state).toBe(state);
    expect(r.broker.subscriptionsOf('SRUP Client: c2')).not.toContain(deviceFilter(DEV_A));
  });

  test('a throwing or nonsensical hook fails the join (0x5F)', async () => {
    const r = await startRig(
      {
        onJoinRequest: () => {
          throw new Error('database down');
        },
      },
      (rig) => rig.provision(DEV_A),
    );
    await r.inject(joinTopic(SERVER_ID, DEV_A), deviceMessage(r.keys.a, 'join_request', DEV_A, 1n, 'jt', {}));
    expect(statusOf(r, DEV_A)).toEqual([0x5f]);
    expect(r.log.events('hook_threw')).toHaveLength(1);
  });

  test('deferred: nothing is sent until the application approves, with the request token', async () => {
    const r = await startRig({ onJoinRequest: async () => 'defer' as const }, (rig) => rig.provision(DEV_A));
    await r.inject(joinTopic(SERVER_ID, DEV_A), deviceMessage(r.keys.a, 'join_request', DEV_A, 3n, 'later', {}));
    expect(r.rawTo(DEV_A)).toEqual([]);
    expect(r.engine.pendingJoins().map((d) => [d.id, d.joinKind, text(d.joinToken!)])).toEqual([[DEV_A, 'simple', 'later']]);
    await r.engine.approveJoin(DEV_A);
    await r.settle();
    expect(r.rawTo(DEV_A)).toEqual([expectedServerBytes(r.keys.server, 'response', 4n, utf8('later'), { status: 0x50 })]);
    expect(r.registry.device(DEV_A)!.state).toBe('joined');
    expect(await rejection(r.engine.approveJoin(DEV_A))).toBe('no_pending_join');
    expect(await rejection(r.engine.refuseJoin(DEV_B))).toBe('unknown_device');
  });

  test('a newer request supersedes one whose hook is still deciding', async () => {
    let release!: (d: 'accept') => void;
    let calls = 0;
    const r = await startRig(
      {
        onJoinRequest: () => {
          calls++;
          return calls === 1 ? new Promise((res) => (release = res)) : 'refuse';
        },
      },
      (rig) => rig.provision(DEV_A),
    );
    r.broker.inject(joinTopic(SERVER_ID, DEV_A), deviceMessage(r.keys.a, 'join_request', DEV_A, 1n, 'first', {}));
    await r.broker.settle();
    r.broker.inject(joinTopic(SERVER_ID, DEV_A), deviceMessage(r.keys.a, 'join_request', DEV_A, 2n, 'second', {}));
    await r.broker.settle();
    release('accept');
    await r.settle();
    // Only the second request was answered (refused); the late 'accept' for the first changed nothing.
    expect(r.sentTo(DEV_A).map((m) => [text(m.token), as(m, 'response').fields.status])).toEqual([['second', 0x5e]]);
    expect(r.registry.device(DEV_A)!.state).toBe('refused');
  });

  test('joinTimeoutMs: a join left pending is failed (0x5F, pending token); a decision in time cancels the timer', async () => {
    const r = await startRig({ onJoinRequest: () => 'defer' as const, joinTimeoutMs: 60_000 }, (rig) => {
      rig.provision(DEV_A);
      rig.provision(DEV_B);
    });
    await r.inject(joinTopic(SERVER_ID, DEV_A), deviceMessage(r.keys.a, 'join_request', DEV_A, 1n, 'slow', {}));
    await r.inject(joinTopic(SERVER_ID, DEV_B), deviceMessage(r.keys.b, 'human_join_request', DEV_B, 1n, 'hj', {}));
    expect(r.clock.pending).toBe(2);
    await r.engine.approveJoin(DEV_A);
    expect(r.clock.pending).toBe(1);
    const challengeToken = r.sentTo(DEV_B)[0].token;
    r.clock.advance(59_999);
    await r.settle();
    expect(r.sentTo(DEV_B)).toHaveLength(1);
    r.clock.advance(1);
    await r.settle();
    expect(r.rawTo(DEV_B)[1]).toEqual(expectedServerBytes(r.keys.server, 'response', 3n, challengeToken, { status: 0x5f }));
    expect(r.registry.device(DEV_B)!.state).toBe('failed');
    expect(r.eventsOf('join_failed')).toEqual([{ type: 'join_failed', device: DEV_B, kind: 'human' }]);
    expect(r.registry.device(DEV_A)!.state).toBe('joined');
    expect(r.clock.pending).toBe(0);
  });

  test('joinTiming gives each pending join its request time and expiry; approving after it fails the join instead', async () => {
    const r = await startRig({ joinTimeoutMs: 60_000 }, (rig) => rig.provision(DEV_B));
    r.clock.advance(1000);
    await r.inject(joinTopic(SERVER_ID, DEV_B), deviceMessage(r.keys.b, 'human_join_request', DEV_B, 1n, 'hj', {}));
    const t0 = r.clock.now();
    expect(r.engine.joinTiming(DEV_B)).toEqual({ requestedAt: t0, expiresAt: t0 + 60_000 });
    const challengeToken = r.sentTo(DEV_B)[0].token;
    // The expiry timer has not run yet (a busy server), but the time is up: the device no longer waits.
    (r.clock as unknown as { t: number }).t = t0 + 60_000;
    await expect(r.engine.approveJoin(DEV_B)).rejects.toMatchObject({ reason: 'join_expired' });
    expect(r.registry.device(DEV_B)!.state).toBe('failed');
    expect(r.rawTo(DEV_B)[1]).toEqual(expectedServerBytes(r.keys.server, 'response', 3n, challengeToken, { status: 0x5f }));
    expect(r.eventsOf('joined')).toEqual([]);
    expect(r.engine.joinTiming(DEV_B)).toBeNull();
  });

  test('identifyOnJoin sends an ID request after the 0x50', async () => {
    const r = await startRig({ identifyOnJoin: true }, (rig) => rig.provision(DEV_A));
    await r.inject(joinTopic(SERVER_ID, DEV_A), deviceMessage(r.keys.a, 'join_request', DEV_A, 1n, 'jt', {}));
    expect(r.sentTo(DEV_A).map((m) => [m.type, m.sequenceId])).toEqual([
      ['response', 2n],
      ['id_request', 3n],
    ]);
  });
});

describe('durability on the hot path', () => {
  /** Records the registry writes made outside a group (each would be a commit, and a sync, of its own). */
  function outsideGroups(r: Rig): string[] {
    const reg = r.registry as unknown as Record<string, (...a: unknown[]) => unknown>;
    const outside: string[] = [];
    let depth = 0;
    const group = reg.group.bind(r.registry);
    reg.group = (fn: unknown) =>
      group(() => {
        depth++;
        try {
          return (fn as () => unknown)();
        } finally {
          depth--;
        }
      });
    for (const name of ['updateDevice', 'markSeen', 'recordAudit', 'appendAudit', 'allocateSequence', 'setLastSent', 'setLastAccepted', 'appendReading']) {
      const inner = reg[name].bind(r.registry);
      reg[name] = (...a: unknown[]) => {
        if (depth === 0) outside.push(name);
        return inner(...a);
      };
    }
    return outside;
  }

  test('a join approved, its ID request answered and an action round trip write only inside groups (the group commit)', async () => {
    const r = await startRig({ identifyOnJoin: true, onJoinRequest: () => 'defer' }, (rig) => rig.provision(DEV_A));
    await r.inject(joinTopic(SERVER_ID, DEV_A), deviceMessage(r.keys.a, 'join_request', DEV_A, 1n, 'jt', {}));
    const outside = outsideGroups(r);
    await r.engine.approveJoin(DEV_A);
    await r.settle();
    const idRequest = as(r.sentTo(DEV_A)[1], 'id_request');
    await r.inject(deviceTopic(DEV_A), deviceMessage(r.keys.a, 'data', DEV_A, 2n, idRequest.token, { dataId: utf8('IDENTIFICATION_RESPONSE'), data: utf8('sensor 1.2.0') }));
    const action = watch(r.engine.sendAction(DEV_A, 3));
    await r.settle();
    const sent = as(r.sentTo(DEV_A)[2], 'action');
    await r.inject(deviceTopic(DEV_A), deviceMessage(r.keys.a, 'response', DEV_A, 3n, sent.token, { status: Status.ACTION_SUCCESS }));
    expect(action.value()).toBe(Status.ACTION_SUCCESS);
    expect(r.registry.device(DEV_A)).toMatchObject({ state: 'joined', firmwareName: 'sensor', lastResponse: { status: Status.ACTION_SUCCESS } });
    expect(outside).toEqual([]);
  });
});

describe('human-moderated join', () => {
  test('0x0C carries a fresh secret sealed to the device; the operator sees the same secret, grid and blink code', async () => {
    const r = await startRig({}, (rig) => rig.provision(DEV_A));
    await r.inject(joinTopic(SERVER_ID, DEV_A), deviceMessage(r.keys.a, 'human_join_request', DEV_A, 1n, 'hj-req', {}));

    const [hj] = r.sentTo(DEV_A);
    const m = as(hj, 'human_join_response');
    expect(m.sequenceId).toBe(2n);
    const token = text(m.token);
    expect(token).toMatch(UUID4);
    const secret = openEnvelope(pureCrypto, r.keys.a, m.fields.encrypted);
    expect(text(secret)).toMatch(/^[0-9a-f]{32}$/);
    expect(m.fields.encrypted.length).toBe(4 + 256 + 16 + 4 + 4 + 48);

    const [ev] = r.eventsOf('challenge');
    expect(ev.device).toBe(DEV_A);
    expect(ev.kind).toBe('human');
    expect(ev.challenge.secret).toBe(text(secret));
    expect(ev.challenge.grid).toEqual(challengeGrid(text(secret)));
    expect(ev.challenge.blink).toBe(blinkCode(text(secret)).digits);
    expect(r.engine.challenge(DEV_A)).toEqual(ev.challenge);

    const d = r.registry.device(DEV_A)!;
    expect([d.state, d.joinKind, text(d.joinToken!), d.joinSecret]).toEqual(['pending', 'human', token, text(secret)]);
    // No automatic answer: a person decides.
    expect(r.sentTo(DEV_A)).toHaveLength(1);

    await r.engine.approveJoin(DEV_A);
    await r.settle();
    expect(r.rawTo(DEV_A)[1]).toEqual(expectedServerBytes(r.keys.server, 'response', 3n, utf8(token), { status: 0x50 }));
    expect(r.registry.device(DEV_A)!.joinSecret).toBeNull();
    expect(r.engine.challenge(DEV_A)).toBeNull();
  });

  test('refused by the operator: 0x5E with the 0x0C token', async () => {
    const r = await startRig({}, (rig) => rig.provision(DEV_A));
    await r.inject(joinTopic(SERVER_ID, DEV_A), deviceMessage(r.keys.a, 'human_join_request', DEV_A, 1n, 'hj', {}));
    const token = r.sentTo(DEV_A)[0].token;
    await r.engine.refuseJoin(DEV_A);
    await r.settle();
    expect(r.rawTo(DEV_A)[1]).toEqual(expectedServerBytes(r.keys.server, 'response', 3n, token, { status: 0x5e }));
    expect(r.registry.device(DEV_A)!.state).toBe('refused');
  });

  test('onChallengeRequest may refuse at once: 0x5E with the request token, no secret sent', async () => {
    const r = await startRig({ onChallengeRequest: () => 'refuse' }, (rig) => rig.provision(DEV_A));
    await r.inject(joinTopic(SERVER_ID, DEV_A), deviceMessage(r.keys.a, 'human_join_request', DEV_A, 1n, 'hj', {}));
    expect(r.rawTo(DEV_A)).toEqual([expectedServerBytes(r.keys.server, 'response', 2n, utf8('hj'), { status: 0x5e })]);
    expect(r.eventsOf('challenge')).toEqual([]);
  });
});

describe('observed join', () => {
  async function observedRig(options = {}) {
    const r = await startRig(options, (rig) => {
      rig.provision(DEV_A);
      rig.provision(DEV_B, 'joined');
    });
    await r.inject(
      joinTopic(SERVER_ID, DEV_A),
      deviceMessage(r.keys.a, 'observed_join_request', DEV_A, 1n, 'obs-req', { observerId: DEV_B }),
    );
    const toA = as(r.sentTo(DEV_A)[0], 'observed_join_response');
    const toB = as(r.sentTo(DEV_B)[0], 'observation_request');
    return { r, toA, toB };
  }

  test('0x0E to the device and 0x0F to the observer carry the same secret, each sealed to its recipient', async () => {
    const { r, toA, toB } = await observedRig();
    expect(r.sentTo(DEV_A)).toHaveLength(1);
    expect(r.sentTo(DEV_B)).toHaveLength(1);
    expect(toA.sequenceId).toBe(2n);
    expect(toB.sequenceId).toBe(1n);
    expect(text(toA.token)).toMatch(UUID4);
    expect(text(toB.token)).toMatch(UUID4);
    expect(text(toA.token)).not.toBe(text(toB.token));
    expect(toB.fields.joiningDeviceId).toBe(DEV_A);
    const secretA = text(openEnvelope(pureCrypto, r.keys.a, toA.fields.encrypted));
    const secretB = text(openEnvelope(pureCrypto, r.keys.b, toB.fields.encrypted));
    expect(secretA).toMatch(/^[0-9a-f]{32}$/);
    expect(secretB).toBe(secretA);
    expect(r.eventsOf('challenge')[0].challenge.secret).toBe(secretA);
    expect(r.eventsOf('observation_requested')).toEqual([{ type: 'observation_requested', device: DEV_A, observer: DEV_B }]);
    const d = r.registry.device(DEV_A)!;
    expect([d.state, d.joinKind, d.observerId, text(d.joinToken!), text(d.observationToken!)]).toEqual([
      'pending',
      'observed',
      DEV_B,
      text(toA.token),
      text(toB.token),
    ]);
  });

  test.each([
    [Status.OBSERVED_JOIN_VALID, 0x50, 'joined'],
    [Status.OBSERVED_JOIN_INVALID, 0x5e, 'refused'],
    [Status.OBSERVED_JOIN_FAIL, 0x5f, 'failed'],
  ])('observer says 0x%s → the device gets 0x%s with the 0x0E token', async (verdict, answer, state) => {
    const { r, toA, toB } = await observedRig();
    await r.inject(deviceTopic(DEV_B), deviceMessage(r.keys.b, 'response', DEV_B, 5n, toB.token, { status: verdict }));
    expect(r.rawTo(DEV_A)[1]).toEqual(expectedServerBytes(r.keys.server, 'response', 3n, toA.token, { status: answer }));
    expect(r.registry.device(DEV_A)!.state).toBe(state);
    expect(r.eventsOf('observation_result')).toEqual([
      { type: 'observation_result', device: DEV_A, observer: DEV_B, status: verdict },
    ]);
    // A second verdict for the same observation changes nothing.
    await r.inject(deviceTopic(DEV_B), deviceMessage(r.keys.b, 'response', DEV_B, 6n, toB.token, { status: 0x60 }));
    expect(r.sentTo(DEV_A)).toHaveLength(2);
  });

  test('a verdict with another token, or from another device, is not an answer', async () => {
    const { r, toB } = await observedRig();
    await r.inject(deviceTopic(DEV_B), deviceMessage(r.keys.b, 'response', DEV_B, 5n, 'not-the-token', { status: 0x60 }));
    expect(r.sentTo(DEV_A)).toHaveLength(1);
    expect(r.registry.device(DEV_A)!.state).toBe('pending');
    expect(r.log.events('unmatched_observation')).toHaveLength(1);
    await r.inject(deviceTopic(DEV_B), deviceMessage(r.keys.b, 'response', DEV_B, 6n, toB.token, { status: 0x60 }));
    expect(statusOf(r, DEV_A)).toEqual(['observed_join_response', 0x50]);
  });

  test('onObservationResult may defer; the operator then decides', async () => {
    const seen: unknown[] = [];
    const { r, toA, toB } = await observedRig({
      onObservationResult: (res: unknown) => {
        seen.push(res);
        return 'defer';
      },
    });
    await r.inject(deviceTopic(DEV_B), deviceMessage(r.keys.b, 'response', DEV_B, 5n, toB.token, { status: 0x6e }));
    expect(seen).toEqual([{ device: DEV_A, observer: DEV_B, status: 0x6e }]);
    expect(r.sentTo(DEV_A)).toHaveLength(1);
    await r.engine.approveJoin(DEV_A);
    expect(r.rawTo(DEV_A)[1]).toEqual(expectedServerBytes(r.keys.server, 'response', 3n, toA.token, { status: 0x50 }));
  });

  test('an observer that is not a joined device fails the join (0x5F, request token), nothing to the observer', async () => {
    const r = await startRig({}, (rig) => {
      rig.provision(DEV_A);
      rig.provision(DEV_B, 'provisioned');
    });
    await r.inject(
      joinTopic(SERVER_ID, DEV_A),
      deviceMessage(r.keys.a, 'observed_join_request', DEV_A, 1n, 'obs', { observerId: DEV_B }),
    );
    expect(r.rawTo(DEV_A)).toEqual([expectedServerBytes(r.keys.server, 'response', 2n, utf8('obs'), { status: 0x5f })]);
    expect(r.sentTo(DEV_B)).toEqual([]);
    await r.inject(
      joinTopic(SERVER_ID, DEV_A),
      deviceMessage(r.keys.a, 'observed_join_request', DEV_A, 3n, 'self', { observerId: DEV_A }),
    );
    expect(statusOf(r, DEV_A)).toEqual([0x5f, 0x5f]);
  });
});

describe('join command', () => {
  test('0x0A names the device; it is joined (kind command) and its topic subscribed', async () => {
    const r = await startRig({}, (rig) => rig.provision(DEV_A));
    await r.engine.sendJoinCommand(DEV_A);
    await r.settle();
    const [m] = r.sentTo(DEV_A);
    expect(as(m, 'join_command').fields.deviceId).toBe(DEV_A);
    expect(r.rawTo(DEV_A)).toEqual([expectedServerBytes(r.keys.server, 'join_command', 1n, m.token, { deviceId: DEV_A })]);
    expect(text(m.token)).toMatch(UUID4);
    const d = r.registry.device(DEV_A)!;
    expect([d.state, d.joinKind]).toEqual(['joined', 'command']);
    expect(r.broker.subscriptionsOf('SRUP Client: c2')).toContain(deviceFilter(DEV_A));
    expect(await rejection(r.engine.sendJoinCommand(STRANGER))).toBe('unknown_device');
  });
});

// ============================================================================================== update

describe('update', () => {
  const joined = (rig: Rig) => rig.provision(DEV_A, 'joined');

  test('initiate carries url and digest as pySRUP sends them; 0x00 stages; activate reuses the token; 0x10 confirms', async () => {
    const r = await startRig({}, joined);
    const staged = watch(r.engine.initiateUpdate(DEV_A, URL, DIGEST.toUpperCase()));
    await r.settle();
    const init = as(r.sentTo(DEV_A)[0], 'initiate');
    const token = text(init.token);
    expect(token).toMatch(UUID4);
    expect(init.fields.url).toEqual(concat(utf8(URL), Uint8Array.of(0)));
    expect(init.fields.digest).toEqual(concat(utf8(DIGEST), Uint8Array.of(0)));
    expect(r.rawTo(DEV_A)[0]).toEqual(expectedServerBytes(r.keys.server, 'initiate', 1n, init.token, init.fields));
    expect(r.registry.update(token)).toMatchObject({ device: DEV_A, url: URL, digest: DIGEST, state: 'initiated', status: null });
    expect(staged.done()).toBe(false);

    await r.inject(deviceTopic(DEV_A), deviceMessage(r.keys.a, 'response', DEV_A, 1n, token, { status: 0x00 }));
    expect(staged.value()).toMatchObject({ token, state: 'staged', status: 0x00 });
    expect(r.sentTo(DEV_A)).toHaveLength(1); // no autoActivate

    const confirmed = watch(r.engine.activateUpdate(DEV_A));
    await r.settle();
    expect(r.rawTo(DEV_A)[1]).toEqual(expectedServerBytes(r.keys.server, 'activate', 2n, utf8(token), {}));
    expect(r.registry.update(token)!.state).toBe('activating');

    await r.inject(deviceTopic(DEV_A), deviceMessage(r.keys.a, 'response', DEV_A, 2n, token, { status: 0x10 }));
    expect(confirmed.value()).toMatchObject({ token, state: 'confirmed', status: 0x10, failure: null });
    expect(r.eventsOf('update').map((e) => e.update.state)).toEqual(['initiated', 'staged', 'activating', 'confirmed']);
    expect(await r.engine.awaitUpdate(token)).toMatchObject({ state: 'confirmed' });
  });

  test('autoActivate sends the activate on 0x00; awaitUpdate reports the rollback 0x1F', async () => {
    const r = await startRig({ autoActivate: true }, joined);
    const rec = watch(r.engine.initiateUpdate(DEV_A, URL, DIGEST));
    await r.settle();
    const token = text(r.sentTo(DEV_A)[0].token);
    const final = watch(r.engine.awaitUpdate(token));
    await r.inject(deviceTopic(DEV_A), deviceMessage(r.keys.a, 'response', DEV_A, 1n, token, { status: 0x00 }));
    expect(rec.value().state).toBe('staged');
    expect(r.sentTo(DEV_A).map((m) => [m.type, text(m.token)])).toEqual([
      ['initiate', token],
      ['activate', token],
    ]);
    await r.inject(deviceTopic(DEV_A), deviceMessage(r.keys.a, 'response', DEV_A, 2n, token, { status: 0x1f }));
    expect(final.value()).toMatchObject({ state: 'failed', status: 0x1f });
  });

  test.each([0xfc, 0xfd, 0xfe, 0xff])('a failure status 0x%s ends the update; it cannot be activated', async (status) => {
    const r = await startRig({ autoActivate: true }, joined);
    const rec = watch(r.engine.initiateUpdate(DEV_A, URL, DIGEST));
    await r.settle();
    const token = text(r.sentTo(DEV_A)[0].token);
    await r.inject(deviceTopic(DEV_A), deviceMessage(r.keys.a, 'response', DEV_A, 1n, token, { status }));
    expect(rec.value()).toMatchObject({ state: 'failed', status });
    expect(r.sentTo(DEV_A)).toHaveLength(1);
    expect(await rejection(r.engine.activateUpdate(token))).toBe('bad_update_state');
    expect(await rejection(r.engine.activateUpdate(DEV_A))).toBe('unknown_update');
  });

  test('timeouts: no download result, then no confirmation; late answers are still recorded', async () => {
    const r = await startRig({ initiateTimeoutMs: 1000, activateTimeoutMs: 5000 }, joined);
    const first = watch(r.engine.initiateUpdate(DEV_A, URL, DIGEST));
    await r.settle();
    const token = text(r.sentTo(DEV_A)[0].token);
    r.clock.advance(999);
    await r.settle();
    expect(first.done()).toBe(false);
    r.clock.advance(1);
    await r.settle();
    expect(reason(first.error())).toBe('timeout');
    expect(r.registry.update(token)).toMatchObject({ state: 'failed', status: null, failure: 'initiate_timeout' });

    await r.inject(deviceTopic(DEV_A), deviceMessage(r.keys.a, 'response', DEV_A, 1n, token, { status: 0x00 }));
    expect(r.registry.update(token)).toMatchObject({ state: 'staged', status: 0, failure: null });

    const act = watch(r.engine.activateUpdate(token));
    await r.settle();
    r.clock.advance(5000);
    await r.settle();
    expect(reason(act.error())).toBe('timeout');
    expect(r.registry.update(token)).toMatchObject({ state: 'failed', failure: 'activate_timeout' });
    expect(r.clock.pending).toBe(0);
  });

  test('startUpdate returns the token at once; bad arguments throw before anything is stored', async () => {
    const r = await startRig({}, joined);
    expect(() => r.engine.startUpdate(DEV_A, URL, 'xyz')).toThrow(C2Error);
    const { token, response } = r.engine.startUpdate(DEV_A, URL, DIGEST);
    expect(r.registry.update(token)!.state).toBe('initiated');
    await r.settle();
    expect(text(r.sentTo(DEV_A)[0].token)).toBe(token);
    await r.inject(deviceTopic(DEV_A), deviceMessage(r.keys.a, 'response', DEV_A, 1n, token, { status: 0xfe }));
    expect(await response).toMatchObject({ token, state: 'failed', status: 0xfe });
  });

  test('a publish the broker refuses fails the request and the update at once', async () => {
    const r = await startRig({}, joined);
    await r.transport.close();
    expect(await rejection(r.engine.sendAction(DEV_A, 1))).toBe('publish_failed');
    expect(await rejection(r.engine.requestId(DEV_A))).toBe('publish_failed');
    expect(await rejection(r.engine.sendData(DEV_A, 'x', 'uint8', 1))).toBe('publish_failed');
    const { token, response } = r.engine.startUpdate(DEV_A, URL, DIGEST);
    expect(await rejection(response)).toBe('publish_failed');
    expect(r.registry.update(token)).toMatchObject({ state: 'failed', status: null, failure: 'publish_failed' });
    expect(r.clock.pending).toBe(0);
    // The sequence IDs were used up all the same: persisted before publishing.
    expect(r.registry.sequence(DEV_A).lastSent).toBe(4n);
  });

  test('an activate the broker refuses leaves the update staged, so it can be sent again', async () => {
    const r = await startRig({}, joined);
    const staged = watch(r.engine.initiateUpdate(DEV_A, URL, DIGEST));
    await r.settle();
    const token = text(r.sentTo(DEV_A)[0].token);
    await r.inject(deviceTopic(DEV_A), deviceMessage(r.keys.a, 'response', DEV_A, 1n, token, { status: 0x00 }));
    expect(staged.value()).toMatchObject({ token, state: 'staged' });
    const settled = watch(r.engine.awaitUpdate(token));
    await r.transport.close();
    expect(await rejection(r.engine.activateUpdate(token))).toBe('publish_failed');
    expect(r.registry.update(token)).toMatchObject({ state: 'staged', status: 0x00, failure: null });
    expect(r.clock.pending).toBe(0);
    await r.settle();
    expect(settled.done()).toBe(false); // still waiting for the update to end one way or the other
  });

  test('bad arguments are refused before anything is sent or stored', async () => {
    const r = await startRig({}, joined);
    expect(await rejection(r.engine.initiateUpdate(DEV_A, URL, 'abc'))).toBe('bad_argument');
    expect(await rejection(r.engine.initiateUpdate(DEV_A, '', DIGEST))).toBe('bad_argument');
    expect(await rejection(r.engine.initiateUpdate(DEV_A, 'a\0b', DIGEST))).toBe('bad_argument');
    expect(await rejection(r.engine.initiateUpdate(DEV_A, 'x'.repeat(70000), DIGEST))).toBe('bad_argument');
    expect(await rejection(r.engine.activateUpdate('no-such-token'))).toBe('unknown_update');
    expect(r.sentTo(DEV_A)).toEqual([]);
    expect(r.registry.updates()).toEqual([]);
    expect(r.registry.sequence(DEV_A)).toEqual({ lastSent: 0n, lastAccepted: 0n });
  });

  test('a response with an update status but an unknown token, or from another device, matches nothing', async () => {
    const r = await startRig({}, (rig) => {
      rig.provision(DEV_A, 'joined');
      rig.provision(DEV_B, 'joined');
    });
    const rec = watch(r.engine.initiateUpdate(DEV_A, URL, DIGEST));
    await r.settle();
    const token = text(r.sentTo(DEV_A)[0].token);
    await r.inject(deviceTopic(DEV_A), deviceMessage(r.keys.a, 'response', DEV_A, 1n, 'other', { status: 0x00 }));
    await r.inject(deviceTopic(DEV_B), deviceMessage(r.keys.b, 'response', DEV_B, 1n, token, { status: 0x00 }));
    expect(rec.done()).toBe(false);
    expect(r.registry.update(token)!.state).toBe('initiated');
    expect(r.log.events('unmatched_response')).toHaveLength(2);
  });
});

// ============================================================================================== commands

describe('action, data, ID request', () => {
  const joined = (rig: Rig) => {
    rig.provision(DEV_A, 'joined');
    rig.provision(DEV_B, 'joined');
  };

  test('action: exact message, resolves with the status of the response carrying its token', async () => {
    const r = await startRig({}, joined);
    const p = watch(r.engine.sendAction(DEV_A, 0x2a));
    await r.settle();
    const m = as(r.sentTo(DEV_A)[0], 'action');
    expect(r.rawTo(DEV_A)[0]).toEqual(expectedServerBytes(r.keys.server, 'action', 1n, m.token, { actionId: 0x2a }));
    // The same token from another device is not the answer.
    await r.inject(deviceTopic(DEV_B), deviceMessage(r.keys.b, 'response', DEV_B, 1n, m.token, { status: 0x20 }));
    expect(p.done()).toBe(false);
    await r.inject(deviceTopic(DEV_A), deviceMessage(r.keys.a, 'response', DEV_A, 1n, m.token, { status: 0x2e }));
    expect(p.value()).toBe(0x2e);
    expect(r.registry.device(DEV_A)!.lastResponse).toEqual({ status: 0x2e, token: m.token, at: 1_000_000 });
    expect(await rejection(r.engine.sendAction(DEV_A, 256))).toBe('bad_argument');
  });

  test('action timeout rejects once; a late answer is ignored', async () => {
    const r = await startRig({ requestTimeoutMs: 2000 }, joined);
    const p = watch(r.engine.sendAction(DEV_A, 1));
    await r.settle();
    r.clock.advance(2000);
    await r.settle();
    expect(reason(p.error())).toBe('timeout');
    const token = r.sentTo(DEV_A)[0].token;
    await r.inject(deviceTopic(DEV_A), deviceMessage(r.keys.a, 'response', DEV_A, 1n, token, { status: 0x20 }));
    expect(r.log.events('unmatched_response')).toHaveLength(1);
  });

  test('50 pipelined actions to one device, answered in reverse order: each resolves once with its own status', async () => {
    const r = await startRig({}, joined);
    const calls = Array.from({ length: 50 }, (_, i) => watch(r.engine.sendAction(DEV_A, i)));
    await r.settle();
    const sent = r.sentTo(DEV_A).map((m) => as(m, 'action'));
    expect(sent.map((m) => m.sequenceId)).toEqual(Array.from({ length: 50 }, (_, i) => BigInt(i + 1)));
    expect(sent.map((m) => m.fields.actionId)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(new Set(sent.map((m) => text(m.token))).size).toBe(50);
    let seq = 1n;
    for (const m of [...sent].reverse()) {
      const status = m.fields.actionId % 3 === 0 ? 0x20 : m.fields.actionId % 3 === 1 ? 0x2e : 0x2f;
      r.broker.inject(deviceTopic(DEV_A), deviceMessage(r.keys.a, 'response', DEV_A, seq++, m.token, { status }));
    }
    await r.settle();
    expect(calls.every((c) => c.done())).toBe(true);
    expect(calls.map((c) => c.value())).toEqual(
      Array.from({ length: 50 }, (_, i) => (i % 3 === 0 ? 0x20 : i % 3 === 1 ? 0x2e : 0x2f)),
    );
    expect(r.registry.sequence(DEV_A)).toEqual({ lastSent: 50n, lastAccepted: 50n });
  });

  test('ID request: the echoed token resolves it; the text is stored as firmware name and version', async () => {
    const r = await startRig({}, joined);
    const p = watch(r.engine.requestId(DEV_A));
    await r.settle();
    const m = as(r.sentTo(DEV_A)[0], 'id_request');
    expect(r.rawTo(DEV_A)[0]).toEqual(expectedServerBytes(r.keys.server, 'id_request', 1n, m.token, {}));
    await r.inject(
      deviceTopic(DEV_A),
      deviceMessage(r.keys.a, 'data', DEV_A, 1n, m.token, { dataId: utf8('IDENTIFICATION_RESPONSE'), data: utf8('sensor 1.2.0') }),
    );
    expect(p.value()).toBe('sensor 1.2.0');
    expect(r.registry.device(DEV_A)).toMatchObject({ identification: 'sensor 1.2.0', firmwareName: 'sensor', firmwareVersion: '1.2.0' });
    expect(r.eventsOf('identification')).toEqual([
      { type: 'identification', device: DEV_A, text: 'sensor 1.2.0', firmwareName: 'sensor', firmwareVersion: '1.2.0' },
    ]);
    expect(r.eventsOf('data')).toEqual([]);
  });

  test('ID request answered pySRUP-style (new token, trailing 00) resolves the oldest waiting request', async () => {
    const r = await startRig({}, joined);
    const first = watch(r.engine.requestId(DEV_A));
    const second = watch(r.engine.requestId(DEV_A));
    await r.settle();
    const reply = (seq: bigint, s: string) =>
      deviceMessage(r.keys.a, 'data', DEV_A, seq, `fresh-${seq}`, {
        dataId: utf8('IDENTIFICATION_RESPONSE'),
        data: concat(utf8(s), Uint8Array.of(0)),
      });
    await r.inject(deviceTopic(DEV_A), reply(1n, 'pySRUP version 2.0'));
    expect(first.value()).toBe('pySRUP version 2.0');
    expect(second.done()).toBe(false);
    await r.inject(deviceTopic(DEV_A), reply(2n, 'pySRUP version 2.1'));
    expect(second.value()).toBe('pySRUP version 2.1');
    expect(r.registry.device(DEV_A)).toMatchObject({ firmwareName: 'pySRUP', firmwareVersion: '2.1' });
  });

  test('identification text parsing', () => {
    expect(parseIdentification('sensor 1.2.0')).toEqual({ name: 'sensor', version: '1.2.0' });
    expect(parseIdentification('pySRUP version 2.0')).toEqual({ name: 'pySRUP', version: '2.0' });
    expect(parseIdentification('srup agent v0.1.0-rc1')).toEqual({ name: 'srup agent', version: 'v0.1.0-rc1' });
    expect(parseIdentification('mystery')).toEqual({ name: 'mystery', version: null });
    expect(parseIdentification('')).toEqual({ name: null, version: null });
  });

  test('data to a device: typed payload as the reference encodes it; data from a device: an event', async () => {
    const r = await startRig({}, joined);
    await r.engine.sendData(DEV_A, 'temp', 'int16', -300);
    await r.engine.sendData(DEV_A, 'note', 'string', 'hé');
    await r.settle();
    const [a, b] = r.sentTo(DEV_A).map((m) => as(m, 'data'));
    expect(toHex(a.fields.dataId)).toBe('74656d70');
    expect(toHex(a.fields.data)).toBe('d4fe');
    expect(r.rawTo(DEV_A)[0]).toEqual(expectedServerBytes(r.keys.server, 'data', 1n, a.token, { dataId: utf8('temp'), data: fromHex('d4fe') }));
    expect(toHex(b.fields.data)).toBe('68c3a9');
    expect(b.sequenceId).toBe(2n);
    expect(await rejection(r.engine.sendData(DEV_A, 'x', 'uint8', 256))).toBe('bad_argument');

    await r.inject(
      deviceTopic(DEV_A),
      deviceMessage(r.keys.a, 'data', DEV_A, 1n, 'd1', { dataId: utf8('humidity'), data: fromHex('00000000000050c0') }),
    );
    expect(r.eventsOf('data')).toEqual([
      { type: 'data', device: DEV_A, dataId: 'humidity', data: fromHex('00000000000050c0'), token: utf8('d1') },
    ]);
  });
});

// ============================================================================================== leaving

describe('terminate, deregister, resign', () => {
  const joined = (rig: Rig) => rig.provision(DEV_A, 'joined');

  test.each([
    ['terminate', 'terminate_command', 'terminated'],
    ['deregister', 'deregister_command', 'deregistered'],
  ] as const)('%s: command sent, device removed, topic unsubscribed, waiting requests rejected', async (method, type, state) => {
    const r = await startRig({}, joined);
    const waiting = watch(r.engine.sendAction(DEV_A, 1));
    await r.settle();
    await r.engine[method](DEV_A);
    await r.settle();
    const m = r.sentTo(DEV_A)[1];
    expect(m.type).toBe(type);
    expect(r.rawTo(DEV_A)[1]).toEqual(expectedServerBytes(r.keys.server, type, 2n, m.token, {}));
    expect(r.registry.device(DEV_A)!.state).toBe(state);
    expect(r.broker.subscriptionsOf('SRUP Client: c2')).toEqual([serverJoinFilter(SERVER_ID)]);
    expect(reason(waiting.error())).toBe('device_removed');
    expect(r.eventsOf('removed')).toEqual([{ type: 'removed', device: DEV_A, reason: state, by: 'server' }]);
    expect(await rejection(r.engine.sendAction(DEV_A, 1))).toBe('not_joined');
    // Counters are kept (the agent keeps its own): old messages stay replays.
    expect(r.registry.sequence(DEV_A)).toEqual({ lastSent: 2n, lastAccepted: 0n });
  });

  test('removeDevice: no message sent, record gone, topic unsubscribed, waiting requests rejected, counters kept', async () => {
    const r = await startRig({}, joined);
    const waiting = watch(r.engine.sendAction(DEV_A, 1));
    await r.settle();
    expect(r.engine.removeDevice(DEV_A)).toBe(true);
    await r.settle();
    expect(r.sentTo(DEV_A).map((m) => m.type)).toEqual(['action']);
    expect(r.registry.device(DEV_A)).toBeNull();
    expect(r.broker.subscriptionsOf('SRUP Client: c2')).toEqual([serverJoinFilter(SERVER_ID)]);
    expect(reason(waiting.error())).toBe('device_removed');
    expect(r.registry.sequence(DEV_A)).toEqual({ lastSent: 1n, lastAccepted: 0n });
    expect(r.engine.removeDevice(DEV_A)).toBe(false);
  });

  test.each([
    ['deregister_request', 'deregistered'],
    ['resign_request', 'resigned'],
  ] as const)('device sends %s: removed and unsubscribed; later traffic from it is refused', async (type, state) => {
    const r = await startRig({}, joined);
    await r.inject(deviceTopic(DEV_A), deviceMessage(r.keys.a, type, DEV_A, 1n, 'bye', {}));
    expect(r.registry.device(DEV_A)!.state).toBe(state);
    expect(r.broker.subscriptionsOf('SRUP Client: c2')).toEqual([serverJoinFilter(SERVER_ID)]);
    expect(r.eventsOf('removed')).toEqual([{ type: 'removed', device: DEV_A, reason: state, by: 'device' }]);
    expect(r.sentTo(DEV_A)).toEqual([]);
    // It may join again (its key is still provisioned).
    await r.inject(joinTopic(SERVER_ID, DEV_A), deviceMessage(r.keys.a, 'join_request', DEV_A, 2n, 'again', {}));
    expect(r.registry.device(DEV_A)!.state).toBe('joined');
  });
});

// ============================================================================================== hostile input

describe('the receive pipeline changes nothing for a bad message, and the next genuine one is accepted', () => {
  async function joinedRig() {
    const r = await startRig({}, (rig) => {
      rig.provision(DEV_A, 'joined');
      rig.provision(DEV_B, 'joined');
    });
    r.registry.setLastAccepted(DEV_A, 10n);
    return r;
  }

  const idReply = (r: Rig, seq: bigint, token: Uint8Array) =>
    deviceMessage(r.keys.a, 'data', DEV_A, seq, token, { dataId: utf8('IDENTIFICATION_RESPONSE'), data: utf8('fw 1') });

  test.each([
    ['forged signature (another key)', 'bad_signature', (r: Rig, t: Uint8Array) => [deviceTopic(DEV_A), deviceMessage(r.keys.b, 'data', DEV_A, 11n, t, { dataId: utf8('IDENTIFICATION_RESPONSE'), data: utf8('evil 6.6.6') })]],
    ['forged, with the highest sequence ID', 'bad_signature', (r: Rig, t: Uint8Array) => [deviceTopic(DEV_A), deviceMessage(r.keys.stranger, 'data', DEV_A, (1n << 64n) - 1n, t, { dataId: utf8('IDENTIFICATION_RESPONSE'), data: utf8('evil') })]],
    ['replayed sequence ID', 'replay', (r: Rig, t: Uint8Array) => [deviceTopic(DEV_A), idReply(r, 10n, t)]],
    ['sequence ID 0', 'replay', (r: Rig, t: Uint8Array) => [deviceTopic(DEV_A), idReply(r, 0n, t)]],
    ['unknown sender', 'unknown_sender', (r: Rig, t: Uint8Array) => [deviceTopic(DEV_A), deviceMessage(r.keys.stranger, 'data', STRANGER, 11n, t, { dataId: utf8('IDENTIFICATION_RESPONSE'), data: utf8('x') })]],
    ['device traffic on another device\'s topic', 'not_permitted', (r: Rig, t: Uint8Array) => [deviceTopic(DEV_B), idReply(r, 11n, t)]],
    ['device traffic on a sub-topic', 'wrong_topic', (r: Rig, t: Uint8Array) => [`${deviceTopic(DEV_A)}/x`, idReply(r, 11n, t)]],
    ['a server-only message type', 'not_permitted', (r: Rig, t: Uint8Array) => [deviceTopic(DEV_A), deviceMessage(r.keys.a, 'action', DEV_A, 11n, t, { actionId: 1 })]],
    ['a join request on the device topic', 'not_permitted', (r: Rig) => [deviceTopic(DEV_A), deviceMessage(r.keys.a, 'join_request', DEV_A, 11n, 'j', {})]],
    ['a join request naming another device in the topic', 'not_permitted', (r: Rig) => [joinTopic(SERVER_ID, DEV_B), deviceMessage(r.keys.a, 'join_request', DEV_A, 11n, 'j', {})]],
    ['truncated bytes', 'length_exceeds_input', (r: Rig, t: Uint8Array) => [deviceTopic(DEV_A), idReply(r, 11n, t).subarray(0, 200)]],
    ['trailing bytes', 'trailing_bytes', (r: Rig, t: Uint8Array) => [deviceTopic(DEV_A), concat(idReply(r, 11n, t), Uint8Array.of(0))]],
    ['version 4', 'bad_version', (r: Rig, t: Uint8Array) => {
      const b = idReply(r, 11n, t).slice();
      b[0] = 4;
      return [deviceTopic(DEV_A), b];
    }],
  ] as const)('%s → %s', async (_name, why, make) => {
    const r = await joinedRig();
    const p = watch(r.engine.requestId(DEV_A));
    await r.settle();
    const token = r.sentTo(DEV_A)[0].token;
    const before = rigState(r);
    const [topic, bytes] = make(r, token) as [string, Uint8Array];
    await r.inject(topic, bytes);
    expect(r.log.rejections()).toEqual([why]);
    expect(r.eventsOf('rejected').map((e) => e.reason)).toEqual([why]);
    expect(rigState(r)).toEqual(before);
    expect(p.done()).toBe(false);

    await r.inject(deviceTopic(DEV_A), idReply(r, 11n, token));
    expect(p.value()).toBe('fw 1');
    expect(r.registry.sequence(DEV_A).lastAccepted).toBe(11n);
  });

  test('the same message delivered twice is acted on once', async () => {
    const r = await joinedRig();
    const p = watch(r.engine.requestId(DEV_A));
    await r.settle();
    const bytes = idReply(r, 11n, r.sentTo(DEV_A)[0].token);
    await r.inject(deviceTopic(DEV_A), bytes);
    await r.inject(deviceTopic(DEV_A), bytes);
    expect(p.value()).toBe('fw 1');
    expect(r.eventsOf('identification')).toHaveLength(1);
    expect(r.log.rejections()).toEqual(['replay']);
  });

  test('a device that is not joined may only send join requests', async () => {
    const r = await startRig({}, (rig) => rig.provision(DEV_A, 'provisioned'));
    r.transport.subscribe(deviceFilter(DEV_A));
    await r.inject(deviceTopic(DEV_A), deviceMessage(r.keys.a, 'data', DEV_A, 1n, 'd', { dataId: utf8('x'), data: utf8('y') }));
    expect(r.log.rejections()).toEqual(['not_permitted']);
    expect(r.log.events('rejected')[0].detail.why).toBe('not_joined');
    expect(r.registry.sequence(DEV_A).lastAccepted).toBe(0n);
    expect(r.eventsOf('data')).toEqual([]);
  });

  test('our own messages echoed back are dropped silently', async () => {
    const r = await startRig({}, (rig) => rig.provision(DEV_A, 'joined'));
    void r.engine.sendAction(DEV_A, 1).catch(() => undefined);
    await r.settle();
    // The engine is subscribed to SRUP/<device>/# and so heard its own action: not an error.
    expect(r.log.rejections()).toEqual([]);
    expect(r.registry.audit().map((e) => e.direction)).toEqual(['out']);
    await r.inject(deviceTopic(DEV_A), deviceMessage(r.keys.server, 'response', SERVER_ID, 99n, 'x', { status: 0x20 }));
    expect(r.log.rejections()).toEqual([]);
    expect(r.registry.sequence(SERVER_ID)).toEqual({ lastSent: 0n, lastAccepted: 0n });
  });
});

// ============================================================================================== restart

describe('restart', () => {
  test('a new engine over the same registry hears joined devices and finishes an update in flight', async () => {
    const r = await startRig({}, (rig) => rig.provision(DEV_A, 'joined'));
    const p = watch(r.engine.initiateUpdate(DEV_A, URL, DIGEST));
    await r.settle();
    const token = text(r.sentTo(DEV_A)[0].token);
    await r.inject(deviceTopic(DEV_A), deviceMessage(r.keys.a, 'response', DEV_A, 1n, token, { status: 0 }));
    expect(p.value().state).toBe('staged');
    void r.engine.activateUpdate(token).catch(() => undefined);
    await r.settle();
    r.engine.stop();
    await r.transport.close();

    const { C2Engine } = await import('../modules/c2/engine.js');
    const transport = r.broker.client('SRUP Client: c2');
    const engine2 = new C2Engine(
      { transport, registry: r.registry, crypto: pureCrypto, random: () => new Uint8Array(0), clock: r.clock, log: r.log.log, serverId: SERVER_ID, privateKey: r.keys.server },
      {},
    );
    await engine2.start();
    await r.broker.settle();
    expect(r.broker.subscriptionsOf('SRUP Client: c2').sort()).toEqual([deviceFilter(DEV_A), serverJoinFilter(SERVER_ID)].sort());
    const final = watch(engine2.awaitUpdate(token));
    r.broker.inject(deviceTopic(DEV_A), deviceMessage(r.keys.a, 'response', DEV_A, 2n, token, { status: 0x10 }));
    await r.broker.settle();
    await engine2.idle();
    expect(final.value()).toMatchObject({ token, state: 'confirmed', status: 0x10 });
    engine2.stop();
    expect(r.clock.pending).toBe(0);
  });
});

test('a restarted engine can still approve a pending human join, and its expiry keeps the time already spent', async () => {
  const r = await startRig({ joinTimeoutMs: 10_000 }, (rig) => {
    rig.provision(DEV_A);
    rig.provision(DEV_B);
  });
  await r.inject(joinTopic(SERVER_ID, DEV_A), deviceMessage(r.keys.a, 'human_join_request', DEV_A, 1n, 'a', {}));
  await r.inject(joinTopic(SERVER_ID, DEV_B), deviceMessage(r.keys.b, 'human_join_request', DEV_B, 1n, 'b', {}));
  const secretA = r.engine.challenge(DEV_A)!.secret;
  r.clock.advance(4_000);
  r.engine.stop();
  await r.transport.close();
  expect(r.clock.pending).toBe(0);

  const { C2Engine } = await import('../modules/c2/engine.js');
  const engine2 = new C2Engine(
    { transport: r.broker.client('SRUP Client: c2'), registry: r.registry, crypto: pureCrypto, random: () => new Uint8Array(16).fill(1), clock: r.clock, log: r.log.log, serverId: SERVER_ID, privateKey: r.keys.server },
    { joinTimeoutMs: 10_000 },
  );
  await engine2.start();
  await r.broker.settle();
  expect(engine2.challenge(DEV_A)!.secret).toBe(secretA);
  await engine2.approveJoin(DEV_A);
  r.clock.advance(5_999);
  await r.broker.settle();
  expect(r.registry.device(DEV_B)!.state).toBe('pending');
  r.clock.advance(1);
  await r.broker.settle();
  expect(r.registry.device(DEV_B)!.state).toBe('failed');
  expect(statusOf(r, DEV_A).slice(1)).toEqual([0x50]);
  expect(statusOf(r, DEV_B).slice(1)).toEqual([0x5f]);
  engine2.stop();
});

test('tokens are uuid4 text made from host randomness', async () => {
  const r = await startRig({}, (rig) => rig.provision(DEV_A, 'joined'));
  void r.engine.sendAction(DEV_A, 1).catch(() => undefined);
  await r.settle();
  // seededRandom(7)'s first 16 bytes are e7 07 43 45 ff 94 ba 57 af 0a fd e4 a8 fe 45 35: byte 6 gets version 4,
  // byte 8 the RFC 4122 variant.
  expect(text(r.sentTo(DEV_A)[0].token)).toBe('e7074345-ff94-4a57-af0a-fde4a8fe4535');
  r.engine.stop();
});

describe('lifecycle details', () => {
  test('stop() rejects every waiting request and update, clears every timer, and ignores later messages', async () => {
    const r = await startRig({}, (rig) => rig.provision(DEV_A, 'joined'));
    const action = watch(r.engine.sendAction(DEV_A, 1));
    const id = watch(r.engine.requestId(DEV_A));
    const upd = watch(r.engine.initiateUpdate(DEV_A, URL, DIGEST));
    await r.settle();
    expect(r.clock.pending).toBe(3);
    const token = r.sentTo(DEV_A)[0].token;
    r.engine.stop();
    await r.settle();
    expect([reason(action.error()), reason(id.error()), reason(upd.error())]).toEqual(['stopped', 'stopped', 'stopped']);
    expect(r.clock.pending).toBe(0);
    await r.inject(deviceTopic(DEV_A), deviceMessage(r.keys.a, 'response', DEV_A, 1n, token, { status: 0x20 }));
    expect(r.registry.sequence(DEV_A).lastAccepted).toBe(0n);
    expect(await rejection(r.engine.sendAction(DEV_A, 1))).toBe('stopped');
  });

  test('a listener that throws is logged; the others still hear every event; on() returns an unsubscribe', async () => {
    const r = await startRig({}, (rig) => rig.provision(DEV_A));
    const heard: string[] = [];
    r.engine.on(() => {
      throw new Error('boom');
    });
    const off = r.engine.on((e) => heard.push(e.type));
    await r.inject(joinTopic(SERVER_ID, DEV_A), deviceMessage(r.keys.a, 'join_request', DEV_A, 1n, 'j', {}));
    expect(heard).toEqual(['join_request', 'joined']);
    expect(r.log.events('listener_threw')).toHaveLength(2);
    off();
    await r.engine.terminate(DEV_A);
    expect(heard).toEqual(['join_request', 'joined']);
    expect(r.eventsOf('removed')).toHaveLength(1);
  });

  test('receive(): topics outside SRUP/<device> and SRUP/servers/<own id>/<device> are refused before decoding', async () => {
    const r = await startRig({}, (rig) => rig.provision(DEV_A, 'joined'));
    const deps = { self: SERVER_ID, registry: r.registry, crypto: pureCrypto, log: r.log.log };
    const msg = deviceMessage(r.keys.a, 'join_request', DEV_A, 1n, 'j', {});
    for (const topic of ['SRUP/servers/1234/123456789abcdef', 'SRUP/a/b/c', 'other/123456789abcdef', 'SRUP/0x123456789abcdef', 'SRUP/servers/4c2a9e10b3d54f01']) {
      expect(receive(deps, topic, msg)).toEqual({ ok: false, rejection: { reason: 'wrong_topic', sender: null } });
    }
    expect(r.registry.sequence(DEV_A).lastAccepted).toBe(0n);
    const ok = receive(deps, joinTopic(SERVER_ID, DEV_A), msg);
    expect(ok.ok && ok.message.type).toBe('join_request');
  });

  test('the server acts on exactly seven message types', () => {
    const allowed = TYPE_NAMES.filter((t) => PERMISSIONS[t] !== 'never');
    expect(allowed.sort()).toEqual(
      ['data', 'deregister_request', 'human_join_request', 'join_request', 'observed_join_request', 'resign_request', 'response'].sort(),
    );
  });
});
