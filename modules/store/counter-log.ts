/**
 * The counter log: replay counters (per peer: last accepted, last sent; u64) and the pending update, as an
 * append-only log of small CRC-protected entries, rotating through `logBlocks` erase blocks.
 *
 * Block layout (little-endian):
 *
 *   offset size  field
 *        0    4  magic "SRCL" (53 52 43 4C)
 *        4    1  format version = 1
 *        5    3  reserved = 0
 *        8    4  epoch (u32; +1 for every new block; the valid block with the newest epoch is current)
 *       12    4  CRC-32 of bytes 0..11
 *       16    …  entries, each starting on a 4-byte boundary; the first must be a snapshot
 *
 * Entry:  type u8 | 0 | payload length u16 | payload | CRC-32 of (type … payload) — padded to 4 bytes with 0xFF.
 * An erased byte (0xFF) where an entry would start ends the log.
 *
 *   0x01 snapshot   peer count u16 | 0 0 | count × (peer u64, last accepted u64, last sent u64) |
 *                   pending state u8 (0 none, 1 staged, 2 activating) [| server u64 | token length u16 | token]
 *   0x02 accepted   peer u64 | seq u64                (24 bytes on flash)
 *   0x03 sent       peer u64 | seq u64                (24 bytes on flash)
 *   0x04 forget     peer u64                          (16 bytes on flash)
 *   0x05 pending    state u8 | 0 0 0 | server u64 | token
 *   0x06 no pending (empty payload)
 *
 * Format version 2 adds the answers owed (a command accepted whose answer the broker has not taken yet), so that
 * an answer is never lost to a power cut between accepting a command and the PUBACK of its answer:
 *
 *   snapshot        … as above | owed count u16 | count × owed
 *   owed            peer u64 | command seq u64 | kind u8 (1 action, 2 id_request, 3 initiate) | action id u8 |
 *                   status u16 (0xFFFF: not decided) | token length u16 | token (at most MAX_OWED_TOKEN bytes)
 *   0x07 accepted, owing    peer u64 | seq u64 | kind u8 | action id u8 | token length u16 | token
 *                           (the counter and the owed answer in one entry: both or neither survive)
 *   0x08 sent, answering    peer u64 | seq u64 | command seq u64 | status u16
 *   0x09 settled            peer u64 | command seq u64
 *
 * A version 1 block is read as before; the first change after it moves the state into a version 2 block.
 * A firmware that reads only version 1 refuses a version 2 block (unsupported_version) rather than replay older
 * counters.
 *
 * A change appends one entry (one small write). When the block is full, the whole state goes as a snapshot
 * into the next block of the ring: erase it, write the snapshot, then the block header (the commit). The
 * previous block stays intact until the ring comes round to it again, so power lost during the erase or the
 * writes leaves the previous state current. An entry cut short by power loss fails its CRC; recovery stops
 * there, and the next change moves to a fresh block rather than write over the damaged bytes.
 */
import { crc32 } from './crc32.js';
import { StoreError } from './errors.js';
import { isErased, type Flash, type StoreLayout } from './flash.js';
import { align4, getU16, getU32, getU64, putU16, putU32, putU64, U64_MASK } from './bytes.js';
import { MAX_OWED_TOKEN } from '../agent/host.js';

export const LOG_MAGIC = 0x4c435253; // "SRCL" read as little-endian u32
export const LOG_VERSION = 2;
export const LOG_HEADER_LENGTH = 16;
/**
 * Snapshots hold at most this many peers, an update token of at most MAX_TOKEN_LENGTH bytes and MAX_OWED answers
 * owed with tokens of at most MAX_OWED_TOKEN bytes, so that one always fits a 4 KiB block:
 * 4 + 64 × 24 + 266 + 2 + 32 × (22 + 48) = 4048 bytes of payload.
 */
export const MAX_PEERS = 64;
export const MAX_TOKEN_LENGTH = 255;
export const MAX_OWED = 32;
export { MAX_OWED_TOKEN };

export const ENTRY_SNAPSHOT = 0x01;
export const ENTRY_ACCEPTED = 0x02;
export const ENTRY_SENT = 0x03;
export const ENTRY_FORGET = 0x04;
export const ENTRY_PENDING = 0x05;
export const ENTRY_NO_PENDING = 0x06;
export const ENTRY_ACCEPTED_OWING = 0x07;
export const ENTRY_SENT_ANSWERING = 0x08;
export const ENTRY_SETTLED = 0x09;

