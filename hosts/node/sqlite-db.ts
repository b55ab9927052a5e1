/**
 * SqlDb (sql.ts) on one SQLite file through better-sqlite3: WAL journal, synchronous=FULL (a commit that
 * returned has been fsynced and survives kill -9 or power loss), prepared statements cached by their text.
 */
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

  constructor(path: string) {
    super();
    this.where = path;
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('busy_timeout = 5000');
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
        return [];
      }
      return (st.all(...bind(params)) as Record<string, unknown>[]).map((r) => unbind<T>(r));
    } catch (e) {
      return wrap(e);
    }
  }

  run(sql: string, params: readonly SqlValue[] = []): number {
    this.ensureOpen();
    this.stats.statements++;
    try {
      return this.statement(sql).run(...bind(params)).changes;
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
  }
}
