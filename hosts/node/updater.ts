/**
 * Two image slots as files, like ESP32 OTA partitions, and a small durable state file playing otadata:
 *
 *   <dir>/slot-a.bin, <dir>/slot-b.bin
 *   <dir>/otadata.json  {"active":"a","next":"a","previous":null,"ready":null,"pendingVerify":false,
 *                        "boots":0,"rolledBack":false}
 *
 * Boot (the constructor) does what the ESP-IDF bootloader does with app rollback enabled:
 *   - `next` differs from `active` (activate() ran): the new slot becomes active, unconfirmed, 1 boot counted;
 *   - active and unconfirmed: one more boot is counted; past `maxUnconfirmedBoots` (default 1, as ESP-IDF:
 *     the first restart of an unconfirmed image rolls it back) the previous slot is active again, 'rolled_back';
 *   - otherwise nothing changes.
 * activate() makes the finished image boot next and calls `restart()` (default: exit the process with
 * EXIT_RESTART, for a supervisor to start it again).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { BootState, Updater } from '../../modules/agent/host.js';
import { HostFileError, fsyncDir, readJsonObject, writeFileDurable } from './durable.js';

/** Process exit code of the default restart(): "restart me". (75 = EX_TEMPFAIL.) */
export const EXIT_RESTART = 75;

export type Slot = 'a' | 'b';

export interface OtaData {
  /** The slot running now. */
  active: Slot;
  /** The slot to boot next; differs from `active` only between activate() and the restart. */
  next: Slot;
  /** The slot that ran before the last switch (the rollback target), or null. */
  previous: Slot | null;
  /** The slot holding a finished, not yet activated image, or null. */
  ready: Slot | null;
  /** The active image was activated and is not confirmed yet. */
  pendingVerify: boolean;
  /** Boots of the active image while unconfirmed. */
  boots: number;
  /** The last activated image was rolled back (cleared by the next begin()). */
  rolledBack: boolean;
}

export interface FileUpdaterOptions {
  dir: string;
  /** Called by activate() once the switch is durable; must not return on a real device. */
  restart?: () => void;
  /** Boots an activated image gets without confirm() before it is rolled back (default 1). */
  maxUnconfirmedBoots?: number;
}

const OTADATA = 'otadata.json';
const other = (s: Slot): Slot => (s === 'a' ? 'b' : 'a');
const isSlot = (v: unknown): v is Slot => v === 'a' || v === 'b';

export class FileUpdater implements Updater {
  readonly dir: string;
  private readonly file: string;
  private readonly restart: () => void;
  private state: OtaData;
  private boot: BootState;
  /** The image being written: its slot and file descriptor. */
  private writing: { slot: Slot; fd: number; bytes: number } | null = null;

  constructor(options: FileUpdaterOptions) {
    this.dir = options.dir;
    fs.mkdirSync(this.dir, { recursive: true });
    this.file = path.join(this.dir, OTADATA);
    this.restart = options.restart ?? (() => process.exit(EXIT_RESTART));
    const max = options.maxUnconfirmedBoots ?? 1;
    const s = this.load();

    if (s.next !== s.active) {
      s.previous = s.active;
      s.active = s.next;
      s.ready = null;
      s.pendingVerify = true;
      s.boots = 1;
      s.rolledBack = false;
      this.boot = 'unconfirmed';
    } else if (s.pendingVerify) {
      if (s.boots >= max && s.previous !== null) {
        s.active = s.previous;
        s.next = s.previous;
        s.previous = null;
        s.pendingVerify = false;
        s.boots = 0;
        s.rolledBack = true;
        this.boot = 'rolled_back';
      } else {
        s.boots++;
        this.boot = 'unconfirmed';
      }
    } else {
      this.boot = s.rolledBack ? 'rolled_back' : 'normal';
    }
    this.state = s;
    this.save();
  }

  /** The otadata as it is now (a copy). */
  otadata(): OtaData {
    return { ...this.state };
  }

  /** The file of a slot. */
  slotPath(slot: Slot): string {
    return path.join(this.dir, `slot-${slot}.bin`);
  }

