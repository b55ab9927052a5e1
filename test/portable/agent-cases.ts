/**
 * The device agent (modules/agent) against the C2 engine (modules/c2) on a portable broker, with the pure
 * crypto and fake downloader, updater and presenter: every flow as the device runs it, on any engine. The
 * runners take the flows twice: with RSA-1024 test keys and with the vector set's RSA-2048 keys (the size the
 * devices use). Two flows keep the device's state in its flash stores.
 */
import { pureCrypto } from '../../crypto/pure.js';
import type { RsaPrivateKey } from '../../crypto/types.js';
import { C2Error } from '../../modules/c2/errors.js';
import { toHex, utf8 } from '../../modules/srup/bytes.js';
import { decode, encode } from '../../modules/srup/codec.js';
import { decodeData } from '../../modules/srup/data.js';
import type { FieldsOf, Message, TypeName, UnsignedOf } from '../../modules/srup/schema.js';
import { Status } from '../../modules/srup/schema.js';
import { sign } from '../../modules/srup/session.js';
import { deviceTopic } from '../../modules/srup/topics.js';
import { FlashKeyStore, FlashSequenceStore } from '../../modules/store/flash-stores.js';
import { ATTACKER, C2_CLIENT, DEVICE, FlowWorld, OBSERVER, SERVER, type FlowDevice, type FlowKeys } from './flow-world.js';
import { AsyncCase, check, deepEqual, equal, fail } from './harness.js';

const URL = 'http://updates.test/fw-1.5.0.bin';

function text(b: Uint8Array): string {
  let s = '';
  for (const x of b) s += String.fromCharCode(x);
  return s;
}

/** A firmware image with a fixed pattern: 3000 bytes, sent in chunks of 512. */
function image(n = 3000): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 7 + (i >> 8)) & 0xff);
}

/** A message signed by `key` in the name of `sender`, as bytes on the wire. */
function forge<T extends TypeName>(key: RsaPrivateKey, type: T, seq: bigint, sender: bigint, token: string, fields: FieldsOf<T>): Uint8Array {
  const unsigned = { type, sequenceId: seq, senderId: sender, token: utf8(token), fields } as UnsignedOf<T>;
  return encode(sign(pureCrypto, key, unsigned) as Message);
}

/** Every message on the broker between C2 and devices, decoded, with who published it. */
function wire(w: FlowWorld): { from: string | null; m: Message }[] {
  return w.broker.log.map((p) => ({ from: p.client, m: decode(p.payload) }));
}

function statuses(d: FlowDevice): number[] {
  return d.published().flatMap((m) => (m.type === 'response' ? [m.fields.status] : []));
}

async function world(keys: FlowKeys): Promise<FlowWorld> {
  const w = new FlowWorld(keys);
  await w.start();
  return w;
}

async function joinedDevice(w: FlowWorld, setup: Parameters<FlowWorld['addDevice']>[2] = {}): Promise<FlowDevice> {
  const d = await w.addDevice(DEVICE, w.keys.device, setup);
  equal(await w.during(d.agent.join()), 'joined', 'simple join outcome');
  return d;
}

function noRejections(w: FlowWorld, d: FlowDevice): void {
  deepEqual(d.log.rejections(), [], 'device rejections');
  deepEqual(w.log.rejections(), [], 'C2 rejections');
}