export type OwedKind = 'action' | 'id_request' | 'initiate';
const KIND_CODES: Record<OwedKind, number> = { action: 1, id_request: 2, initiate: 3 };
const KINDS: readonly (OwedKind | null)[] = [null, 'action', 'id_request', 'initiate'];
const NO_STATUS = 0xffff;

export interface OwedRecord {
  readonly peer: bigint;
  readonly seq: bigint;
  readonly kind: OwedKind;
  readonly token: Uint8Array;
  readonly actionId: number;
  readonly status: number | null;
}

export type PendingState = 'staged' | 'activating';

export interface PendingRecord {
  readonly server: bigint;
  readonly token: Uint8Array;
  readonly state: PendingState;
}

export interface Counters {
  accepted: bigint;
  sent: bigint;
}

/** The state the log holds. */
export interface CounterState {
  readonly peers: Map<bigint, Counters>;
  pending: PendingRecord | null;
  owed: OwedRecord[];
}

function u64(v: bigint): bigint {
  if (v < 0n || v > U64_MASK) throw new StoreError('bad_record', 'value out of u64 range');
  return v;
}

function entry(type: number, payload: Uint8Array): Uint8Array {
  if (payload.length > 0xffff) throw new StoreError('too_large', 'entry too long');
  const n = 4 + payload.length;
  const out = new Uint8Array(align4(n + 4)).fill(0xff);
  out[0] = type;
  out[1] = 0;
  putU16(out, 2, payload.length);
  out.set(payload, 4);
  putU32(out, n, crc32(out, 0, n));
  return out;
}

export function encodeSnapshot(s: CounterState): Uint8Array {
  const peers: [bigint, Counters][] = [];
  for (const [id, c] of s.peers) if (c.accepted !== 0n || c.sent !== 0n) peers.push([id, c]);
  if (peers.length > MAX_PEERS) throw new StoreError('too_large', `more than ${MAX_PEERS} peers`);
  const p = s.pending;
  const tail = p === null ? 1 : 1 + 8 + 2 + p.token.length;
  if (s.owed.length > MAX_OWED) throw new StoreError('too_large', `more than ${MAX_OWED} answers owed`);
  let owedBytes = 2;
  for (const w of s.owed) owedBytes += 22 + w.token.length;
  const payload = new Uint8Array(4 + 24 * peers.length + tail + owedBytes);
  putU16(payload, 0, peers.length);
  let o = 4;
  for (const [id, c] of peers) {
    putU64(payload, o, id);
    putU64(payload, o + 8, c.accepted);
    putU64(payload, o + 16, c.sent);
    o += 24;
  }
  if (p === null) payload[o] = 0;
  else {
    payload[o] = p.state === 'staged' ? 1 : 2;
    putU64(payload, o + 1, p.server);
    putU16(payload, o + 9, p.token.length);
    payload.set(p.token, o + 11);
  }
  o += tail;
  putU16(payload, o, s.owed.length);
  o += 2;
  for (const w of s.owed) {
    putU64(payload, o, w.peer);
    putU64(payload, o + 8, w.seq);
    payload[o + 16] = KIND_CODES[w.kind];
    payload[o + 17] = w.actionId;
    putU16(payload, o + 18, w.status === null ? NO_STATUS : w.status);
    putU16(payload, o + 20, w.token.length);
    payload.set(w.token, o + 22);
    o += 22 + w.token.length;
  }
  return entry(ENTRY_SNAPSHOT, payload);
}

function owingEntry(peer: bigint, seq: bigint, kind: OwedKind, actionId: number, token: Uint8Array): Uint8Array {
  const p = new Uint8Array(20 + token.length);
  putU64(p, 0, u64(peer));
  putU64(p, 8, u64(seq));
  p[16] = KIND_CODES[kind];
  p[17] = actionId;
  putU16(p, 18, token.length);
  p.set(token, 20);
  return entry(ENTRY_ACCEPTED_OWING, p);
}

function answeringEntry(peer: bigint, seq: bigint, commandSeq: bigint, status: number): Uint8Array {
  const p = new Uint8Array(26);
  putU64(p, 0, u64(peer));
  putU64(p, 8, u64(seq));
  putU64(p, 16, u64(commandSeq));
  putU16(p, 24, status);
  return entry(ENTRY_SENT_ANSWERING, p);
}

function settledEntry(peer: bigint, commandSeq: bigint): Uint8Array {
  const p = new Uint8Array(16);
  putU64(p, 0, u64(peer));
  putU64(p, 8, u64(commandSeq));
  return entry(ENTRY_SETTLED, p);
}

