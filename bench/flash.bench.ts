/**
 * Flash wear of the counter log: erases per 10,000 counter updates, on the `srup` partition's default layout
 * (12 log blocks of 4096 bytes), for the agent's usual pattern (one peer: an accepted and a sent counter
 * moving together) and for three peers. Part of `npm run bench` (`npm run bench -- --only flash`).
 */
import { CounterLog } from '../modules/store/counter-log.js';
import { DEFAULT_LAYOUT, MemoryFlash, SRUP_PARTITION_SIZE } from '../modules/store/flash.js';
import { emit, progress } from './lib.js';

const UPDATES = 10_000;

function run(name: string, peers: bigint[]): void {
  const flash = new MemoryFlash(SRUP_PARTITION_SIZE);
  const perBlockErases = new Array<number>(flash.byteLength / flash.blockSize).fill(0);
  const erase = flash.eraseBlock.bind(flash);
  flash.eraseBlock = (i: number) => {
    perBlockErases[i]++;
    erase(i);
  };
  const log = new CounterLog(flash, DEFAULT_LAYOUT);
  const erasesBefore = flash.erases;
  const bytesBefore = flash.bytesWritten;
  const t0 = Date.now();
  for (let i = 0; i < UPDATES; i++) {
    const peer = peers[i % peers.length];
    const seq = BigInt(Math.floor(i / peers.length) + 1);
    if ((i & 1) === 0) log.setAccepted(peer, seq);
    else log.setSent(peer, seq);
  }
  const ms = Date.now() - t0;
  const erases = flash.erases - erasesBefore;
  const perBlock = Math.max(...perBlockErases);
  emit({ section: 'flash', name: `counter log erases per ${UPDATES} updates, ${name}`, value: erases, unit: 'erases' });
  emit({ section: 'flash', name: `counter log, most-erased block, ${name}`, value: perBlock, unit: 'erases' });
  emit({ section: 'flash', name: `counter log bytes written per update, ${name}`, value: (flash.bytesWritten - bytesBefore) / UPDATES, unit: 'bytes' });
  progress(
    `counter log, ${name}: ${erases} erases per ${UPDATES} counter updates ` +
      `(${(flash.bytesWritten - bytesBefore) / UPDATES} bytes written per update; ` +
      `most-erased block ${perBlock} times; ${DEFAULT_LAYOUT.logBlocks} log blocks; ${ms} ms on this host)`,
  );
}

run('1 peer', [0x4a0f3b2c1d0e4f56n]);
run('3 peers', [1n, 2n, 3n]);