/** Human join, approved: the device shows the engine's secret; returns the joined device. */
async function humanJoin(w: FlowWorld): Promise<FlowDevice> {
  const d = await w.addDevice(DEVICE, w.keys.device);
  const outcome = d.agent.join('human');
  await w.settle();
  const challenges = w.eventsOf('challenge');
  equal(challenges.length, 1, 'challenge events on the C2');
  const c = challenges[0].challenge;
  check(/^[0-9a-f]{32}$/.test(c.secret), `secret ${c.secret} is 32 lowercase hex characters`);
  equal(w.registry.device(DEVICE)?.joinSecret, c.secret, 'secret kept in the registry');
  equal(d.presenter.shown.length, 1, 'challenges shown by the device');
  const shown = d.presenter.shown[0];
  // Exactly the engine's secret reached the presenter: same bytes, so the same pictures.
  equal(text(shown.secret), c.secret, 'secret the presenter received');
  deepEqual(shown.cells, [...c.grid], 'grid on the device vs on the console');
  equal(shown.blink, c.blink, 'blink code on the device vs on the console');
  deepEqual(w.engine.challenge(DEVICE), c, 'engine.challenge()');
  equal(d.presenter.current, shown, 'challenge still shown while the operator decides');
  await w.engine.approveJoin(DEVICE);
  equal(await w.during(outcome), 'joined', 'human join outcome');
  equal(d.presenter.current, null, 'challenge cleared after the join');
  equal(d.presenter.clears, 1, 'clearChallenge calls');
  equal(d.keys.serverId(), SERVER, 'device server');
  equal(w.registry.device(DEVICE)?.state, 'joined', 'registry state');
  equal(w.registry.device(DEVICE)?.joinSecret, null, 'secret dropped after the join');
  deepEqual(
    d.events.filter((e) => e.type.startsWith('challenge') || e.type === 'joined').map((e) => e.type),
    ['challenge_shown', 'challenge_cleared', 'joined'],
    'device events',
  );
  return d;
}

/** Action (handled / unknown / failing), ID request and data both ways on a joined device. */
async function commands(w: FlowWorld, d: FlowDevice, got: [string, Uint8Array][]): Promise<void> {
  equal(await w.during(w.engine.sendAction(DEVICE, 3)), Status.ACTION_SUCCESS, 'action 3 (handled)');
  equal(await w.during(w.engine.sendAction(DEVICE, 4)), Status.ACTION_UNKNOWN, 'action 4 (no handler)');
  equal(await w.during(w.engine.sendAction(DEVICE, 5)), Status.ACTION_FAIL, 'action 5 (handler throws)');
  equal(await w.during(w.engine.requestId(DEVICE)), 'srup-esp32 1.4.2', 'ID request answer');
  const rec = w.registry.device(DEVICE);
  deepEqual(
    [rec?.identification, rec?.firmwareName, rec?.firmwareVersion],
    ['srup-esp32 1.4.2', 'srup-esp32', '1.4.2'],
    'identification in the registry',
  );
  await w.engine.sendData(DEVICE, 'setpoint', 'int32', 21);
  await w.engine.sendData(DEVICE, 'floor', 'int64', -(1n << 63n));
  await w.settle();
  deepEqual(
    got.map(([id, b]) => [id, [...b]]),
    [
      ['setpoint', [21, 0, 0, 0]],
      ['floor', [0, 0, 0, 0, 0, 0, 0, 0x80]],
    ],
    'data the device received',
  );
  equal(decodeData('int64', got[1][1]), -(1n << 63n), 'int64 -2^63 decoded on the device');
  await d.agent.sendData('temp', 'int16', -300);
  await w.settle();
  deepEqual(
    w.eventsOf('data').map((e) => [e.device, e.dataId, [...e.data]]),
    [[DEVICE, 'temp', [0xd4, 0xfe]]],
    'data the C2 received',
  );
}

function commandOptions(got: [string, Uint8Array][], actions: number[] = []) {
  return {
    actions: {
      3: () => (actions.push(3), true),
      5: (): boolean => {
        throw new Error('motor stalled');
      },
    },
    onData: (id: string, b: Uint8Array) => got.push([id, b.slice()]),
  };
}