  /** The file of the image that is running. */
  activeImage(): string {
    return this.slotPath(this.state.active);
  }

  begin(): void {
    // As ESP-IDF with app rollback: the other slot holds the rollback target until the running image is confirmed.
    if (this.state.pendingVerify) throw new Error('updater: the running image is pending verify: confirm it before a new update');
    this.closeWriting();
    const slot = other(this.state.active);
    // The slot is about to be overwritten: it no longer holds a finished image.
    if (this.state.ready !== null || this.state.rolledBack) {
      this.state = { ...this.state, ready: null, rolledBack: false };
      this.save();
    }
    const fd = fs.openSync(this.slotPath(slot), 'w', 0o600);
    this.writing = { slot, fd, bytes: 0 };
  }

  write(chunk: Uint8Array): void {
    const w = this.writing;
    if (!w) throw new Error('updater: write() without begin()');
    let off = 0;
    while (off < chunk.byteLength) off += fs.writeSync(w.fd, chunk, off, chunk.byteLength - off);
    w.bytes += chunk.byteLength;
  }

  finish(): void {
    const w = this.writing;
    if (!w) throw new Error('updater: finish() without begin()');
    fs.fsyncSync(w.fd);
    fs.closeSync(w.fd);
    fsyncDir(this.dir);
    this.writing = null;
    this.state = { ...this.state, ready: w.slot };
    this.save();
  }

  abort(): void {
    const slot = this.writing?.slot ?? null;
    this.closeWriting();
    if (slot !== null) fs.rmSync(this.slotPath(slot), { force: true });
    if (this.state.ready !== null) {
      fs.rmSync(this.slotPath(this.state.ready), { force: true });
      this.state = { ...this.state, ready: null };
      this.save();
    }
  }

  activate(): void {
    const target = this.state.ready;
    if (this.writing !== null || target === null || target === this.state.active) {
      throw new Error('updater: no finished image to activate');
    }
    this.state = { ...this.state, next: target };
    this.save();
    try {
      this.restart();
    } catch (e) {
      // No restart after all: undo the switch, or the next start would boot an image the agent was told did not
      // activate (it answers 0x1F and keeps the update staged), unconfirmed, to be rolled back a start later.
      this.state = { ...this.state, next: this.state.active };
      this.save();
      throw e;
    }
  }

  bootState(): BootState {
    return this.boot;
  }

  confirm(): boolean {
    if (this.boot === 'rolled_back') return false;
    if (this.state.pendingVerify) {
      this.state = { ...this.state, pendingVerify: false, boots: 0 };
      this.save();
    }
    this.boot = 'normal';
    return true;
  }

  private closeWriting(): void {
    if (this.writing) {
      try {
        fs.closeSync(this.writing.fd);
      } catch {
        // already closed
      }
      this.writing = null;
    }
  }

  private load(): OtaData {
    if (!fs.existsSync(this.file)) {
      return { active: 'a', next: 'a', previous: null, ready: null, pendingVerify: false, boots: 0, rolledBack: false };
    }
    const o = readJsonObject(this.file);
    const bad = (field: string, what: string): never => { throw new HostFileError(this.file, field, what); };
    if (!isSlot(o.active)) bad('active', 'must be "a" or "b"');
    if (!isSlot(o.next)) bad('next', 'must be "a" or "b"');
    if (o.previous !== null && !isSlot(o.previous)) bad('previous', 'must be "a", "b" or null');
    if (o.ready !== null && !isSlot(o.ready)) bad('ready', 'must be "a", "b" or null');
    if (typeof o.pendingVerify !== 'boolean') bad('pendingVerify', 'must be a boolean');
    if (typeof o.boots !== 'number' || !Number.isInteger(o.boots) || o.boots < 0) bad('boots', 'must be an integer ≥ 0');
    if (typeof o.rolledBack !== 'boolean') bad('rolledBack', 'must be a boolean');
    return o as unknown as OtaData;
  }

  private save(): void {
    writeFileDurable(this.file, JSON.stringify(this.state) + '\n');
  }
}
