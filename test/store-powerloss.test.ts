/**
 * Power loss at every write and every erase, including torn writes (only a prefix of the bytes lands) and
 * interrupted erases (part of the block erased, or the block left as noise). After every cut the device
 * restarts from flash and must read either the state before the interrupted change or the state after it:
 * never an older record, never a counter going backwards, never a lost value.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parsePrivateKeyPem, privateKeyToDer } from '../crypto/keys.js';
import { CounterLog } from '../modules/store/counter-log.js';
import { MemoryFlash, type StoreLayout } from '../modules/store/flash.js';
import { RecordSlots, DEFAULT_PRESENTER, type DeviceRecord } from '../modules/store/record.js';
import {
  CutFlash as PortableCutFlash,
  ERASE_TEARS,
  PEERS,
  PowerLoss,
  WRITE_TEARS,
  applyOp,
  type CounterOp,
  type Tear,
} from './portable/power-loss.js';

/** Rng for noise; deterministic. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
}

/**
 * The power-cut flash of test/portable/power-loss.ts (it also checks that the stores never program a byte that
 * is not erased), with an erase torn as 'noise' filled from rng(cutAt + 1).
 */
class CutFlash extends PortableCutFlash {
  constructor(inner: MemoryFlash, cutAt: number, tear: Tear) {
    const random = rng(cutAt + 1);
    super(inner, cutAt, tear, (n) => Uint8Array.from({ length: n }, () => (random() * 256) | 0));
  }
}

// ---------------------------------------------------------------------------------------------- key store

const KEYS = join(__dirname, 'data', 'srup-vectors', 'keys');
const privateKey = privateKeyToDer(parsePrivateKeyPem(readFileSync(join(KEYS, 'signer-1.private.pem'), 'utf8')));

function record(n: number): DeviceRecord {
  return {
    deviceId: 0x4a0f3b2c1d0e4f56n,
    privateKey,
    serverId: BigInt(1000 + n),
    peers: [{ id: BigInt(1000 + n), der: Uint8Array.from({ length: 294 }, (_, i) => (i + n) & 0xff) }],
    brokerUrl: `mqtts://broker-${n}.example:8883`,
    ca: n % 2 ? null : new Uint8Array(500 + n).fill(n),
    wifi: null,
    presenter: DEFAULT_PRESENTER,
  };
}

const RECORD_LAYOUT: StoreLayout = { recordSlotBlocks: 1, logFirstBlock: 2, logBlocks: 2 };
const SAVES = 6;

describe('key-store record under power loss', () => {
  // Ops of one save: erase + body write + header write = 3. Count them from a clean run.
  const clean = new CutFlash(new MemoryFlash(4 * 4096), -1, 'none');
  for (let i = 0; i <= SAVES; i++) new RecordSlots(clean, RECORD_LAYOUT).save(record(i));
  const totalOps = clean.ops;

  test(`every one of the ${totalOps} operations, every tear: the last good record stays readable`, () => {
    expect(totalOps).toBe(3 * (SAVES + 1));
    let cuts = 0;
    for (let cutAt = 3; cutAt < totalOps; cutAt++) {
      for (const tear of cutAt % 3 === 0 ? ERASE_TEARS : WRITE_TEARS) {
        const mem = new MemoryFlash(4 * 4096);
        const f = new CutFlash(mem, cutAt, tear);
        let done = -1;
        let inProgress = -1;
        try {
          for (let i = 0; i <= SAVES; i++) {
            inProgress = i;
            new RecordSlots(f, RECORD_LAYOUT).save(record(i));
            done = i;
          }
        } catch (e) {
          if (!(e instanceof PowerLoss)) throw e;
          cuts++;
        }
        // Restart.
        const got = new RecordSlots(mem, RECORD_LAYOUT).load();
        expect(got).not.toBeNull();
        expect([record(done), record(inProgress)]).toContainEqual(got);
        // The next save after the restart works and wins.
        const slots = new RecordSlots(mem, RECORD_LAYOUT);
        slots.load();
        slots.save(record(77));
        expect(new RecordSlots(mem, RECORD_LAYOUT).load()).toEqual(record(77));
      }
    }
    expect(cuts).toBeGreaterThan(60);
  });
});

// ---------------------------------------------------------------------------------------------- counter log

type Op = CounterOp;

/** A deterministic workload: mostly counter increments over three peers, some pending updates and forgets. */
function workload(n: number): Op[] {
  const r = rng(42);
  const acc = new Map<bigint, bigint>();
  const sent = new Map<bigint, bigint>();
  const ops: Op[] = [];
  for (let i = 0; i < n; i++) {
    const peer = BigInt(1 + Math.floor(r() * 3)) * 0x1111111111111111n;
    const x = r();
    if (x < 0.45) {
      const v = (acc.get(peer) ?? 0n) + 1n + BigInt(Math.floor(r() * 3));
      acc.set(peer, v);
      ops.push({ kind: 'accepted', peer, seq: v });
    } else if (x < 0.9) {
      const v = (sent.get(peer) ?? 0n) + 1n;
      sent.set(peer, v);
      ops.push({ kind: 'sent', peer, seq: v });
    } else if (x < 0.97) {
      const none = r() < 0.3;
      ops.push({
        kind: 'pending',
        p: none ? null : { server: peer, token: Uint8Array.from({ length: 1 + (i % 40) }, (_, k) => (k * i) & 0xff), state: r() < 0.5 ? 'staged' : 'activating' },
      });
    } else {
      acc.delete(peer);
      sent.delete(peer);
      ops.push({ kind: 'forget', peer });
    }
  }
  return ops;
}