function counterEntry(type: number, peer: bigint, seq: bigint): Uint8Array {
  const p = new Uint8Array(16);
  putU64(p, 0, u64(peer));
  putU64(p, 8, u64(seq));
  return entry(type, p);
}

function forgetEntry(peer: bigint): Uint8Array {
  const p = new Uint8Array(8);
  putU64(p, 0, u64(peer));
  return entry(ENTRY_FORGET, p);
}

function pendingEntry(p: PendingRecord | null): Uint8Array {
  if (p === null) return entry(ENTRY_NO_PENDING, new Uint8Array(0));
  const b = new Uint8Array(12 + p.token.length);
  b[0] = p.state === 'staged' ? 1 : 2;
  putU64(b, 4, u64(p.server));
  b.set(p.token, 12);
  return entry(ENTRY_PENDING, b);
}

function pendingState(code: number): PendingState | null {
  return code === 1 ? 'staged' : code === 2 ? 'activating' : null;
}

/** Applies one decoded entry of a block of format `version` to `s`; false when the payload is malformed. */
function apply(s: CounterState, type: number, p: Uint8Array, version: number = LOG_VERSION): boolean {
  const peer = (id: bigint): Counters => {
    let c = s.peers.get(id);
    if (!c) s.peers.set(id, (c = { accepted: 0n, sent: 0n }));
    return c;
  };
  switch (type) {
    case ENTRY_SNAPSHOT: {
      if (p.length < 5) return false;
      const n = getU16(p, 0);
      let o = 4;
      if (p.length < o + 24 * n + 1) return false;
      s.peers.clear();
      for (let i = 0; i < n; i++, o += 24) s.peers.set(getU64(p, o), { accepted: getU64(p, o + 8), sent: getU64(p, o + 16) });
      if (p[o] === 0) s.pending = null;
      else {
        const state = pendingState(p[o]);
        if (state === null || p.length < o + 11) return false;
        const len = getU16(p, o + 9);
        if (p.length < o + 11 + len) return false;
        s.pending = { state, server: getU64(p, o + 1), token: p.slice(o + 11, o + 11 + len) };
        o += 10 + len;
      }
      o += 1;
      s.owed = [];
      if (version < 2) return true;
      if (p.length < o + 2) return false;
      const count = getU16(p, o);
      o += 2;
      for (let i = 0; i < count; i++) {
        if (p.length < o + 22) return false;
        const kind = KINDS[p[o + 16]] ?? null;
        const st = getU16(p, o + 18);
        const len = getU16(p, o + 20);
        if (kind === null || p.length < o + 22 + len || (st !== NO_STATUS && st > 0xff)) return false;
        s.owed.push({ peer: getU64(p, o), seq: getU64(p, o + 8), kind, actionId: p[o + 17], status: st === NO_STATUS ? null : st, token: p.slice(o + 22, o + 22 + len) });
        o += 22 + len;
      }
      return true;
    }
    case ENTRY_ACCEPTED_OWING: {
      if (version < 2 || p.length < 20) return false;
      const kind = KINDS[p[16]] ?? null;
      const len = getU16(p, 18);
      if (kind === null || p.length !== 20 + len) return false;
      const id = getU64(p, 0);
      const seq = getU64(p, 8);
      peer(id).accepted = seq;
      // The same command owed once (a change repeated after a power cut that let it land).
      if (!s.owed.some((w) => w.peer === id && w.seq === seq)) s.owed.push({ peer: id, seq, kind, actionId: p[17], status: null, token: p.slice(20) });
      return true;
    }
    case ENTRY_SENT_ANSWERING: {
      if (version < 2 || p.length !== 26 || getU16(p, 24) > 0xff) return false;
      const id = getU64(p, 0);
      const commandSeq = getU64(p, 16);
      const status = getU16(p, 24);
      peer(id).sent = getU64(p, 8);
      s.owed = s.owed.map((w) => (w.peer === id && w.seq === commandSeq ? { ...w, status } : w));
      return true;
    }
    case ENTRY_SETTLED: {
      if (version < 2 || p.length !== 16) return false;
      const id = getU64(p, 0);
      const commandSeq = getU64(p, 8);
      s.owed = s.owed.filter((w) => !(w.peer === id && w.seq === commandSeq));
      return true;
    }
    case ENTRY_ACCEPTED:
    case ENTRY_SENT: {
      if (p.length !== 16) return false;
      const c = peer(getU64(p, 0));
      if (type === ENTRY_ACCEPTED) c.accepted = getU64(p, 8);
      else c.sent = getU64(p, 8);
      return true;
    }
    case ENTRY_FORGET: {
      if (p.length !== 8) return false;
      const id = getU64(p, 0);
      s.peers.delete(id);
      s.owed = s.owed.filter((w) => w.peer !== id);
      return true;
    }
    case ENTRY_PENDING: {
      const state = p.length >= 12 ? pendingState(p[0]) : null;
      if (state === null) return false;
      s.pending = { state, server: getU64(p, 4), token: p.slice(12) };
      return true;
    }
    case ENTRY_NO_PENDING:
      s.pending = null;
      return p.length === 0;
    default:
      return false;
  }
}