/** Initiate → staged → activate → restart → 0x10. */
async function updateWithRestart(w: FlowWorld, d: FlowDevice): Promise<void> {
  const img = image();
  d.downloader.serve(URL, img, { chunkSize: 512 });
  const staged = await w.during(w.engine.initiateUpdate(DEVICE, URL, toHex(pureCrypto.sha256(img))));
  deepEqual([staged.state, staged.status], ['staged', Status.UPDATE_SUCCESS], 'update after the download');
  deepEqual(d.downloader.requests, [URL], 'downloads');
  deepEqual(
    d.updater.calls,
    ['bootState', 'begin', 'write:512', 'write:512', 'write:512', 'write:512', 'write:512', 'write:440', 'finish'],
    'updater calls while staging',
  );
  const pending = d.seqs.pendingUpdate();
  deepEqual(pending, { server: SERVER, token: utf8(staged.token), state: 'staged' }, 'pending update on the device');

  const settled = w.engine.activateUpdate(DEVICE);
  await w.settle();
  equal(d.updater.restartRequested, true, 'restart requested by activate');
  equal(d.seqs.pendingUpdate()?.state, 'activating', 'pending update state before the restart');
  equal(w.registry.update(staged.token)?.state, 'activating', 'C2 update state before the restart');

  await d.reboot();
  const confirmed = await w.during(settled);
  deepEqual([confirmed.state, confirmed.status], ['confirmed', Status.ACTIVATE_SUCCESS], 'update after the restart');
  deepEqual(d.updater.running, img, 'running image after the restart');
  equal(d.seqs.pendingUpdate(), null, 'pending update cleared');
  deepEqual(d.updater.calls.slice(-4), ['activate', 'reboot', 'bootState', 'confirm'], 'updater calls around the restart');
  deepEqual(statuses(d).slice(-2), [Status.UPDATE_SUCCESS, Status.ACTIVATE_SUCCESS], 'device responses');
  const answers = d.published().filter((m) => m.type === 'response').slice(-2);
  deepEqual(answers.map((m) => text(m.token)), [staged.token, staged.token], 'both answers carry the update token');
  deepEqual(d.eventsOf('update_confirmed').length, 1, 'update_confirmed events');
}

/** What a forged message must not change on the device. */
function deviceState(d: FlowDevice) {
  return {
    server: d.keys.serverId(),
    serverKey: d.keys.peerKey(SERVER)?.n ?? null,
    attackerKey: d.keys.peerKey(ATTACKER)?.n ?? null,
    accepted: d.seqs.lastAccepted(SERVER),
    sent: d.seqs.lastSent(SERVER),
    pending: d.seqs.pendingUpdate(),
    published: d.published().length,
    downloads: d.downloader.requests.length,
    updater: d.updater.calls.length,
    // A refused message is reported (a 'rejected' event) and changes nothing else.
    events: d.events.filter((e) => e.type !== 'rejected').length,
  };
}

/**
 * The flows with one key set: `keys` gives the server's, the device's, the observer's and an attacker's keys
 * (flowKeys1024, or flowKeys2048 over the vector set); `label` goes into every case name.
 */
