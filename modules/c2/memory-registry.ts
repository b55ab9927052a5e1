/**
 * The registry in memory: the reference implementation of registry.ts, used by tests and by a C2 that needs no
 * persistence. Maps keyed by id / token, copies in and out so callers never share state with the store.
 */
import type { RsaPublicKey } from '../../crypto/types.js';
import type {
  AuditEntry,
  AuditInput,
  AuditQuery,
  DevicePatch,
  DeviceProfile,
  DeviceRecord,
  DeviceState,
  Reading,
  ReadingInput,
  Registry,
  SequenceState,
  UpdatePatch,
  UpdateRecord,
} from './registry.js';
import { READINGS_PER_DATA_ID, provisionedRecord } from './registry.js';
import { C2Error } from './errors.js';
import { nextSequenceId } from '../srup/topics.js';

function copyBytes(b: Uint8Array | null): Uint8Array | null {
  return b === null ? null : b.slice();
}

function copyDevice(d: DeviceRecord): DeviceRecord {
  return {
    ...d,
    joinToken: copyBytes(d.joinToken),
    observationToken: copyBytes(d.observationToken),
    lastResponse: d.lastResponse === null ? null : { ...d.lastResponse, token: d.lastResponse.token.slice() },
  };
}

function copyAudit(a: AuditEntry): AuditEntry {
  return { ...a, token: a.token.slice(), bytes: a.bytes.slice() };
}

const ZERO: SequenceState = { lastSent: 0n, lastAccepted: 0n };

export class MemoryRegistry implements Registry {
  private readonly devs = new Map<bigint, DeviceRecord>();
  private readonly seqs = new Map<bigint, SequenceState>();
  private readonly ups = new Map<string, UpdateRecord>();
  private readonly log: AuditEntry[] = [];

  device(id: bigint): DeviceRecord | null {
    const d = this.devs.get(id);
    return d === undefined ? null : copyDevice(d);
  }

