/**
 * End to end: the C2 engine against real device agents (modules/agent) over the in-memory broker, for every
 * flow — joins of all four kinds, update with activate, reboot and confirmation, digest mismatch, action, data
 * both ways, ID request, terminate, deregister both ways, resign — plus a device that is offline while commands
 * are sent, and 50 requests pipelined to one device.
 */
import { decodeData } from '../modules/srup/data.js';
import { toHex, utf8 } from '../modules/srup/bytes.js';
import { Status } from '../modules/srup/schema.js';
import { pureCrypto } from '../crypto/pure.js';
import { C2Error } from '../modules/c2/errors.js';
import { blinkCode, challengeGrid } from '../modules/challenge/index.js';
import { DEV_A, DEV_B, DEV_C, SERVER_ID } from './support/c2-wire.js';
import { C2_CLIENT, World, type Device } from './support/c2-world.js';

const IMAGE = Uint8Array.from({ length: 5000 }, (_, i) => (i * 7 + 3) & 0xff);
const IMAGE_DIGEST = toHex(pureCrypto.sha256(IMAGE));
const URL = 'https://updates.example/fw/srup-esp32-1.5.0.bin';
const text = (b: Uint8Array | null) => (b === null ? null : Buffer.from(b).toString('utf8'));

async function world(options = {}): Promise<World> {
  const w = new World();
  await w.startEngine(options);
  return w;
}

/** Runs an agent-side operation while the world settles, and returns its result. */
async function run<T>(w: World, p: Promise<T>): Promise<T> {
  await w.settle();
  return p;
}

async function joined(w: World, id: bigint, key = w.keys.a, agent = {}): Promise<Device> {
  const d = await w.addDevice(id, key, { agent });
  expect(await run(w, d.agent.join('simple'))).toBe('joined');
  return d;
}