export function agentCases(keys: () => FlowKeys, label: string): AsyncCase[] {
  const k = keys;
  const cases: AsyncCase[] = [
    {
      name: 'flow: human-moderated join shows the engine’s exact secret on the device; approved, it joins',
      async run() {
        const w = await world(k());
        const d = await humanJoin(w);
        // Sequence IDs on the wire: one counter per pair, each message one more than the last.
        deepEqual(wire(w).map((x) => x.m.sequenceId), [1n, 2n, 3n], 'sequence IDs');
        deepEqual(
          wire(w).map((x) => [x.from, x.m.type]),
          [
            [d.clientId, 'human_join_request'],
            [C2_CLIENT, 'human_join_response'],
            [C2_CLIENT, 'response'],
          ],
          'messages on the wire',
        );
        noRejections(w, d);
      },
    },
    {
      name: 'flow: a human join the operator refuses leaves the device without a server, challenge cleared',
      async run() {
        const w = await world(k());
        const d = await w.addDevice(DEVICE, w.keys.device, { serverId: null });
        const outcome = d.agent.join('human', undefined, SERVER);
        await w.settle();
        equal(d.presenter.shown.length, 1, 'challenges shown');
        await w.engine.refuseJoin(DEVICE);
        equal(await w.during(outcome), 'refused', 'outcome');
        equal(d.presenter.current, null, 'challenge cleared');
        equal(d.keys.serverId(), null, 'device server');
        equal(w.registry.device(DEVICE)?.state, 'refused', 'registry state');
        noRejections(w, d);
      },
    },
    {
      name: 'flow: timeouts on the clock: an unanswered human join times out on the device, or is failed by the C2',
      async run() {
        const w = await world(k());
        const d = await w.addDevice(DEVICE, w.keys.device, { serverId: null });
        const outcome = d.agent.join('human', undefined, SERVER);
        await w.settle();
        equal(d.presenter.shown.length, 1, 'challenges shown');
        w.clock.advance(119_999);
        await w.settle();
        equal(d.presenter.current !== null, true, 'still shown just before the device’s 120 s limit');
        w.clock.advance(1);
        equal(await w.during(outcome), 'timeout', 'outcome');
        equal(d.presenter.current, null, 'challenge cleared');
        equal(d.keys.serverId(), null, 'device server');
        deepEqual(d.eventsOf('join_failed').map((e) => e.reason), ['timeout'], 'device events');

        // A C2 with a join time limit fails the join first: 0x5F with the challenge's token.
        const w2 = new FlowWorld(k());
        await w2.start({ joinTimeoutMs: 30_000 });
        const d2 = await w2.addDevice(DEVICE, w2.keys.device, { serverId: null });
        const outcome2 = d2.agent.join('human', undefined, SERVER);
        await w2.settle();
        w2.clock.advance(30_000);
        equal(await w2.during(outcome2), 'failed', 'outcome with a C2 time limit');
        equal(w2.registry.device(DEVICE)?.state, 'failed', 'registry state');
        deepEqual(
          wire(w2).map((x) => [x.m.type, x.m.type === 'response' ? x.m.fields.status : null]),
          [
            ['human_join_request', null],
            ['human_join_response', null],
            ['response', Status.JOIN_FAIL],
          ],
          'messages on the wire',
        );
        equal(d2.presenter.current, null, 'challenge cleared');
        noRejections(w2, d2);
      },
    },
    {
      name: 'flow: action (done / unknown / failed), ID request, data both ways including int64 -2^63',
      async run() {
        const w = await world(k());
        const got: [string, Uint8Array][] = [];
        const d = await joinedDevice(w, { agent: commandOptions(got) });
        await commands(w, d, got);
        // join 1-2, three actions 3-8, ID 9-10, data 11-12 (C2), data 13 (device)
        deepEqual(
          wire(w).map((x) => x.m.sequenceId),
          Array.from({ length: 13 }, (_, i) => BigInt(i + 1)),
          'sequence IDs',
        );
        deepEqual(statuses(d), [Status.ACTION_SUCCESS, Status.ACTION_UNKNOWN, Status.ACTION_FAIL], 'device responses');
        equal(d.seqs.lastAccepted(SERVER), 12n, 'device: last accepted from the server');
        equal(d.seqs.lastSent(SERVER), 13n, 'device: last sent to the server');
        deepEqual(w.registry.sequence(DEVICE), { lastSent: 12n, lastAccepted: 13n }, 'C2 counters');
        noRejections(w, d);
      },
    },
    {
      name: 'flow: update: streamed download, digest, activate, restart, confirmation 0x10',
      async run() {
        const w = await world(k());
        const d = await joinedDevice(w);
        await updateWithRestart(w, d);
        equal(d.boots, 2, 'boots');
        noRejections(w, d);
      },
    },
    {
      name: 'flow: update with a digest mismatch is answered 0xFF, discarded, and can never be activated; a 404 is 0xFC',
      async run() {
        const w = await world(k());
        const d = await joinedDevice(w);
        const img = image(1500);
        d.downloader.serve(URL, img, { chunkSize: 1024 });
        const other = img.slice();
        other[700] ^= 1;
        const rec = await w.during(w.engine.initiateUpdate(DEVICE, URL, toHex(pureCrypto.sha256(other))));
        deepEqual([rec.state, rec.status], ['failed', Status.UPDATE_FAIL_DIGEST], 'update record');
        deepEqual(d.updater.calls, ['bootState', 'begin', 'write:1024', 'write:476', 'abort'], 'updater calls');
        equal(d.updater.inactive, null, 'inactive slot');
        equal(d.seqs.pendingUpdate(), null, 'pending update');
        deepEqual(statuses(d), [Status.UPDATE_FAIL_DIGEST], 'device responses');
        deepEqual(
          d.eventsOf('update_failed').map((e) => [e.server, e.status]),
          [[SERVER, Status.UPDATE_FAIL_DIGEST]],
          'device events',
        );
        let refused: unknown = null;
        try {
          await w.engine.activateUpdate(DEVICE);
        } catch (e) {
          refused = e;
        }
        check(refused instanceof C2Error && refused.reason === 'unknown_update', `activate refused by the engine: ${String(refused)}`);
        // A URL the server does not have: HTTP 404, answered 0xFC.
        const missing = await w.during(w.engine.initiateUpdate(DEVICE, 'http://updates.test/none.bin', toHex(pureCrypto.sha256(img))));
        deepEqual([missing.state, missing.status], ['failed', Status.UPDATE_FAIL_HTTP_ERROR], 'update of a missing file');
        deepEqual(d.updater.calls.slice(-2), ['begin', 'abort'], 'updater calls for the missing file');
        // An activate sent anyway (a buggy or older server) is refused by the device: 0x1F, nothing activated.
        const before = d.updater.calls.length;
        w.broker.inject(deviceTopic(DEVICE), forge(w.keys.server, 'activate', 100n, SERVER, rec.token, {}));
        await w.settle();
        deepEqual(
          statuses(d),
          [Status.UPDATE_FAIL_DIGEST, Status.UPDATE_FAIL_HTTP_ERROR, Status.ACTIVATE_FAIL],
          'device responses after the activate',
        );
        equal(d.updater.calls.length, before, 'updater untouched');
        equal(d.updater.restartRequested, false, 'no restart');
        noRejections(w, d);
      },
    },
    {
      name: 'flow: forged, tampered and replayed messages change nothing on the device or the C2',
      async run() {
        const w = await world(k());
        const got: [string, Uint8Array][] = [];
        const actions: number[] = [];
        const d = await joinedDevice(w, { agent: commandOptions(got, actions) });
        equal(await w.during(w.engine.sendAction(DEVICE, 3)), Status.ACTION_SUCCESS, 'genuine action');
        const genuine = w.broker.log.filter((p) => p.client === C2_CLIENT && decode(p.payload).type === 'action')[0].payload;
        const before = deviceState(d);
        const seq = d.seqs.lastAccepted(SERVER) + 1n;
        const atk = w.keys.attacker;
        const to = deviceTopic(DEVICE);
        // Signed with the wrong key in the server's name: action, terminate, deregister, initiate.
        w.broker.inject(to, forge(atk, 'action', seq, SERVER, 'f1', { actionId: 3 }));
        w.broker.inject(to, forge(atk, 'terminate_command', seq, SERVER, 'f2', {}));
        w.broker.inject(to, forge(atk, 'deregister_command', seq, SERVER, 'f3', {}));
        w.broker.inject(to, forge(atk, 'initiate', seq, SERVER, 'f4', { url: utf8('http://evil.test/x'), digest: utf8('0'.repeat(64)) }));
        // An unknown sender naming itself the device's new server.
        w.broker.inject(to, forge(atk, 'join_command', 1n, ATTACKER, 'f5', { deviceId: DEVICE }));
        // The genuine action with its fields changed and its signature kept.
        const m = decode(genuine);
        check(m.type === 'action', 'captured an action');
        w.broker.inject(to, encode({ ...m, sequenceId: seq + 5n, fields: { actionId: 5 } } as Message));
        // The genuine action again, byte for byte.
        w.broker.inject(to, genuine);
        await w.settle();
        deepEqual(
          d.log.rejections(),
          ['bad_signature', 'bad_signature', 'bad_signature', 'bad_signature', 'unknown_sender', 'bad_signature', 'replay'],
          'device rejections, one per message',
        );
        deepEqual(
          d.events.filter((e) => e.type === 'rejected'),
          ['bad_signature', 'bad_signature', 'bad_signature', 'bad_signature', 'unknown_sender', 'bad_signature', 'replay'].map((reason) => ({ type: 'rejected', reason })),
          'device rejected events, with the reason logged',
        );
        deepEqual(deviceState(d), before, 'device state');
        deepEqual(actions, [3], 'action handler runs');

        // The same against the C2: a response in the device's name signed by the attacker.
        const c2Before = { seq: w.registry.sequence(DEVICE), device: w.registry.device(DEVICE), audit: w.registry.audit({}).length };
        w.broker.inject(to, forge(atk, 'response', 50n, DEVICE, 'f6', { status: Status.ACTION_SUCCESS }));
        await w.settle();
        deepEqual(
          w.eventsOf('rejected').map((e) => [e.reason, e.sender]),
          [
            ['unknown_sender', ATTACKER],
            ['bad_signature', DEVICE],
          ],
          'C2 rejections',
        );
        deepEqual(
          { seq: w.registry.sequence(DEVICE), device: w.registry.device(DEVICE), audit: w.registry.audit({}).length },
          c2Before,
          'C2 state',
        );
        // And the device still obeys its real server.
        equal(await w.during(w.engine.sendAction(DEVICE, 3)), Status.ACTION_SUCCESS, 'genuine action afterwards');
        deepEqual(actions, [3, 3], 'action handler runs');
      },
    },
    {
      name: 'flow: observed join: the observer device confirms what the joining device shows',
      async run() {
        const w = await world(k());
        let joining: FlowDevice | null = null;
        const observer = await w.addDevice(OBSERVER, w.keys.observer, {
          agent: {
            observe: (id: bigint) => (id === DEVICE && joining !== null ? (joining.presenter.current?.secret ?? null) : null),
          },
        });
        equal(await w.during(observer.agent.join()), 'joined', 'observer join');
        joining = await w.addDevice(DEVICE, w.keys.device);
        equal(await w.during(joining.agent.join('observed', OBSERVER)), 'joined', 'observed join outcome');
        deepEqual(
          observer.eventsOf('observation').map((e) => [e.joiningDevice, e.status]),
          [[DEVICE, Status.OBSERVED_JOIN_VALID]],
          'observer verdict',
        );
        equal(joining.presenter.shown.length, 1, 'challenges shown by the joining device');
        equal(text(joining.presenter.shown[0].secret), w.eventsOf('challenge')[0].challenge.secret, 'secret shown');
        equal(joining.presenter.current, null, 'challenge cleared');
        equal(w.registry.device(DEVICE)?.state, 'joined', 'registry state');
        noRejections(w, joining);
      },
    },
    {
      name: 'flow: terminate and deregister from the C2, resign from the device',
      async run() {
        const w = await world(k());
        const d = await joinedDevice(w);
        await w.engine.terminate(DEVICE);
        await w.settle();
        equal(d.keys.serverId(), null, 'server after terminate');
        equal(await w.during(d.agent.join(undefined, undefined, SERVER)), 'joined', 'join again');
        await d.agent.resign();
        await w.settle();
        equal(d.keys.serverId(), null, 'server after resign');
        check(d.keys.peerKey(SERVER) !== null, 'server key kept after resign');
        equal(w.registry.device(DEVICE)?.state, 'resigned', 'registry after resign');
        equal(await w.during(d.agent.join(undefined, undefined, SERVER)), 'joined', 'join again');
        await w.engine.deregister(DEVICE);
        await w.settle();
        equal(d.keys.serverId(), null, 'server after deregister');
        equal(d.keys.peerKey(SERVER), null, 'server key after deregister');
        equal(w.registry.device(DEVICE)?.state, 'deregistered', 'registry after deregister');
        noRejections(w, d);
      },
    },
    ...flashCases(k),
    {
      name: 'flow: one device from human join through commands to an update with restart',
      async run() {
        const w = await world(k());
        const got: [string, Uint8Array][] = [];
        const d = await w.addDevice(DEVICE, w.keys.device, { agent: commandOptions(got) });
        const outcome = d.agent.join('human');
        await w.settle();
        const c = w.eventsOf('challenge')[0].challenge;
        equal(text(d.presenter.current?.secret ?? new Uint8Array(0)), c.secret, 'secret shown');
        await w.engine.approveJoin(DEVICE);
        equal(await w.during(outcome), 'joined', 'join outcome');
        await commands(w, d, got);
        await updateWithRestart(w, d);
        noRejections(w, d);
      },
    },
  ];
  return cases.map((c) => ({ name: `${c.name} [${label}]`, run: () => c.run() }));
}

