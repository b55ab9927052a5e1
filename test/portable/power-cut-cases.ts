/**
 * Every answer delivered across power cuts, on the firmware's flash stores: the device agent on a `srup`
 * partition that loses power at random flash operations (test/portable/power-loss.ts, torn writes included)
 * while the C2 engine sends it a burst of 200 commands, against a broker that delivers unacknowledged messages
 * again after a reconnect. After each cut the device boots again from what the partition holds.
 */
import { toHex } from '../../modules/srup/bytes.js';
import { decode } from '../../modules/srup/codec.js';
import type { Message } from '../../modules/srup/schema.js';
import { deviceTopic } from '../../modules/srup/topics.js';
import type { Flash } from '../../modules/store/flash.js';
import { MemoryBroker, PROMISE_JOBS } from './broker.js';
import { ChallengeRecorder } from './fakes.js';
import { C2_CLIENT, DEVICE, SERVER, SimWorld, type FlowKeys, type SimDevice } from './flow-world.js';
import { type AsyncCase, check, deepEqual, equal, fail } from './harness.js';
import { CutFlash, PowerLoss, WRITE_TEARS } from './power-loss.js';
import { Prng, seededRandomBytes } from './prng.js';

/** A flash that loses power at its `cutAt`-th operation and is dead from then on: every later operation fails too. */
class DyingFlash implements Flash {
  dead = false;
  constructor(
    private readonly inner: CutFlash,
    private readonly onDeath: () => void,
  ) {}

  get byteLength(): number {
    return this.inner.byteLength;
  }

  get blockSize(): number {
    return this.inner.blockSize;
  }

  read(offset: number, length: number): Uint8Array {
    if (this.dead) throw new PowerLoss();
    return this.inner.read(offset, length);
  }

  write(offset: number, bytes: Uint8Array): void {
    this.guard(() => this.inner.write(offset, bytes));
  }

  eraseBlock(index: number): void {
    this.guard(() => this.inner.eraseBlock(index));
  }

  private guard(op: () => void): void {
    if (this.dead) throw new PowerLoss();
    try {
      op();
    } catch (e) {
      if (e instanceof PowerLoss) {
        this.dead = true;
        this.onDeath();
      }
      throw e;
    }
  }
}

export interface PowerCutFigures {
  cuts: number;
  unanswered: number;
  answeredTwice: number;
  replaysAccepted: number;
  resent: number;
  copiesRecognised: number;
}