describe('joins', () => {
  test('simple join: the agent joins, the registry says joined, both sides agree on the server', async () => {
    const w = await world();
    const a = await w.addDevice(DEV_A, w.keys.a);
    expect(await run(w, a.agent.join('simple'))).toBe('joined');
    expect(a.agent.serverId).toBe(SERVER_ID);
    expect(w.registry.device(DEV_A)).toMatchObject({ state: 'joined', joinKind: 'simple', joinToken: null });
    expect(w.broker.subscriptionsOf(C2_CLIENT)).toContain('SRUP/123456789abcdef/#');
    // The 0x50 carried the join request's token.
    const [req] = a.published();
    const [res] = w.fromEngine(DEV_A);
    expect(req.type).toBe('join_request');
    expect(res.type === 'response' && res.fields.status).toBe(0x50);
    expect(res.token).toEqual(req.token);
  });

  test('simple join refused by the approval hook', async () => {
    const w = await world({ onJoinRequest: () => 'refuse' as const });
    const a = await w.addDevice(DEV_A, w.keys.a);
    expect(await run(w, a.agent.join('simple'))).toBe('refused');
    expect(a.agent.serverId).toBe(SERVER_ID); // its configured server, but it is not joined
    expect(a.eventsOf('join_refused')).toHaveLength(1);
    expect(w.registry.device(DEV_A)!.state).toBe('refused');
  });

  test('human-moderated: the presenter shows exactly the secret the engine generated; the operator approves', async () => {
    const w = await world();
    const a = await w.addDevice(DEV_A, w.keys.a);
    const outcome = a.agent.join('human');
    await w.settle();
    const [challenge] = w.eventsOf('challenge');
    expect(challenge.kind).toBe('human');
    expect(challenge.challenge.secret).toMatch(/^[0-9a-f]{32}$/);
    expect(a.presenter.history).toEqual([{ op: 'show', secret: utf8(challenge.challenge.secret) }]);
    // What the operator's console draws is what the device draws from the bytes it decrypted.
    expect(challenge.challenge.grid).toEqual(challengeGrid(a.presenter.current!));
    expect(challenge.challenge.blink).toBe(blinkCode(a.presenter.current!).digits);

    await w.engine.approveJoin(DEV_A);
    expect(await run(w, outcome)).toBe('joined');
    expect(a.presenter.history.at(-1)).toEqual({ op: 'clear' });
    expect(w.registry.device(DEV_A)).toMatchObject({ state: 'joined', joinKind: 'human', joinSecret: null });
    // 0x50 carried the 0x0C token.
    const [hj, res] = w.fromEngine(DEV_A);
    expect(hj.type).toBe('human_join_response');
    expect(res.token).toEqual(hj.token);
  });

  test('human-moderated: refused by the operator', async () => {
    const w = await world();
    const a = await w.addDevice(DEV_A, w.keys.a);
    const outcome = a.agent.join('human');
    await w.settle();
    await w.engine.refuseJoin(DEV_A);
    expect(await run(w, outcome)).toBe('refused');
    expect(a.presenter.current).toBeNull();
    expect(w.registry.device(DEV_A)!.state).toBe('refused');
  });

  test.each([
    ['the observer sees the secret', true, 'joined', 0x60],
    ['the observer sees something else', false, 'refused', 0x6e],
  ])('observed join with a real observer agent: %s', async (_name, honest, outcome, verdict) => {
    const w = await world();
    let a: Device | undefined;
    // The observer "reads" the joining device's display (its presenter), e.g. with a camera.
    const b = await joined(w, DEV_B, w.keys.b, {
      observe: async () => (honest ? a!.presenter.current : utf8('0'.repeat(32))),
    });
    a = await w.addDevice(DEV_A, w.keys.a);
    expect(await run(w, a.agent.join('observed', DEV_B))).toBe(outcome);
    const [challenge] = w.eventsOf('challenge');
    expect(challenge.kind).toBe('observed');
    expect(text(a.presenter.history[0].op === 'show' ? a.presenter.history[0].secret : null)).toBe(challenge.challenge.secret);
    expect(b.eventsOf('observation')).toEqual([{ type: 'observation', server: SERVER_ID, joiningDevice: DEV_A, status: verdict }]);
    expect(w.eventsOf('observation_result')).toEqual([{ type: 'observation_result', device: DEV_A, observer: DEV_B, status: verdict }]);
    expect(w.registry.device(DEV_A)!.state).toBe(outcome);
    if (outcome === 'joined') expect(a.agent.serverId).toBe(SERVER_ID);
  });

  test('observed join: an observer without an observe hook answers 0x6F and the join fails', async () => {
    const w = await world();
    await joined(w, DEV_B, w.keys.b);
    const a = await w.addDevice(DEV_A, w.keys.a);
    expect(await run(w, a.agent.join('observed', DEV_B))).toBe('failed');
    expect(w.eventsOf('observation_result').map((e) => e.status)).toEqual([0x6f]);
    expect(w.registry.device(DEV_A)!.state).toBe('failed');
  });

  test('join command: a device without a server takes this one', async () => {
    const w = await world();
    const c = await w.addDevice(DEV_C, w.keys.c, { serverId: null });
    expect(c.agent.serverId).toBeNull();
    await w.engine.sendJoinCommand(DEV_C);
    await w.settle();
    expect(c.agent.serverId).toBe(SERVER_ID);
    expect(c.eventsOf('joined')).toEqual([{ type: 'joined', server: SERVER_ID, via: 'join_command' }]);
    expect(w.registry.device(DEV_C)).toMatchObject({ state: 'joined', joinKind: 'command' });
    // And it obeys.
    expect(await run(w, w.engine.requestId(DEV_C))).toBe('srup-esp32 1.4.2');
  });
});