function flashCases(k: () => FlowKeys): AsyncCase[] {
  return [
    {
      name: 'flow on flash stores: commands, restart; identity and counters come back from flash, a replay is refused',
      async run() {
        const w = await world(k());
        const got: [string, Uint8Array][] = [];
        const actions: number[] = [];
        const d = await w.addDevice(DEVICE, w.keys.device, { flash: true, serverId: null, agent: commandOptions(got, actions) });
        equal(d.keys.serverId(), null, 'server before the join');
        equal(await w.during(d.agent.join('simple', undefined, SERVER)), 'joined', 'join outcome');
        equal(await w.during(w.engine.sendAction(DEVICE, 3)), Status.ACTION_SUCCESS, 'action');
        const genuine = w.broker.log.filter((p) => p.client === C2_CLIENT && decode(p.payload).type === 'action')[0].payload;
        const flash = d.flash;
        if (flash === null) return fail('no flash');
        // What a restart will read: a fresh key store and sequence store over the same partition.
        const ks = new FlashKeyStore(flash);
        equal(ks.serverId(), SERVER, 'server on flash');
        equal(ks.deviceId, DEVICE, 'device id on flash');
        equal(ks.privateKey.n, w.keys.device.n, 'private key on flash');
        const ss = new FlashSequenceStore(flash);
        deepEqual([ss.lastAccepted(SERVER), ss.lastSent(SERVER)], [3n, 4n], 'counters on flash');

        await d.reboot();
        equal(d.boots, 2, 'boots');
        equal(d.keys.serverId(), SERVER, 'server after the restart');
        w.broker.inject(deviceTopic(DEVICE), genuine);
        await w.settle();
        deepEqual(d.log.rejections(), ['replay'], 'the old action after the restart');
        deepEqual(actions, [3], 'action handler runs');
        equal(await w.during(w.engine.sendAction(DEVICE, 3)), Status.ACTION_SUCCESS, 'new action after the restart');
        deepEqual(actions, [3, 3], 'action handler runs');
        deepEqual([d.seqs.lastAccepted(SERVER), d.seqs.lastSent(SERVER)], [5n, 6n], 'counters after the restart');
        deepEqual(w.log.rejections(), [], 'C2 rejections');
      },
    },
    {
      name: 'flow on flash stores: update with restart; the pending update lives in the counter log',
      async run() {
        const w = await world(k());
        const d = await joinedDevice(w, { flash: true });
        await updateWithRestart(w, d);
        const flash = d.flash;
        if (flash === null) return fail('no flash');
        equal(new FlashSequenceStore(flash).pendingUpdate(), null, 'pending update on flash after the confirmation');
        noRejections(w, d);
      },
    },
  ];
}