function emptyState(): CounterState {
  return { peers: new Map(), pending: null, owed: [] };
}

function cloneState(s: CounterState): CounterState {
  const peers = new Map<bigint, Counters>();
  for (const [id, c] of s.peers) peers.set(id, { accepted: c.accepted, sent: c.sent });
  return { peers, pending: s.pending, owed: s.owed.slice() };
}

interface Scan {
  readonly epoch: number;
  readonly state: CounterState;
  /** Offset where the next entry goes. */
  readonly head: number;
  /** True when bytes after the last valid entry are not erased (a torn write): append elsewhere. */
  readonly dirty: boolean;
}

/**
 * Reads one log block; null when it has no valid header + snapshot. A valid header of a later format version
 * (magic, version byte and the CRC of bytes 0..11 at 12 stay where they are in every version) throws
 * StoreError('unsupported_version'): replaying an older block instead would move counters back (messages
 * accepted since would be accepted again), and the next compaction would erase the newer blocks.
 */
function scanBlock(flash: Flash, block: number): Scan | null {
  const size = flash.blockSize;
  const b = flash.read(block * size, size);
  if (getU32(b, 0) !== LOG_MAGIC || crc32(b, 0, 12) !== getU32(b, 12)) return null;
  if (b[4] > LOG_VERSION)
    throw new StoreError('unsupported_version', `counter log block ${block} is format version ${b[4]}; this firmware reads ${LOG_VERSION}`);
  const version = b[4];
  if (version !== 1 && version !== LOG_VERSION) return null;
  const state = emptyState();
  let o = LOG_HEADER_LENGTH;
  let first = true;
  let dirty = false;
  for (;;) {
    if (o + 8 > size) {
      dirty = !isErased(b, o, size);
      break;
    }
    if (b[o] === 0xff) {
      dirty = !isErased(b, o, size);
      break;
    }
    const len = getU16(b, o + 2);
    const n = 4 + len;
    const ok =
      o + n + 4 <= size &&
      crc32(b, o, o + n) === getU32(b, o + n) &&
      (first ? b[o] === ENTRY_SNAPSHOT : b[o] !== ENTRY_SNAPSHOT) &&
      apply(state, b[o], b.subarray(o + 4, o + n), version);
    if (!ok) {
      if (first) return null;
      dirty = true;
      break;
    }
    first = false;
    o += align4(n + 4);
  }
  if (first) return null;
  // A block of an older format takes no new entries: the next change starts a block of this format.
  return { epoch: getU32(b, 8), state, head: o, dirty: dirty || version !== LOG_VERSION };
}

/** Epoch order with wrap-around. */
function newerEpoch(a: number, b: number): boolean {
  return ((a - b) | 0) > 0;
}

export class CounterLog {
  private readonly flash: Flash;
  private readonly first: number;
  private readonly count: number;
  private state: CounterState = emptyState();
  /** Ring index of the current block, or -1 when no block is valid yet. */
  private current = -1;
  private epoch = 0;
  private head = 0;
  private dirty = false;
  /** Erases and writes done by this instance (for the benchmark). */
  erases = 0;
  appends = 0;

  constructor(flash: Flash, layout: StoreLayout) {
    this.flash = flash;
    this.first = layout.logFirstBlock;
    this.count = layout.logBlocks;
    this.recover();
  }

  /** Picks the newest valid block and replays it. */
  private recover(): void {
    let best: { i: number; scan: Scan } | null = null;
    for (let i = 0; i < this.count; i++) {
      const scan = scanBlock(this.flash, this.first + i);
      if (scan && (best === null || newerEpoch(scan.epoch, best.scan.epoch))) best = { i, scan };
    }
    if (best === null) {
      this.state = emptyState();
      this.current = -1;
      this.dirty = true;
      return;
    }
    this.state = best.scan.state;
    this.current = best.i;
    this.epoch = best.scan.epoch;
    this.head = best.scan.head;
    this.dirty = best.scan.dirty;
  }