describe('update', () => {
  test('initiate → download, digest matches → activate → reboot into the image → 0x10 confirmation', async () => {
    const w = await world();
    const a = await joined(w, DEV_A);
    a.downloader.serve(URL, IMAGE, { chunkSize: 700 });
    const staged = await run(w, w.engine.initiateUpdate(DEV_A, URL, IMAGE_DIGEST));
    expect(staged).toMatchObject({ device: DEV_A, url: URL, digest: IMAGE_DIGEST, state: 'staged', status: 0x00 });
    expect(a.downloader.requests).toEqual([URL]);
    expect(a.updater.inactive).toEqual(IMAGE);

    const confirmed = w.engine.activateUpdate(DEV_A);
    await w.settle();
    expect(a.updater.restartRequested).toBe(true);
    expect(w.registry.update(staged.token)!.state).toBe('activating');
    await a.reboot();
    expect(a.updater.running).toEqual(IMAGE);
    expect(await run(w, confirmed)).toMatchObject({ token: staged.token, state: 'confirmed', status: 0x10 });
    expect(a.eventsOf('update_confirmed')).toHaveLength(1);
    expect(w.eventsOf('update').map((e) => e.update.state)).toEqual(['initiated', 'staged', 'activating', 'confirmed']);
  });

  test('the C2 restarts while the device reboots: the queued 0x10 reaches the new engine and confirms the update', async () => {
    const w = await world();
    const a = await joined(w, DEV_A);
    a.downloader.serve(URL, IMAGE);
    const staged = await run(w, w.engine.initiateUpdate(DEV_A, URL, IMAGE_DIGEST));
    void w.engine.activateUpdate(staged.token).catch(() => undefined);
    await w.settle();
    w.engine.stop();
    await w.transport.close();

    await a.reboot();
    expect(w.broker.queuedFor(C2_CLIENT)).toBe(1);
    await w.startEngine();
    expect(await run(w, w.engine.awaitUpdate(staged.token))).toMatchObject({ state: 'confirmed', status: 0x10 });
    // And the restarted engine still controls the device.
    expect(await run(w, w.engine.requestId(DEV_A))).toBe('srup-esp32 1.4.2');
  });

  test('autoActivate: the engine activates by itself; a failed boot rolls back and reports 0x1F', async () => {
    const w = await world({ autoActivate: true });
    const a = await joined(w, DEV_A);
    a.downloader.serve(URL, IMAGE);
    const staged = await run(w, w.engine.initiateUpdate(DEV_A, URL, IMAGE_DIGEST));
    const final = w.engine.awaitUpdate(staged.token);
    await w.settle();
    expect(a.updater.restartRequested).toBe(true);
    await a.reboot({ fail: true });
    expect(await run(w, final)).toMatchObject({ state: 'failed', status: 0x1f });
    expect(a.updater.running).toEqual(Uint8Array.of(0x01, 0x02));
  });

  test('digest mismatch: 0xFF, nothing staged, activate refused by the engine', async () => {
    const w = await world({ autoActivate: true });
    const a = await joined(w, DEV_A);
    a.downloader.serve(URL, IMAGE);
    const wrong = toHex(pureCrypto.sha256(utf8('another image')));
    const rec = await run(w, w.engine.initiateUpdate(DEV_A, URL, wrong));
    expect(rec).toMatchObject({ state: 'failed', status: Status.UPDATE_FAIL_DIGEST });
    expect(a.updater.inactive).toBeNull();
    expect(a.updater.restartRequested).toBe(false);
    await expect(w.engine.activateUpdate(rec.token)).rejects.toMatchObject({ reason: 'bad_update_state' });
  });

  test('download failures map to 0xFC / 0xFD', async () => {
    const w = await world();
    const a = await joined(w, DEV_A);
    a.downloader.fail('https://down.example/x', { ok: false, error: 'unreachable', message: 'ECONNREFUSED' });
    const r1 = await run(w, w.engine.initiateUpdate(DEV_A, 'https://down.example/x', IMAGE_DIGEST));
    const r2 = await run(w, w.engine.initiateUpdate(DEV_A, 'https://updates.example/missing', IMAGE_DIGEST));
    expect([r1.status, r2.status]).toEqual([0xfd, 0xfc]);
  });
});

