/**
 * One synchronous SQL connection, as the registry and the C2 application's tables use it, with group commit.
 * Two implementations: SQLite (sqlite-db.ts, better-sqlite3) and PostgreSQL (pg-db.ts, the `pg` client in a
 * worker thread, waited on synchronously).
 *
 * Statements are written once for both: `?` placeholders, `INSERT ... ON CONFLICT ... DO UPDATE`, `RETURNING`.
 * Values: string, number (integers, at most 2^53), null, Uint8Array (BLOB / BYTEA). Integer columns come back as
 * numbers, byte columns as Uint8Array.
 *
 * Durability. A write made outside a group is durable when it returns (its own transaction, or the end of the
 * outermost transaction()). group(fn) runs fn now, inside a transaction shared with the other groups of the same
 * moment; that transaction is committed once, on the next turn of the event loop, and the group's promise
 * resolves after the commit. So N commands arriving together cost one commit, and whoever awaits the promise
 * (before publishing a message, before acting on a received one) knows the writes survive a crash. A write made
 * outside a group while a group's transaction is open commits it at once (the groups' promises resolve then).
 * An implementation may make a group's commit durable after the COMMIT statement, off this thread
 * (durableLater: SQLite syncs its WAL file in the thread pool); the group's promise resolves only then.
 */

export type SqlValue = string | number | null | Uint8Array;

export type SqlDialect = 'sqlite' | 'postgres';

/** Why a database call failed, for the C2 application's messages. */
export type SqlErrorReason = 'connect_failed' | 'query_failed' | 'commit_failed' | 'closed' | 'schema_too_new';

export class SqlError extends Error {
  readonly reason: SqlErrorReason;
  /** The database's own error code when it gave one (SQLSTATE on PostgreSQL, SQLITE_* on SQLite). */
  readonly code: string | null;

  constructor(reason: SqlErrorReason, message: string, code: string | null = null) {
    super(message);
    this.name = 'SqlError';
    this.reason = reason;
    this.code = code;
  }

  /** A deadlock or serialization failure between server nodes: the same work may simply be done again. */
  get retryable(): boolean {
    return this.code === '40P01' || this.code === '40001';
  }
}

/** The primitive statements an implementation provides; GroupCommit builds the rest on them. */
export abstract class SqlDb {
  abstract readonly dialect: SqlDialect;
  /** Where the data is, for messages: a file path or a postgres:// URL without its password. */
  abstract readonly where: string;

  /** Every row of a query. */
  abstract all<T>(sql: string, params?: readonly SqlValue[]): T[];
  /** Runs a statement; returns how many rows it changed. */
  abstract run(sql: string, params?: readonly SqlValue[]): number;
  /** Runs a script of statements without parameters. */
  abstract exec(sql: string): void;
  protected abstract closeConnection(): void;

  /**
   * A statement whose answer nobody waits for (BEGIN, SAVEPOINT, RELEASE): an implementation may send it without
   * waiting, as long as a failure shows up in the next call that waits.
   */
  protected execQuiet(sql: string): void {
    this.exec(sql);
  }

  /**
   * What this connection did (for the benchmark's cost model): statements sent, of which waited for (a round
   * trip to the database server; 0 on SQLite, which runs in this process), and commits.
   */
  readonly stats = { statements: 0, roundTrips: 0, commits: 0 };

  private depth = 0;
  private inGroup = 0;
  private groupOpen = false;
  private waiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private flushScheduled = false;
  private closed = false;
  private savepoints = 0;

  /**
   * A statement inside a transaction whose result nobody needs: an implementation may send it without waiting
   * (its failure shows up in the next call that waits, at the latest the COMMIT, which then fails).
   */
  runQuiet(sql: string, params?: readonly SqlValue[]): void {
    this.run(sql, params);
  }

  get<T>(sql: string, params?: readonly SqlValue[]): T | undefined {
    return this.all<T>(sql, params)[0];
  }

  /** A write outside group(): durable when it returns. */
  write(sql: string, params?: readonly SqlValue[]): number {
    const n = this.run(sql, params);
    this.settleOutsideGroup();
    return n;
  }

  /** A write that returns rows (INSERT ... RETURNING), durable when it returns unless inside a group. */
  writeReturning<T>(sql: string, params?: readonly SqlValue[]): T[] {
    const rows = this.all<T>(sql, params);
    this.settleOutsideGroup();
    return rows;
  }