  devices(state?: DeviceState): DeviceRecord[] {
    const out: DeviceRecord[] = [];
    for (const d of this.devs.values()) if (state === undefined || d.state === state) out.push(copyDevice(d));
    return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  addDevice(id: bigint, publicKey: RsaPublicKey, now: number, profile?: DeviceProfile): DeviceRecord {
    const d = provisionedRecord(id, publicKey, this.devs.get(id) ?? null, now, profile);
    this.devs.set(id, d);
    return copyDevice(d);
  }

  updateDevice(id: bigint, patch: DevicePatch, now: number): DeviceRecord {
    const d = this.devs.get(id);
    if (d === undefined) throw new C2Error('unknown_device', `device ${id.toString(16)} is not registered`);
    const next = copyDevice({ ...d, ...patch, id: d.id, createdAt: d.createdAt, updatedAt: now });
    this.devs.set(id, next);
    return copyDevice(next);
  }

  markSeen(id: bigint, now: number, lastResponse: { status: number; token: Uint8Array; at: number } | null): void {
    const d = this.devs.get(id);
    if (d === undefined) return;
    const response = lastResponse === null ? d.lastResponse : { status: lastResponse.status, token: lastResponse.token.slice(), at: lastResponse.at };
    this.devs.set(id, { ...d, lastSeen: now, lastResponse: response, updatedAt: now });
  }

  removeDevice(id: bigint, options: { keepCounters?: boolean } = {}): boolean {
    const had = this.devs.delete(id);
    if (options.keepCounters !== true) this.seqs.delete(id);
    for (const [t, u] of this.ups) if (u.device === id) this.ups.delete(t);
    for (const [k, list] of this.readingLists) if (list[0]?.device === id) this.readingLists.delete(k);
    return had;
  }

  sequence(peer: bigint): SequenceState {
    return this.seqs.get(peer) ?? ZERO;
  }

  setLastSent(peer: bigint, seq: bigint): void {
    this.seqs.set(peer, { ...this.sequence(peer), lastSent: seq });
  }

  setLastAccepted(peer: bigint, seq: bigint): void {
    const s = this.sequence(peer);
    if (seq <= s.lastAccepted) throw new C2Error('already_accepted', `sequence ID ${seq} of ${peer.toString(16)} was accepted already`);
    this.seqs.set(peer, { ...s, lastAccepted: seq });
  }

  allocateSequence(peer: bigint): bigint {
    const s = this.sequence(peer);
    const next = nextSequenceId(s.lastSent, s.lastAccepted);
    this.seqs.set(peer, { ...s, lastSent: next });
    return next;
  }

  group<T>(fn: () => T): Promise<T> {
    try {
      return Promise.resolve(fn());
    } catch (e) {
      return Promise.reject(e);
    }
  }

  forgetSequence(peer: bigint): void {
    this.seqs.delete(peer);
  }

  addUpdate(u: { token: string; device: bigint; url: string; digest: string }, now: number): UpdateRecord {
    if (this.ups.has(u.token)) throw new C2Error('duplicate_token', `update token ${u.token} already exists`);
    const r: UpdateRecord = {
      token: u.token,
      device: u.device,
      url: u.url,
      digest: u.digest,
      state: 'initiated',
      status: null,
      failure: null,
      createdAt: now,
      updatedAt: now,
    };
    this.ups.set(u.token, r);
    return { ...r };
  }

  update(token: string): UpdateRecord | null {
    const u = this.ups.get(token);
    return u === undefined ? null : { ...u };
  }

  updates(device?: bigint): UpdateRecord[] {
    const out: UpdateRecord[] = [];
    for (const u of this.ups.values()) if (device === undefined || u.device === device) out.push({ ...u });
    return out;
  }

  setUpdate(token: string, patch: UpdatePatch, now: number): UpdateRecord {
    const u = this.ups.get(token);
    if (u === undefined) throw new C2Error('unknown_update', `no update with token ${token}`);
    const next: UpdateRecord = { ...u, ...patch, updatedAt: now };
    this.ups.set(token, next);
    return { ...next };
  }

  recordAudit(entry: AuditInput): void {
    this.appendAudit(entry);
  }

  appendAudit(entry: AuditInput): AuditEntry {
    const e: AuditEntry = copyAudit({ ...entry, seq: this.log.length + 1 });
    this.log.push(e);
    return copyAudit(e);
  }

  audit(query: AuditQuery = {}): AuditEntry[] {
    const out: AuditEntry[] = [];
    for (const e of this.log) {
      if (query.device !== undefined && e.device !== query.device) continue;
      if (query.after !== undefined && e.seq <= query.after) continue;
      out.push(copyAudit(e));
      if (query.limit !== undefined && out.length >= query.limit) break;
    }
    return out;
  }

  // ------------------------------------------------------------------------------------------ data history

  private readonly readingLists = new Map<string, Reading[]>();
  private readingSeq = 0;

  appendReading(r: ReadingInput): Reading {
    const key = `${r.device.toString(16)} ${r.dataId}`;
    const list = this.readingLists.get(key) ?? [];
    const rec: Reading = { device: r.device, dataId: r.dataId, at: r.at, token: r.token.slice(), data: r.data.slice(), seq: ++this.readingSeq };
    list.push(rec);
    if (list.length > READINGS_PER_DATA_ID) list.splice(0, list.length - READINGS_PER_DATA_ID);
    this.readingLists.set(key, list);
    return { ...rec, token: rec.token.slice(), data: rec.data.slice() };
  }

  readings(device: bigint, dataId?: string): Reading[] {
    const out: Reading[] = [];
    for (const list of this.readingLists.values()) {
      for (const x of list) if (x.device === device && (dataId === undefined || x.dataId === dataId)) out.push({ ...x, token: x.token.slice(), data: x.data.slice() });
    }
    return out.sort((a, b) => a.seq - b.seq);
  }
}