describe('commands', () => {
  test('action: done, failed, unknown', async () => {
    const w = await world();
    const calls: number[] = [];
    await joined(w, DEV_A, w.keys.a, {
      actions: {
        1: (id: number) => (calls.push(id), true),
        2: async () => false,
      },
    });
    const results = await run(w, Promise.all([w.engine.sendAction(DEV_A, 1), w.engine.sendAction(DEV_A, 2), w.engine.sendAction(DEV_A, 9)]));
    expect(results).toEqual([0x20, 0x2f, 0x2e]);
    expect(calls).toEqual([1]);
  });

  test('data both ways', async () => {
    const w = await world();
    const got: [string, Uint8Array][] = [];
    const a = await joined(w, DEV_A, w.keys.a, { onData: (id: string, bytes: Uint8Array) => got.push([id, bytes]) });
    await w.engine.sendData(DEV_A, 'setpoint', 'double', 21.5);
    await w.engine.sendData(DEV_A, 'mode', 'string', 'eco');
    await w.settle();
    expect(got.map(([id, b]) => id)).toEqual(['setpoint', 'mode']);
    expect(decodeData('double', got[0][1])).toBe(21.5);
    expect(decodeData('string', got[1][1])).toBe('eco');

    await run(w, a.agent.sendData('temp', 'int16', -300));
    const [ev] = w.eventsOf('data');
    expect(ev).toMatchObject({ device: DEV_A, dataId: 'temp' });
    expect(toHex(ev.data)).toBe('d4fe');
    expect(decodeData('int16', ev.data)).toBe(-300);
  });

  test('ID request: the answer is the firmware name and version, stored in the registry', async () => {
    const w = await world();
    await joined(w, DEV_A);
    expect(await run(w, w.engine.requestId(DEV_A))).toBe('srup-esp32 1.4.2');
    expect(w.registry.device(DEV_A)).toMatchObject({ firmwareName: 'srup-esp32', firmwareVersion: '1.4.2' });
  });

  test('identifyOnJoin: the engine asks right after the join', async () => {
    const w = await world({ identifyOnJoin: true });
    await joined(w, DEV_A);
    await w.settle();
    expect(w.registry.device(DEV_A)!.identification).toBe('srup-esp32 1.4.2');
  });
});

describe('leaving', () => {
  test('terminate: the device forgets its server; the engine stops listening and refuses further commands', async () => {
    const w = await world();
    const a = await joined(w, DEV_A);
    await w.engine.terminate(DEV_A);
    await w.settle();
    expect(a.agent.serverId).toBeNull();
    expect(a.eventsOf('terminated')).toEqual([{ type: 'terminated', server: SERVER_ID }]);
    expect(w.registry.device(DEV_A)!.state).toBe('terminated');
    expect(w.broker.subscriptionsOf(C2_CLIENT)).toEqual(['SRUP/servers/4c2a9e10b3d54f01/#']);
    await expect(w.engine.sendAction(DEV_A, 1)).rejects.toBeInstanceOf(C2Error);
  });

  test('deregister command: the device drops the server key', async () => {
    const w = await world();
    const a = await joined(w, DEV_A);
    await w.engine.deregister(DEV_A);
    await w.settle();
    expect(a.keys.peerKey(SERVER_ID)).toBeNull();
    expect(a.eventsOf('deregistered')).toEqual([{ type: 'deregistered', server: SERVER_ID, by: 'server' }]);
    expect(w.registry.device(DEV_A)!.state).toBe('deregistered');
  });

  test('deregister request from the device', async () => {
    const w = await world();
    const a = await joined(w, DEV_A);
    await run(w, a.agent.deregister());
    expect(w.registry.device(DEV_A)!.state).toBe('deregistered');
    expect(w.eventsOf('removed')).toEqual([{ type: 'removed', device: DEV_A, reason: 'deregistered', by: 'device' }]);
    expect(w.broker.subscriptionsOf(C2_CLIENT)).not.toContain('SRUP/123456789abcdef/#');
  });

  test('resign request from the device; it can join again later', async () => {
    const w = await world();
    const a = await joined(w, DEV_A);
    await run(w, a.agent.resign());
    expect(w.registry.device(DEV_A)!.state).toBe('resigned');
    expect(w.eventsOf('removed')).toEqual([{ type: 'removed', device: DEV_A, reason: 'resigned', by: 'device' }]);
    expect(await run(w, a.agent.join('simple', undefined, SERVER_ID))).toBe('joined');
    expect(await run(w, w.engine.sendAction(DEV_A, 0))).toBe(0x2e);
  });
});