interface Model {
  acc: Map<bigint, bigint>;
  sent: Map<bigint, bigint>;
  pending: { server: bigint; token: Uint8Array; state: string } | null;
}

function modelAfter(ops: Op[], count: number): Model {
  const m: Model = { acc: new Map(), sent: new Map(), pending: null };
  for (const op of ops.slice(0, count)) {
    if (op.kind === 'accepted') m.acc.set(op.peer, op.seq);
    else if (op.kind === 'sent') m.sent.set(op.peer, op.seq);
    else if (op.kind === 'forget') {
      m.acc.delete(op.peer);
      m.sent.delete(op.peer);
    } else if (op.kind === 'pending') m.pending = op.p;
  }
  return m;
}

function observe(log: CounterLog): unknown {
  return {
    counters: PEERS.map((p) => [log.counters(p).accepted, log.counters(p).sent]),
    pending: log.pending === null ? null : { server: log.pending.server, token: Array.from(log.pending.token), state: log.pending.state },
  };
}

function expected(m: Model): unknown {
  return {
    counters: PEERS.map((p) => [m.acc.get(p) ?? 0n, m.sent.get(p) ?? 0n]),
    pending: m.pending === null ? null : { server: m.pending.server, token: Array.from(m.pending.token), state: m.pending.state },
  };
}

// Small log (3 blocks of 4096) so that the workload wraps the ring several times.
const LOG_LAYOUT: StoreLayout = { recordSlotBlocks: 1, logFirstBlock: 2, logBlocks: 3 };
const OPS = workload(1000);
/** EXPECTED[k]: what the log must hold after the first k operations. */
const EXPECTED = OPS.map((_, k) => expected(modelAfter(OPS, k))).concat([expected(modelAfter(OPS, OPS.length))]);

describe('counter log under power loss', () => {
  const cleanMem = new MemoryFlash(5 * 4096);
  const clean = new CutFlash(cleanMem, -1, 'none');
  const cleanLog = new CounterLog(clean, LOG_LAYOUT);
  // Before each operation: the flash contents and the number of flash operations so far, so that a cut run
  // can start from there (a restart from that image reads the same state the running log had).
  const before: { image: Uint8Array; ops: number }[] = [];
  for (const op of OPS) {
    before.push({ image: cleanMem.bytes.slice(), ops: clean.ops });
    applyOp(cleanLog, op);
  }
  const totalOps = clean.ops;

  test('the workload wraps the ring several times and ends with exact values', () => {
    expect(cleanMem.erases).toBeGreaterThan(6);
    expect(observe(new CounterLog(cleanMem, LOG_LAYOUT))).toEqual(expected(modelAfter(OPS, OPS.length)));
  });

  test(`every one of the flash operations, every tear: state is before or after the cut change, then continues exactly`, () => {
    let cuts = 0;
    for (let cutAt = 0; cutAt < totalOps; cutAt++) {
      const isErase = clean.kinds[cutAt] === 'erase';
      for (const tear of isErase ? ERASE_TEARS : WRITE_TEARS) {
        // The operation (of the workload) during which flash operation `cutAt` happens.
        let i = 0;
        while (i + 1 < OPS.length && before[i + 1].ops <= cutAt) i++;
        const mem = new MemoryFlash(5 * 4096, 4096, before[i].image);
        const f = new CutFlash(mem, cutAt - before[i].ops, tear);
        const log = new CounterLog(f, LOG_LAYOUT);
        try {
          for (; i < OPS.length; i++) applyOp(log, OPS[i]);
          throw new Error('the cut did not happen');
        } catch (e) {
          if (!(e instanceof PowerLoss)) throw e;
          cuts++;
        }
        // Restart: before or after op i, nothing else.
        const after = new CounterLog(mem, LOG_LAYOUT);
        const seen = observe(after);
        expect([EXPECTED[i], EXPECTED[Math.min(i + 1, OPS.length)]]).toContainEqual(seen);
        // Carry on (without further cuts) through the next 40 operations, re-doing the interrupted one.
        const checked = new CutFlash(mem, -1, 'none');
        const resumed = new CounterLog(checked, LOG_LAYOUT);
        const end = Math.min(OPS.length, i + 40);
        for (let k = i; k < end; k++) applyOp(resumed, OPS[k]);
        expect(observe(new CounterLog(mem, LOG_LAYOUT))).toEqual(EXPECTED[end]);
      }
    }
    expect(cuts).toBeGreaterThan(totalOps * 3);
  });
});
