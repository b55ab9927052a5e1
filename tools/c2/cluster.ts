/**
 * Several C2 server nodes on one fleet (same identity, one PostgreSQL registry, one broker): what one node tells
 * the others, over PostgreSQL LISTEN/NOTIFY on the registry's own database — no other moving part.
 *
 * Two kinds of notes share one channel: the engine's (modules/c2/host.ts ClusterNote: an answer to a request
 * another node sent, an update that moved), and the console's events (each node's operators see what happened
 * on every node). A notification is delivered after the transaction that sent it commits, so a note never
 * arrives before the writes it is about. A node ignores its own notes.
 */
import { randomBytes } from 'node:crypto';
import type { PgDb } from '../../hosts/node/pg-db.js';
import type { Cluster, ClusterNote, Log } from '../../modules/c2/host.js';

export const CLUSTER_CHANNEL = 'srup_c2';
/** PostgreSQL refuses NOTIFY payloads of 8000 bytes or more; console events that large are not forwarded. */
const MAX_PAYLOAD = 7900;

type Wire =
  | { from: string; engine: { kind: 'answer'; device: string; token: string; status: number } }
  | { from: string; engine: { kind: 'identification'; device: string; token: string; text: string } }
  | { from: string; engine: { kind: 'update'; token: string } }
  | { from: string; engine: { kind: 'membership'; device: string; joined: boolean } }
  | { from: string; app: unknown };

const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
const unhex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));

export class PgCluster implements Cluster {
  /** This node's name in notes (random per process). */
  readonly node = randomBytes(6).toString('hex');
  private readonly engineListeners = new Set<(n: ClusterNote) => void>();
  private readonly appListeners = new Set<(e: unknown) => void>();
  private readonly stop: () => void;
  private queue: string[] = [];

  constructor(private readonly db: PgDb, private readonly log: Log) {
    db.listen(CLUSTER_CHANNEL);
    this.stop = db.onNotification((channel, payload) => {
      if (channel === CLUSTER_CHANNEL) this.receive(payload);
    });
  }

  publish(note: ClusterNote): void {
    const engine =
      note.kind === 'update'
        ? note
        : note.kind === 'membership'
          ? { kind: note.kind, device: note.device.toString(16), joined: note.joined }
          : note.kind === 'answer'
          ? { kind: note.kind, device: note.device.toString(16), token: hex(note.token), status: note.status }
          : { kind: note.kind, device: note.device.toString(16), token: hex(note.token), text: note.text };
    this.send({ from: this.node, engine } as Wire);
  }

  listen(fn: (note: ClusterNote) => void): () => void {
    this.engineListeners.add(fn);
    return () => this.engineListeners.delete(fn);
  }

  /** A console event for the other nodes' operators. */
  publishAppEvent(e: unknown): void {
    this.send({ from: this.node, app: e });
  }

  onAppEvent(fn: (e: unknown) => void): () => void {
    this.appListeners.add(fn);
    return () => this.appListeners.delete(fn);
  }

  close(): void {
    this.stop();
    this.engineListeners.clear();
    this.appListeners.clear();
  }

  /** Notes of one turn of the event loop go out together: one NOTIFY per up to MAX_PAYLOAD bytes. */
  private send(w: Wire): void {
    const text = JSON.stringify(w);
    if (text.length > MAX_PAYLOAD) {
      this.log('debug', 'cluster_note_too_large', { bytes: text.length });
      return;
    }
    this.queue.push(text);
    if (this.queue.length === 1) setImmediate(() => this.flush());
  }

  private flush(): void {
    const queue = this.queue;
    this.queue = [];
    let batch: string[] = [];
    let size = 2;
    const out = () => {
      if (batch.length === 0) return;
      try {
        if (!this.db.isClosed) this.db.notify(CLUSTER_CHANNEL, `[${batch.join(',')}]`);
      } catch (e) {
        this.log('warn', 'cluster_notify_failed', { why: String(e) });
      }
      batch = [];
      size = 2;
    };
    for (const t of queue) {
      if (size + t.length + 1 > MAX_PAYLOAD) out();
      batch.push(t);
      size += t.length + 1;
    }
    out();
  }

  private receive(payload: string): void {
    let list: Wire[];
    try {
      list = JSON.parse(payload) as Wire[];
    } catch {
      return;
    }
    if (!Array.isArray(list)) return;
    for (const w of list) if (w.from !== this.node) this.receiveOne(w);
  }

  private receiveOne(w: Wire): void {
    if ('app' in w) {
      for (const l of this.appListeners) l(w.app);
      return;
    }
    const e = w.engine;
    const note: ClusterNote =
      e.kind === 'update'
        ? { kind: 'update', token: e.token }
        : e.kind === 'membership'
          ? { kind: 'membership', device: BigInt('0x' + e.device), joined: e.joined }
          : e.kind === 'answer'
          ? { kind: 'answer', device: BigInt('0x' + e.device), token: unhex(e.token), status: e.status }
          : { kind: 'identification', device: BigInt('0x' + e.device), token: unhex(e.token), text: e.text };
    for (const l of this.engineListeners) {
      try {
        l(note);
      } catch (err) {
        this.log('warn', 'cluster_listener_threw', { why: String(err) });
      }
    }
  }
}
