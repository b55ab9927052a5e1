/**
 * The simulator's updater: the image goes to a file next to the partition image; activate records the
 * activation in the partition-side state file and "restarts" by ending the run (the harness starts the
 * simulator again, which then reports 'unconfirmed' until confirm()).
 */
import { File } from 'file';
import type { BootState, Updater } from '../../../modules/agent/host.js';
import { imagePath } from './flash.js';

const imageFile = (): string => imagePath() + '.ota';
const stateFile = (): string => imagePath() + '.boot';

function readState(): string {
  if (!File.exists(stateFile())) return '';
  try {
    const f = new File(stateFile());
    const s = f.read(String) as string;
    f.close();
    return s.trim();
  } catch {
    return '';
  }
}

function writeState(s: string): void {
  if (s === '') {
    if (File.exists(stateFile())) File.delete(stateFile());
    return;
  }
  const f = new File(stateFile(), true);
  f.write(s);
  f.close();
}

export class SimUpdater implements Updater {
  private file: File | null = null;
  private finished = false;
  private state: BootState;
  /** Called by activate(): the simulator's stand-in for a restart. */
  onRestart: () => void = () => {
    trace('srup: restart requested (simulated)\n');
  };

  constructor() {
    const s = readState();
    // 'activating' left by activate(): this run is the new image, not yet confirmed.
    this.state = s === 'activating' ? 'unconfirmed' : 'normal';
  }

  begin(): void {
    // As on the ESP32 (ESP-IDF refuses an OTA while the running image is pending verify).
    if (this.state === 'unconfirmed') throw new Error('the running image is pending verify: confirm it before a new update');
    this.abort();
    if (File.exists(imageFile())) File.delete(imageFile());
    this.file = new File(imageFile(), true);
    this.finished = false;
  }

  write(chunk: Uint8Array): void {
    if (this.file === null) throw new Error('begin() first');
    // The simulator's File takes only a whole ArrayBuffer: a piece that is one is written without a copy.
    const whole = chunk.byteOffset === 0 && chunk.byteLength === chunk.buffer.byteLength;
    this.file.write((whole ? chunk.buffer : chunk.slice().buffer) as ArrayBuffer);
  }

  finish(): void {
    if (this.file === null) throw new Error('begin() first');
    this.file.close();
    this.file = null;
    this.finished = true;
  }

  abort(): void {
    if (this.file !== null) this.file.close();
    this.file = null;
    this.finished = false;
  }

  activate(): void {
    if (!this.finished) throw new Error('no finished image');
    writeState('activating');
    this.onRestart();
  }

  bootState(): BootState {
    return this.state;
  }

  confirm(): boolean {
    writeState('');
    if (this.state === 'unconfirmed') this.state = 'normal';
    return true;
  }
}

export function makeUpdater(): Updater {
  return new SimUpdater();
}
