/** The Linux simulator: a file as the `srup` partition, the screen and mock LED, a file-backed updater. */
export const PLATFORM = 'sim';
export { openFlash } from './sim/flash.js';
export { startNetwork } from './sim/network.js';
export { makePresenter } from './sim/presenter.js';
export { randomBytes } from './sim/random.js';
export { makeUpdater } from './sim/updater.js';
export { heapUsed } from './heap.js';
export { startHeapProbe } from './sim/heap-probe.js';