describe('delivery', () => {
  test('a device offline while commands are sent receives each exactly once when it reconnects', async () => {
    const w = await world();
    const calls: number[] = [];
    const got: string[] = [];
    const a = await joined(w, DEV_A, w.keys.a, {
      actions: { 1: (id: number) => (calls.push(id), true), 2: (id: number) => (calls.push(id), true) },
      onData: (id: string) => got.push(id),
    });
    a.transport.disconnect('radio off');
    const answers = Promise.all([w.engine.sendAction(DEV_A, 1), w.engine.requestId(DEV_A), w.engine.sendAction(DEV_A, 2)]);
    await w.engine.sendData(DEV_A, 'note', 'string', 'while you were out');
    await w.settle();
    expect(w.broker.queuedFor(a.clientId)).toBe(4);
    expect(calls).toEqual([]);

    a.transport.reconnect();
    expect(await run(w, answers)).toEqual([0x20, 'srup-esp32 1.4.2', 0x20]);
    expect(calls).toEqual([1, 2]);
    expect(got).toEqual(['note']);
    // Delivered again (a QoS 1 duplicate after a lost PUBACK): the agent's replay check drops them.
    const resend = w.broker.log.filter((p) => p.client === C2_CLIENT && p.topic === 'SRUP/123456789abcdef').slice(-4);
    for (const p of resend) w.broker.inject(p.topic, p.payload);
    await w.settle();
    expect(calls).toEqual([1, 2]);
    expect(got).toEqual(['note']);
    expect(a.log.rejections()).toEqual(['replay', 'replay', 'replay', 'replay']);
  });

  test('a C2 that was offline hears what its devices sent meanwhile, once', async () => {
    const w = await world();
    const a = await joined(w, DEV_A);
    w.transport.disconnect('maintenance');
    await run(w, a.agent.sendData('temp', 'int16', 21));
    await run(w, a.agent.sendData('temp', 'int16', 22));
    expect(w.eventsOf('data')).toEqual([]);
    w.transport.reconnect();
    await w.settle();
    expect(w.eventsOf('data').map((e) => decodeData('int16', e.data))).toEqual([21, 22]);
  });

  test('50 requests pipelined to one device are all answered, each exactly once', async () => {
    const w = await world();
    const handled: number[] = [];
    await joined(w, DEV_A, w.keys.a, {
      actions: Object.fromEntries(
        Array.from({ length: 50 }, (_, i) => [i, async (id: number) => (handled.push(id), id % 2 === 0)]),
      ),
    });
    const settled: number[] = [];
    const requests = Array.from({ length: 50 }, (_, i) =>
      i % 10 === 9
        ? w.engine.requestId(DEV_A).then((s) => (settled.push(i), s))
        : w.engine.sendAction(DEV_A, i).then((s) => (settled.push(i), s)),
    );
    const answers = await run(w, Promise.all(requests));
    expect(answers).toEqual(
      Array.from({ length: 50 }, (_, i) => (i % 10 === 9 ? 'srup-esp32 1.4.2' : i % 2 === 0 ? 0x20 : 0x2f)),
    );
    expect(settled.sort((x, y) => x - y)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(handled.sort((x, y) => x - y)).toEqual(Array.from({ length: 50 }, (_, i) => i).filter((i) => i % 10 !== 9));
    expect(w.log.rejections()).toEqual([]);
  });
});
