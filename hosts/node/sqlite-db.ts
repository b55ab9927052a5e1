/**
 * SqlDb (sql.ts) on one SQLite file through better-sqlite3, WAL journal, prepared statements cached by their text.
 *
 * Durability: a commit is acknowledged only once the WAL file holding it has been synced (fdatasync), so that it
 * survives kill -9 and power loss, as synchronous=FULL would make it. SQLite itself runs with synchronous=NORMAL
 * (it syncs the WAL before each checkpoint and the database file after it, and not at each commit); this class
 * syncs the WAL after each commit instead:
 *   - a commit outside the group commit (transaction(), write(), a statement outside any transaction): synced
 *     before the call returns, on this thread;
 *   - the group commit (sql.ts group()): synced in the thread pool (fs.fdatasync), the event loop running
 *     meanwhile; the groups' promises resolve once the sync is done. One sync at a time: groups begun while a
 *     sync is under way share one transaction, committed when it is done and covered by the next sync.
 * fsync and fdatasync act on the file, whichever descriptor they are given: this one is opened read-only.
 * A database whose journal cannot be WAL (":memory:") keeps synchronous=FULL.
 */
import fs from 'node:fs';
import Database from 'better-sqlite3';
import { SqlDb, SqlError } from './sql.js';
import type { SqlValue } from './sql.js';

function bind(params: readonly SqlValue[]): unknown[] {
  return params.map((v) => (v instanceof Uint8Array && !Buffer.isBuffer(v) ? Buffer.from(v.buffer, v.byteOffset, v.byteLength) : v));
}

function unbind<T>(row: Record<string, unknown>): T {
  for (const k in row) {
    const v = row[k];
    if (Buffer.isBuffer(v)) {
      const out = new Uint8Array(v.byteLength);
      out.set(v);
      row[k] = out;
    }
  }
  return row as T;
}

function wrap(e: unknown): never {
  if (e instanceof Error && !(e instanceof SqlError)) {
    const code = (e as { code?: unknown }).code;
    throw new SqlError('query_failed', e.message, typeof code === 'string' ? code : null);
  }
  throw e;
}

export class SqliteDb extends SqlDb {
  readonly dialect = 'sqlite' as const;
  readonly where: string;
  private readonly db: Database.Database;
  private readonly statements = new Map<string, Database.Statement>();
  /** WAL mode: this class syncs the WAL file after each commit (see above). */
  private readonly walSync: boolean;
  private walFd = -1;
  /** Group commits waiting for a sync that has not started yet. */
  private unsynced: { resolve: () => void; reject: (e: Error) => void }[] = [];
  /** Those covered by the sync under way, or null. */
  private syncing: { resolve: () => void; reject: (e: Error) => void }[] | null = null;
  /** How many WAL syncs were made, on this thread and in the thread pool (for the benchmark's cost model). */
  readonly syncs = { now: 0, later: 0 };

  constructor(path: string) {
    super();
    this.where = path;
    this.db = new Database(path);
    const mode = String(this.db.pragma('journal_mode = WAL', { simple: true })).toLowerCase();
    this.walSync = mode === 'wal';
    this.db.pragma(this.walSync ? 'synchronous = NORMAL' : 'synchronous = FULL');
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('busy_timeout = 5000');
  }

  /** The WAL file, opened once (SQLite keeps it while a connection is open; a checkpoint reuses it in place). */
  private wal(): number {
    if (this.walFd < 0) this.walFd = fs.openSync(`${this.where}-wal`, 'r');
    return this.walFd;
  }

  /** In the group commit: its sync is made in the thread pool, shared with the writes of the same moment. */
  override writeAwaited<T>(sql: string, params?: readonly SqlValue[]): Promise<T[]> {
    return this.group(() => this.writeReturning<T>(sql, params));
  }