/** Runs the burst; returns the figures (the case checks them; a benchmark or a log may print them). */
export async function powerCutBurst(keys: FlowKeys, seed: number, commands = 200): Promise<PowerCutFigures> {
  const prng = new Prng(seed);
  const broker = new MemoryBroker(PROMISE_JOBS, { redeliverUnacked: true });
  const w = new SimWorld(keys, {
    serverId: SERVER,
    broker,
    presenter: () => new ChallengeRecorder(),
    random: seededRandomBytes,
    deviceSeed: (id, boots) => Number(id & 0xffffn) * 31 + boots,
  });
  await w.startEngine({ requestTimeoutMs: 1e12 });

  let cuts = 0;
  let armed = false; // the first boot runs without cuts until the device has joined
  let current: DyingFlash | null = null;
  const d: SimDevice = await w.addDevice(DEVICE, keys.device, {
    flash: true,
    serverId: null,
    flashAtBoot: (partition, device) => {
      const cutAt = armed ? prng.int(2, 60) : -1;
      const tear = WRITE_TEARS[prng.int(0, WRITE_TEARS.length - 1)];
      current = new DyingFlash(new CutFlash(partition, cutAt, tear), () => {
        cuts++;
        // The power is gone: the device's connection ends with it (no PUBACK for what it was handling).
        void device.transport.close();
      });
      return current;
    },
  });
  const alive = (): boolean => current === null || !current.dead;
  /** Lets everything in flight happen; a device that lost power boots again (with a new cut ahead). */
  const run = async (): Promise<void> => {
    for (let round = 0; round < 200; round++) {
      await broker.settle();
      await w.engine.idle();
      if (!alive()) {
        d.boot();
        continue;
      }
      await d.agent.idle();
      await broker.settle();
      if (alive() && !broker.busy) return;
    }
    fail('the burst never settled');
  };

  const joined = d.agent.join('simple', undefined, SERVER);
  await run();
  equal(await joined, 'joined', 'join');
  armed = true;
  d.boot(); // a restart: from now on the power may go at any flash operation
  await run();

  const answers = new Map<number, unknown>();
  const requests: Promise<void>[] = [];
  for (let i = 0; i < commands; i++) {
    const req: Promise<unknown> = i % 4 === 3 ? w.engine.requestId(DEVICE) : w.engine.sendAction(DEVICE, i % 256);
    requests.push(req.then((v) => void answers.set(i, v), () => undefined));
    if (prng.int(0, 3) === 0) await run();
  }
  await run();
  // The last life runs to the end without a cut: what the device still owes goes out.
  armed = false;
  if (!alive()) d.boot();
  await run();
  // A request still waiting now was never answered (its timeout is out of reach: it would wait for ever).
  void requests;

  // Every sequence ID the device published, across its lives, strictly increasing.
  const fromDevice = broker.log.filter((p) => p.client === d.clientId).map((p) => decode(p.payload));
  for (let i = 1; i < fromDevice.length; i++) {
    check(fromDevice[i].sequenceId > fromDevice[i - 1].sequenceId, () => `seed ${seed}: sequence ID ${fromDevice[i].sequenceId} after ${fromDevice[i - 1].sequenceId}`);
  }
  const perToken = new Map<string, number>();
  for (const m of fromDevice) perToken.set(toHex(m.token), (perToken.get(toHex(m.token)) ?? 0) + 1);
  // A token on the wire twice: an answer sent again after a cut whose first copy had reached the broker. The
  // server recognised each such copy.
  const copies = [...perToken.values()].reduce((n, c) => n + c - 1, 0);
  equal(w.eventsOf('duplicate').length, copies, 'copies recognised by the server');

  // As the server saw it: one response per action token, one identification per ID request.
  const responses = new Map<string, number>();
  for (const e of w.eventsOf('response')) responses.set(toHex(e.token), (responses.get(toHex(e.token)) ?? 0) + 1);
  const answeredTwice = [...responses.values()].filter((n) => n > 1).length;
  equal(w.eventsOf('identification').length, commands / 4, 'one identification per ID request');

  // Every command the server ever sent, again: the device takes none of them.
  const commandsSent: Message[] = [];
  const rejectedBefore = d.log.rejections().length;
  for (const p of broker.log.filter((q) => q.client === C2_CLIENT)) {
    commandsSent.push(decode(p.payload));
    broker.inject(deviceTopic(DEVICE), p.payload);
  }
  await run();
  const reasons = d.log.rejections().slice(rejectedBefore);
  const replaysAccepted = commandsSent.length - reasons.length;
  // Every one is refused as a replay (the sequence ID is checked before anything else that needs RSA).
  deepEqual(reasons, commandsSent.map(() => 'replay'), 'every replay refused');

  return {
    cuts,
    unanswered: commands - answers.size,
    answeredTwice,
    replaysAccepted,
    resent: d.eventsOf('answer_resent').length,
    copiesRecognised: w.eventsOf('duplicate').length,
  };
}

export function powerCutCases(k: () => FlowKeys, label: string, seeds: readonly number[] = [1, 2, 3]): AsyncCase[] {
  return seeds.map((seed) => ({
    name: `power cuts at random flash operations during a burst of 200 commands (seed ${seed}): 0 unanswered, 0 answered twice, 0 replays [${label}]`,
    async run() {
      const f = await powerCutBurst(k(), seed);
      check(f.cuts >= 5, `seed ${seed}: only ${f.cuts} power cuts`);
      deepEqual([f.unanswered, f.answeredTwice, f.replaysAccepted], [0, 0, 0], `seed ${seed}: unanswered, answered twice, replays accepted`);
    },
  }));
}
