/** ESP32: the `srup` partition, Wi-Fi from the record, LED + WS2812 matrix, hardware RNG, OTA with rollback. */
export const PLATFORM = 'esp32';
export { openFlash } from './esp32/flash.js';
export { startNetwork } from './esp32/network.js';
export { makePresenter } from './esp32/presenter.js';
export { randomBytes } from './esp32/random.js';
export { makeUpdater } from './esp32/updater.js';
export { heapUsed } from './heap.js';
/** The simulator's measuring probe forces collections; a device never runs it. */
export function startHeapProbe(_log: (line: string) => void): void {}
