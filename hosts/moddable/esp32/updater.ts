/**
 * ESP32 OTA: the image is written into the next OTA partition while it downloads (`ota`); activate sets the
 * boot partition and restarts (esp_restart). With ESP-IDF app rollback enabled (sdkconfig), the new image
 * boots "pending verify": the agent confirms it once it has reconnected (esp_ota_mark_app_valid_cancel_rollback);
 * an image that resets before that is rolled back by the bootloader.
 *
 * Boot state: before restarting, the ELF SHA-256 of the running (old) image is kept in NVS (`preference`).
 * At boot, a kept value means an activation happened: a different running image is the new one
 * ('unconfirmed'), the same image means the bootloader rolled back ('rolled_back').
 */
import FFI from 'mc/ffi';
import OTA from 'ota';
import Preference from 'preference';
import type { BootState, Updater } from '../../../modules/agent/host.js';

type Natives = {
  esp_restart(): void;
  esp_ota_mark_app_valid_cancel_rollback(): number;
  esp_app_get_elf_sha256(dst: ArrayBuffer, size: number): number;
};
// Made on first use, not at module load: this module is preloaded (its body runs at link time, on the build host).
let ffi: Natives | null = null;
function natives(): Natives {
  ffi ??= new FFI() as unknown as Natives;
  return ffi;
}

const DOMAIN = 'srup';
const KEY = 'activatedFrom';

function runningImage(): string {
  const b = new ArrayBuffer(65);
  const n = natives().esp_app_get_elf_sha256(b, 65);
  let s = '';
  const u = new Uint8Array(b);
  for (let i = 0; i < n && u[i] !== 0; i++) s += String.fromCharCode(u[i]);
  return s;
}

export class OtaUpdater implements Updater {
  private ota: OTA | null = null;
  private finished = false;
  private state: BootState;

  constructor() {
    const from = Preference.get(DOMAIN, KEY);
    this.state = typeof from !== 'string' ? 'normal' : from === runningImage() ? 'rolled_back' : 'unconfirmed';
    if (this.state === 'rolled_back') Preference.delete(DOMAIN, KEY);
  }

  begin(): void {
    // esp_ota_begin would refuse too (ESP_ERR_OTA_ROLLBACK_INVALID_STATE); say why, and touch nothing.
    if (this.state === 'unconfirmed') throw new Error('the running image is pending verify: confirm it before a new update');
    this.abort();
    this.ota = new OTA();
    this.finished = false;
  }

  write(chunk: Uint8Array): void {
    if (this.ota === null) throw new Error('begin() first');
    this.ota.write(chunk); // written before it returns: no copy of the piece
  }

  finish(): void {
    if (this.ota === null) throw new Error('begin() first');
    this.finished = true; // complete() (which sets the boot partition) waits for activate()
  }

  abort(): void {
    if (this.ota !== null) this.ota.cancel();
    this.ota = null;
    this.finished = false;
  }

  activate(): void {
    if (this.ota === null || !this.finished) throw new Error('no finished image');
    // The mark goes first, so that a power cut right after complete() still leaves the new image's boot knowing
    // it must confirm itself. If complete() refuses the image (esp_ota_end validates it), nothing was
    // activated: take the mark back, or the next boot of this same image would report a rollback.
    Preference.set(DOMAIN, KEY, runningImage());
    try {
      this.ota.complete();
    } catch (e) {
      Preference.delete(DOMAIN, KEY);
      this.abort();
      throw e;
    }
    this.ota = null;
    natives().esp_restart();
  }

  bootState(): BootState {
    return this.state;
  }

  confirm(): boolean {
    const ok = natives().esp_ota_mark_app_valid_cancel_rollback() === 0;
    if (ok) {
      Preference.delete(DOMAIN, KEY);
      if (this.state === 'unconfirmed') this.state = 'normal';
    }
    return ok;
  }
}

export function makeUpdater(): Updater {
  return new OtaUpdater();
}