  protected override durableNow(): void {
    if (!this.walSync) return;
    try {
      fs.fdatasyncSync(this.wal());
    } catch (e) {
      throw new SqlError('commit_failed', `cannot sync ${this.where}-wal: ${e instanceof Error ? e.message : String(e)}`);
    }
    this.syncs.now++;
    // This sync covers every commit before it, the group commits still waiting included.
    const covered = [...(this.syncing ?? []), ...this.unsynced];
    this.syncing = null;
    this.unsynced = [];
    for (const w of covered) w.resolve();
  }

  protected override durableLater(): Promise<void> | null {
    if (!this.walSync) return null;
    return new Promise<void>((resolve, reject) => {
      this.unsynced.push({ resolve, reject });
      if (this.syncing === null) this.startSync();
    });
  }

  private startSync(): void {
    const batch = this.unsynced;
    this.unsynced = [];
    this.syncing = batch;
    let fd: number;
    try {
      fd = this.wal();
    } catch (e) {
      this.syncing = null;
      const err = new SqlError('commit_failed', `cannot open ${this.where}-wal: ${e instanceof Error ? e.message : String(e)}`);
      for (const w of batch) w.reject(err);
      return;
    }
    fs.fdatasync(fd, (e) => {
      this.syncs.later++;
      if (this.syncing === batch) {
        // (else a sync on this thread covered the batch already)
        this.syncing = null;
        const err = e === null ? null : new SqlError('commit_failed', `cannot sync ${this.where}-wal: ${e.message}`);
        for (const w of batch) if (err === null) w.resolve(); else w.reject(err);
      }
      if (this.isClosed) this.closeWal();
      else if (this.syncing === null && this.unsynced.length > 0) this.startSync();
      else if (this.syncing === null) this.resumeGroupCommit();
    });
  }

  protected override durabilityBusy(): boolean {
    return this.syncing !== null;
  }

  private closeWal(): void {
    if (this.walFd < 0) return;
    try {
      fs.closeSync(this.walFd);
    } catch {
      // closing anyway
    }
    this.walFd = -1;
  }

  /** A write statement outside any transaction committed by itself: sync it before returning. */
  private afterStatement(reader: boolean): void {
    if (!reader && this.walSync && !this.db.inTransaction) this.durableNow();
  }

  /** PRAGMA user_version: the schema version of this file. */
  userVersion(): number {
    return this.db.pragma('user_version', { simple: true }) as number;
  }

  /** One PRAGMA's value on this connection (e.g. 'synchronous': 2 for FULL). */
  pragma(name: string): unknown {
    return this.db.pragma(name, { simple: true });
  }

  setUserVersion(v: number): void {
    this.db.pragma(`user_version = ${v}`);
  }

  private statement(sql: string): Database.Statement {
    let st = this.statements.get(sql);
    if (st === undefined) {
      st = this.db.prepare(sql);
      this.statements.set(sql, st);
    }
    return st;
  }

  all<T>(sql: string, params: readonly SqlValue[] = []): T[] {
    this.ensureOpen();
    this.stats.statements++;
    try {
      const st = this.statement(sql);
      if (!st.reader) {
        st.run(...bind(params));
        this.afterStatement(false);
        return [];
      }
      const rows = (st.all(...bind(params)) as Record<string, unknown>[]).map((r) => unbind<T>(r));
      // INSERT ... RETURNING is a reader that writes.
      if (!st.readonly) this.afterStatement(false);
      return rows;
    } catch (e) {
      return wrap(e);
    }
  }

  run(sql: string, params: readonly SqlValue[] = []): number {
    this.ensureOpen();
    this.stats.statements++;
    try {
      const n = this.statement(sql).run(...bind(params)).changes;
      this.afterStatement(false);
      return n;
    } catch (e) {
      return wrap(e);
    }
  }

  exec(sql: string): void {
    this.ensureOpen();
    this.stats.statements++;
    try {
      this.db.exec(sql);
    } catch (e) {
      wrap(e);
    }
  }

  protected closeConnection(): void {
    if (this.db.open) this.db.close();
    // A sync in the thread pool still holds the descriptor: it closes it when done.
    if (this.syncing === null) this.closeWal();
  }
}