  /**
   * A lone write (that may return rows) whose caller awaits its durability rather than needing it on return:
   * the implementation takes its cheapest durable path. By default the write is made durable now, as
   * writeReturning (PostgreSQL commits it in the same round trip); SQLite, whose durable-now is a disk sync on
   * the event loop, puts it in the group commit instead.
   */
  writeAwaited<T>(sql: string, params?: readonly SqlValue[]): Promise<T[]> {
    try {
      return Promise.resolve(this.writeReturning<T>(sql, params));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * Runs fn with all of its writes in one transaction: all become durable together, or none (fn threw; the
   * error is rethrown). Nested calls join the outer one.
   */
  transaction<T>(fn: () => T): T {
    this.ensureOpen();
    const outermost = this.depth === 0 && !this.groupOpen;
    const sp = outermost ? '' : `sp${++this.savepoints}`;
    this.execQuiet(outermost ? 'BEGIN' : `SAVEPOINT ${sp}`);
    this.depth++;
    let value: T;
    try {
      value = fn();
    } catch (e) {
      this.depth--;
      this.exec(outermost ? 'ROLLBACK' : `ROLLBACK TO SAVEPOINT ${sp}; RELEASE SAVEPOINT ${sp}`);
      throw e;
    }
    this.depth--;
    if (outermost) {
      this.commit('COMMIT');
      this.durableNow();
    } else this.execQuiet(`RELEASE SAVEPOINT ${sp}`);
    this.settleOutsideGroup();
    return value;
  }

  /**
   * Group commit: runs fn now (its writes all or none, as transaction()) and resolves with its value once those
   * writes are durable. Groups started in the same turn of the event loop share one commit.
   */
  group<T>(fn: () => T): Promise<T> {
    try {
      this.ensureOpen();
    } catch (e) {
      return Promise.reject(e);
    }
    if (this.depth > 0) {
      // Inside a transaction(): it decides durability; the group is part of it.
      try {
        return Promise.resolve(this.transaction(fn));
      } catch (e) {
        return Promise.reject(e);
      }
    }
    if (!this.groupOpen) {
      this.execQuiet('BEGIN');
      this.groupOpen = true;
    }
    let value: T;
    this.inGroup++;
    try {
      value = this.transaction(fn);
    } catch (e) {
      this.scheduleFlush();
      return Promise.reject(e);
    } finally {
      this.inGroup--;
    }
    this.scheduleFlush();
    return new Promise<T>((resolve, reject) => this.waiters.push({ resolve: () => resolve(value), reject }));
  }

  /** Commits the open group transaction now, if any, durable when this returns (close() and tests). */
  flush(): void {
    this.flushGroup('now');
  }

  /**
   * 'now': the commit is durable when this returns. 'later' (the scheduled group commit): the groups' promises
   * resolve once the implementation says the commit is durable (durableLater), which may be after this returns.
   */
  private flushGroup(when: 'now' | 'later'): void {
    if (!this.groupOpen || this.depth > 0) return;
    const waiters = this.waiters;
    this.waiters = [];
    this.groupOpen = false;
    try {
      this.commit('COMMIT');
    } catch (e) {
      const err = e instanceof Error ? e : new SqlError('commit_failed', String(e));
      try {
        this.exec('ROLLBACK');
      } catch {
        // the connection is gone; the transaction with it
      }
      for (const w of waiters) w.reject(err);
      return;
    }
    let durable: Promise<void> | null = null;
    try {
      if (when === 'now') this.durableNow();
      else durable = this.durableLater();
    } catch (e) {
      durable = Promise.reject(e instanceof Error ? e : new SqlError('commit_failed', String(e)));
    }
    if (durable === null) {
      for (const w of waiters) w.resolve();
      return;
    }
    durable.then(
      () => {
        for (const w of waiters) w.resolve();
      },
      (e: unknown) => {
        const err = e instanceof Error ? e : new SqlError('commit_failed', String(e));
        for (const w of waiters) w.reject(err);
      },
    );
  }

  /**
   * After a COMMIT outside the scheduled group commit: makes it durable before returning (throws
   * SqlError('commit_failed') if it cannot). The default does nothing: the COMMIT itself was durable.
   */
  protected durableNow(): void {}

  /**
   * After the scheduled group commit's COMMIT: a promise that resolves once it is durable, or null when it
   * already is (the default).
   */
  protected durableLater(): Promise<void> | null {
    return null;
  }

  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    this.closeConnection();
  }

  /** True inside transaction() or a group's function: a write now becomes durable with that transaction. */
  get inTransaction(): boolean {
    return this.depth > 0;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  protected ensureOpen(): void {
    if (this.closed) throw new SqlError('closed', `the database ${this.where} is closed`);
  }

  private commit(sql: string): void {
    this.stats.commits++;
    try {
      this.exec(sql);
    } catch (e) {
      if (e instanceof SqlError) throw new SqlError('commit_failed', e.message, e.code);
      throw e;
    }
  }

  private settleOutsideGroup(): void {
    if (this.depth === 0 && this.inGroup === 0 && this.groupOpen) this.flushGroup('now');
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      if (this.closed) return;
      // While the previous group commit is still being made durable, the open group keeps collecting: its
      // commit follows when that one is done (resumeGroupCommit), and covers all of them.
      if (this.durabilityBusy()) this.flushWaiting = true;
      else this.flushGroup('later');
    });
  }

  private flushWaiting = false;

  /** True while a group commit is being made durable (durableLater's promise has not resolved yet). */
  protected durabilityBusy(): boolean {
    return false;
  }

  /** Called by the implementation when durabilityBusy() turns false: commits the group that waited, if any. */
  protected resumeGroupCommit(): void {
    if (!this.flushWaiting) return;
    this.flushWaiting = false;
    if (!this.closed) this.flushGroup('later');
  }
}
