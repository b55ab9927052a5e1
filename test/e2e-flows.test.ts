/**
 * Every SRUP flow end to end over a real Mosquitto, plain and with TLS (client certificates required): the C2
 * engine in this process with an MqttTransport, device agents over the Node host with configuration
 * directories written by `srup device init`, update images from a local HTTP server.
 */
import { createHash, randomBytes as nodeRandomBytes } from 'node:crypto';
import fs from 'node:fs';
import { decodeData, encodeData } from '../modules/srup/data.js';
import { utf8DecodeOrNull } from '../modules/srup/bytes.js';
import { Status } from '../modules/srup/schema.js';
import { E2EWorld, LocalDevice, until, type DeviceDir } from './support/e2e-world.js';

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const text = (b: Uint8Array | null | undefined) => (b ? utf8DecodeOrNull(b) : null);

describe.each([
  ['plain MQTT', false],
  ['MQTT over TLS', true],
])('end to end over %s', (_label, tls) => {
  let w: E2EWorld;
  const dirs: Record<string, DeviceDir> = {};
  const dev: Record<string, LocalDevice> = {};
  const dataSeen: { device: string; dataId: string; bytes: Uint8Array }[] = [];
  const actionsRun: number[] = [];
  let observerSeesSomethingElse = false;

  const agentOptions = (name: string) => ({
    actions: {
      1: () => {
        actionsRun.push(1);
        return true;
      },
      2: () => false,
    },
    onData: (dataId: string, bytes: Uint8Array) => dataSeen.push({ device: name, dataId, bytes }),
    // An observer "sees" what the joining device shows (its camera pointed at the LED matrix).
    observe: (joining: bigint) =>
      observerSeesSomethingElse ? new TextEncoder().encode('f'.repeat(32)) : (w.shownSecrets.get(joining) ?? null),
  });

  beforeAll(async () => {
    w = await E2EWorld.start({ tls });
    for (const name of ['a', 'b', 'c', 'd', 'e']) dirs[name] = w.newDevice(name);
    for (const name of ['a', 'b', 'c', 'd', 'e']) dev[name] = await w.startAgent(dirs[name], agentOptions(name));
  });
  afterAll(async () => {
    await w?.dispose();
  });

  test('simple join: join_request answered 0x50, the device is joined on both sides', async () => {
    await expect(dev.a.agent.join('simple')).resolves.toBe('joined');
    expect(w.engine.device(dirs.a.id)?.state).toBe('joined');
    expect(w.engine.device(dirs.a.id)?.joinKind).toBe('simple');
    expect(dev.a.agent.serverId).toBe(w.serverId);
    expect(dev.a.eventsOf('joined')).toEqual([{ type: 'joined', server: w.serverId, via: 'simple' }]);
  });

  test("human-moderated join: the device's presenter gets exactly the engine's secret; the operator approves", async () => {
    const joined = dev.b.agent.join('human');
    await until('the challenge', () => w.eventsOf('challenge').some((e) => e.device === dirs.b.id));
    await until('the device shows it', () => dev.b.presenter.shown.length === 1);
    const challenge = w.eventsOf('challenge').find((e) => e.device === dirs.b.id)!.challenge;
    expect(challenge.secret).toMatch(/^[0-9a-f]{32}$/);
    expect(text(dev.b.presenter.shown[0])).toBe(challenge.secret);
    expect(w.engine.challenge(dirs.b.id)?.secret).toBe(challenge.secret);
    expect(w.engine.device(dirs.b.id)?.state).toBe('pending');
    await w.engine.approveJoin(dirs.b.id);
    await expect(joined).resolves.toBe('joined');
    expect(w.engine.device(dirs.b.id)?.state).toBe('joined');
    expect(dev.b.presenter.current).toBeNull();
  });

  test('observed join: a real observer agent compares what it sees with the secret sent to it (0x60 → joined)', async () => {
    const joined = dev.c.agent.join('observed', dirs.a.id);
    await expect(joined).resolves.toBe('joined');
    expect(w.eventsOf('observation_result')).toContainEqual({
      type: 'observation_result',
      device: dirs.c.id,
      observer: dirs.a.id,
      status: Status.OBSERVED_JOIN_VALID,
    });
    expect(dev.a.eventsOf('observation')).toContainEqual({
      type: 'observation',
      server: w.serverId,
      joiningDevice: dirs.c.id,
      status: Status.OBSERVED_JOIN_VALID,
    });
    expect(w.engine.device(dirs.c.id)?.state).toBe('joined');
  });

  test('observed join where the observer sees something else: 0x6E, the join is refused', async () => {
    // The observer "sees" a different value than the one the server sent it.
    observerSeesSomethingElse = true;
    const joined = dev.d.agent.join('observed', dirs.a.id);
    await expect(joined).resolves.toBe('refused');
    observerSeesSomethingElse = false;
    expect(w.eventsOf('observation_result').find((e) => e.device === dirs.d.id)?.status).toBe(Status.OBSERVED_JOIN_INVALID);
    expect(dev.d.presenter.shown).toHaveLength(1);
    expect(w.engine.device(dirs.d.id)?.state).toBe('refused');
    expect(dev.d.agent.serverId).toBe(w.serverId); // still its configured server: it may try again
    // ...and then a simple join is accepted.
    await expect(dev.d.agent.join('simple')).resolves.toBe('joined');
  });

  test('join command: the server makes the device its own; the device then answers its ID request', async () => {
    await w.engine.sendJoinCommand(dirs.e.id);
    await until('the device joined', () => dev.e.eventsOf('joined').length === 1);
    expect(dev.e.eventsOf('joined')[0]).toEqual({ type: 'joined', server: w.serverId, via: 'join_command' });
    await expect(w.engine.requestId(dirs.e.id)).resolves.toBe('e2e-fw 1.2.3');
  });

  test('action: 0x20 done, 0x2F failed, 0x2E no such action', async () => {
    const before = actionsRun.length;
    await expect(w.engine.sendAction(dirs.a.id, 1)).resolves.toBe(Status.ACTION_SUCCESS);
    await expect(w.engine.sendAction(dirs.a.id, 2)).resolves.toBe(Status.ACTION_FAIL);
    await expect(w.engine.sendAction(dirs.a.id, 9)).resolves.toBe(Status.ACTION_UNKNOWN);
    expect(actionsRun.length - before).toBe(1);
  });

  test('data both ways', async () => {
    await w.engine.sendData(dirs.a.id, 'setpoint', 'int32', -5);
    await until('data at the device', () => dataSeen.some((d) => d.device === 'a' && d.dataId === 'setpoint'));
    const got = dataSeen.find((d) => d.device === 'a' && d.dataId === 'setpoint')!;
    expect(decodeData('int32', got.bytes)).toBe(-5);

    await dev.a.agent.sendData('temperature', 'double', 21.5);
    await until('data at the server', () => w.eventsOf('data').some((e) => e.device === dirs.a.id && e.dataId === 'temperature'));
    const e = w.eventsOf('data').find((x) => x.device === dirs.a.id && x.dataId === 'temperature')!;
    expect(Array.from(e.data)).toEqual(Array.from(encodeData('double', 21.5)));
  });

  test('ID request: the device answers with its firmware name and version, recorded in the registry', async () => {
    await expect(w.engine.requestId(dirs.a.id)).resolves.toBe('e2e-fw 1.2.3');
    const rec = w.engine.device(dirs.a.id)!;
    expect([rec.identification, rec.firmwareName, rec.firmwareVersion]).toEqual(['e2e-fw 1.2.3', 'e2e-fw', '1.2.3']);
  });

  test('update: download from HTTP, 0x00, activate, restart into the new image, 0x10 confirmation', async () => {
    const image = new Uint8Array(nodeRandomBytes(300_000));
    w.http.serve('/fw-flows.bin', image);
    const staged = await w.engine.initiateUpdate(dirs.a.id, w.http.url('/fw-flows.bin'), sha256(image));
    expect([staged.state, staged.status]).toEqual(['staged', Status.UPDATE_SUCCESS]);

    const confirmed = w.engine.activateUpdate(staged.token);
    await until('the device asks to restart', () => dev.a.restartRequested);
    await dev.a.reboot();
    const done = await confirmed;
    expect([done.state, done.status]).toEqual(['confirmed', Status.ACTIVATE_SUCCESS]);
    expect(dev.a.updater().bootState()).toBe('normal');
    expect(new Uint8Array(fs.readFileSync(dev.a.updater().activeImage()))).toEqual(image);
    expect(dev.a.eventsOf('update_confirmed')).toHaveLength(1);
    // The rebooted device still obeys.
    await expect(w.engine.sendAction(dirs.a.id, 1)).resolves.toBe(Status.ACTION_SUCCESS);
  });

  test('terminate: the device forgets its server; the engine records it', async () => {
    await w.engine.terminate(dirs.e.id);
    await until('terminated', () => dev.e.eventsOf('terminated').length === 1);
    expect(dev.e.agent.serverId).toBeNull();
    expect(w.engine.device(dirs.e.id)?.state).toBe('terminated');
  });

  test("deregister command: the device drops the server's key", async () => {
    await w.engine.deregister(dirs.c.id);
    await until('deregistered', () => dev.c.eventsOf('deregistered').length === 1);
    expect(dev.c.agent.serverId).toBeNull();
    expect(dev.c.host.keys.peerKey(w.serverId)).toBeNull();
    expect(w.engine.device(dirs.c.id)?.state).toBe('deregistered');
  });

  test('deregister request from the device: the engine removes it', async () => {
    await dev.b.agent.deregister();
    await until('removed', () => w.eventsOf('removed').some((e) => e.device === dirs.b.id));
    expect(w.eventsOf('removed').find((e) => e.device === dirs.b.id)).toEqual({
      type: 'removed',
      device: dirs.b.id,
      reason: 'deregistered',
      by: 'device',
    });
    expect(w.engine.device(dirs.b.id)?.state).toBe('deregistered');
    expect(dev.b.host.keys.peerKey(w.serverId)).toBeNull();
  });

  test('resign request from the device: the engine removes it; the device keeps the key', async () => {
    await dev.d.agent.resign();
    await until('removed', () => w.eventsOf('removed').some((e) => e.device === dirs.d.id));
    expect(w.engine.device(dirs.d.id)?.state).toBe('resigned');
    expect(dev.d.agent.serverId).toBeNull();
    expect(dev.d.host.keys.peerKey(w.serverId)).not.toBeNull();
    await expect(w.engine.sendAction(dirs.d.id, 1)).rejects.toMatchObject({ reason: 'not_joined' });
  });
});
