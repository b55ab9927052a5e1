/**
 * The simulator's heap probe, for `npm run sim`'s memory figures: every 100 ms it forces a garbage collection
 * and reads the XS heap in use (then: what is alive), and once a second prints
 *   srup: heap live chunks=<bytes> slots=<count> peak chunks=<bytes> slots=<count> stack=<bytes>
 * where peak is the largest seen so far. Slot counts are the same on the ESP32's 32-bit XS (16 bytes a slot,
 * 32 here); chunk bytes here are the 64-bit figure (larger than the ESP32's). Collections between samples miss
 * short transients; the simulator build's fixed heap (manifest.json, no growth) is what proves the fit.
 * Only when the build config says `srupHeapProbe=1`: forcing collections is for measuring, not for devices.
 */
import config from 'mc/config';
import Debug from 'debug';
import Instrumentation from 'instrumentation';
import Timer from 'timer';

function read(name: 'XS Chunk Heap Used' | 'XS Slot Heap Used' | 'XS Stack Used'): number {
  const id = Instrumentation.map(name);
  return id === undefined ? 0 : (Instrumentation.get(id) ?? 0);
}

export function startHeapProbe(log: (line: string) => void): void {
  if ((config as { srupHeapProbe?: unknown }).srupHeapProbe === undefined) return;
  let peakChunks = 0;
  let peakSlots = 0;
  let peakStack = 0;
  let ticks = 0;
  Timer.repeat(() => {
    Debug.gc();
    const chunks = read('XS Chunk Heap Used');
    const slots = read('XS Slot Heap Used') / 32;
    peakChunks = Math.max(peakChunks, chunks);
    peakSlots = Math.max(peakSlots, slots);
    peakStack = Math.max(peakStack, read('XS Stack Used'));
    if (++ticks % 10 === 0) log(`heap live chunks=${chunks} slots=${slots} peak chunks=${peakChunks} slots=${peakSlots} stack=${peakStack}`);
  }, 100);
}
