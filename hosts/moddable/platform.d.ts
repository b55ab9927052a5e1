/**
 * What differs between the ESP32 and the simulator, behind one module name: `hosts/moddable/platform` is
 * platform-esp32.ts on esp32 and platform-sim.ts on lin (manifest.json `platforms`).
 */
import type { Presenter, Updater } from '../../modules/agent/host.js';
import type { Flash } from '../../modules/store/flash.js';
import type { PresenterSettings } from '../../modules/store/record.js';

export declare const PLATFORM: 'esp32' | 'sim';
/** The `srup` partition. */
export declare function openFlash(): Flash;
/**
 * Resolves once the network is up, and the wall clock is set when `clockRequired` (TLS checks certificate dates);
 * keeps retrying what failed, with a log line each time.
 */
export declare function startNetwork(
  wifi: { ssid: string; password: string } | null,
  log: (msg: string) => void,
  clockRequired?: boolean,
): Promise<void>;
export declare function makePresenter(settings: PresenterSettings, log: (line: string) => void): Presenter;
export declare function randomBytes(n: number): Uint8Array;
export declare function makeUpdater(): Updater;
/** XS heap in use, when the instrumentation module is in the build; else null. */
export declare function heapUsed(): number | null;
/** Simulator only (with the build config `srupHeapProbe=1`): prints the live XS heap once a second. */
export declare function startHeapProbe(log: (line: string) => void): void;