  get peers(): ReadonlyMap<bigint, Readonly<Counters>> {
    return this.state.peers;
  }

  get pending(): PendingRecord | null {
    return this.state.pending;
  }

  /** The answers owed, oldest first. */
  get owed(): readonly OwedRecord[] {
    return this.state.owed;
  }

  counters(peer: bigint): Readonly<Counters> {
    return this.state.peers.get(peer) ?? { accepted: 0n, sent: 0n };
  }

  setAccepted(peer: bigint, seq: bigint): void {
    if (this.counters(peer).accepted === seq) return;
    this.change(counterEntry(ENTRY_ACCEPTED, peer, seq));
  }

  setSent(peer: bigint, seq: bigint): void {
    if (this.counters(peer).sent === seq) return;
    this.change(counterEntry(ENTRY_SENT, peer, seq));
  }

  /** setAccepted, and in the same entry an answer owed for that command. */
  acceptOwing(peer: bigint, seq: bigint, kind: OwedKind, actionId: number, token: Uint8Array): void {
    if (token.length > MAX_OWED_TOKEN) throw new StoreError('too_large', 'token too long for an owed answer');
    if (this.counters(peer).accepted === seq && this.state.owed.some((w) => w.peer === peer && w.seq === seq)) return;
    if (this.state.owed.length >= MAX_OWED) throw new StoreError('too_large', `more than ${MAX_OWED} answers owed`);
    if (!Number.isInteger(actionId) || actionId < 0 || actionId > 0xff) throw new StoreError('bad_record', 'action id out of range');
    this.change(owingEntry(peer, seq, kind, actionId, token));
  }

  /** setSent, and in the same entry the status answering the owed command `commandSeq`. */
  sentAnswering(peer: bigint, seq: bigint, commandSeq: bigint, status: number): void {
    if (!Number.isInteger(status) || status < 0 || status > 0xff) throw new StoreError('bad_record', 'status out of range');
    this.change(answeringEntry(peer, seq, commandSeq, status));
  }

  /** The answer to `commandSeq` of `peer` is delivered: no longer owed. */
  settle(peer: bigint, commandSeq: bigint): void {
    if (!this.state.owed.some((w) => w.peer === peer && w.seq === commandSeq)) return;
    this.change(settledEntry(peer, commandSeq));
  }

  forget(peer: bigint): void {
    if (!this.state.peers.has(peer) && !this.state.owed.some((w) => w.peer === peer)) return;
    this.change(forgetEntry(peer));
  }

  setPending(p: PendingRecord | null): void {
    if (p === null && this.state.pending === null) return;
    if (p !== null && p.token.length > MAX_TOKEN_LENGTH) throw new StoreError('too_large', 'update token too long');
    this.change(pendingEntry(p));
  }

  /** Makes one change durable: an appended entry, or a snapshot in the next block when this one is full. */
  private change(e: Uint8Array): void {
    const next = cloneState(this.state);
    const len = getU16(e, 2);
    if (!apply(next, e[0], e.subarray(4, 4 + len))) throw new StoreError('bad_record', 'malformed entry');
    if (next.peers.size > MAX_PEERS) throw new StoreError('too_large', `more than ${MAX_PEERS} peers`);
    if (!this.dirty && this.current >= 0 && this.head + e.length <= this.flash.blockSize) {
      this.flash.write((this.first + this.current) * this.flash.blockSize + this.head, e);
      this.appends++;
      this.head += e.length;
    } else this.compact(next);
    this.state = next;
  }

  /** Writes `s` as the snapshot of the next block in the ring. */
  private compact(s: CounterState): void {
    const snapshot = encodeSnapshot(s);
    const ring = this.current < 0 ? 0 : (this.current + 1) % this.count;
    const block = this.first + ring;
    const epoch = this.current < 0 ? 1 : (this.epoch + 1) >>> 0;
    const base = block * this.flash.blockSize;
    this.flash.eraseBlock(block);
    this.erases++;
    this.flash.write(base + LOG_HEADER_LENGTH, snapshot);
    const h = new Uint8Array(LOG_HEADER_LENGTH);
    putU32(h, 0, LOG_MAGIC);
    h[4] = LOG_VERSION;
    putU32(h, 8, epoch);
    putU32(h, 12, crc32(h, 0, 12));
    this.flash.write(base, h);
    this.current = ring;
    this.epoch = epoch;
    this.head = LOG_HEADER_LENGTH + snapshot.length;
    this.dirty = false;
  }
}
