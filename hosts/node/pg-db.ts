/**
 * SqlDb (sql.ts) on PostgreSQL through the `pg` client. The registry's interface is synchronous (every read
 * returns a value), pg's is not: the client runs in a worker thread and this thread waits for each answer
 * (Atomics.wait, then receiveMessageOnPort), one loopback round trip per statement. Notifications (LISTEN) come
 * back asynchronously, on a second connection, to the listeners given to onNotification().
 *
 * Integers: BIGINT columns come back as numbers (times in ms and audit numbers stay far below 2^53); u64 ids and
 * sequence IDs are stored as 16 hex digits, as on SQLite. BYTEA comes back as Uint8Array.
 */
import { createRequire } from 'node:module';
import { MessageChannel, Worker, receiveMessageOnPort } from 'node:worker_threads';
import type { MessagePort } from 'node:worker_threads';
import { SqlDb, SqlError } from './sql.js';
import type { SqlValue } from './sql.js';

const WORKER = `
const { workerData } = require('node:worker_threads');
const pg = require(workerData.pg);
pg.types.setTypeParser(20, (v) => Number(v));
const signal = new Int32Array(workerData.signal);
const reply = workerData.reply;
const events = workerData.events;
let client = null;
let listener = null;
const queue = [];
let busy = false;
let deferred = null;
function answer(m) {
  reply.postMessage(m);
  Atomics.store(signal, 0, 1);
  Atomics.notify(signal, 0);
}
async function handle(m) {
  switch (m.op) {
    case 'connect':
      client = new pg.Client({ connectionString: workerData.url, application_name: 'srup-c2' });
      client.on('error', () => {});
      await client.connect();
      return null;
    case 'query': {
      const r = m.params === null ? await client.query(m.sql) : await client.query({ name: m.name, text: m.sql, values: m.params });
      const last = Array.isArray(r) ? r[r.length - 1] : r;
      return { rows: last.rows || [], count: last.rowCount || 0 };
    }
    case 'listen':
      if (listener === null) {
        listener = new pg.Client({ connectionString: workerData.url, application_name: 'srup-c2-listen' });
        listener.on('error', () => {});
        listener.on('notification', (n) => events.postMessage({ channel: n.channel, payload: n.payload ?? '' }));
        await listener.connect();
      }
      await listener.query('LISTEN "' + m.channel.replace(/"/g, '""') + '"');
      return null;
    case 'end':
      if (listener !== null) await listener.end().catch(() => {});
      if (client !== null) await client.end().catch(() => {});
      client = null;
      listener = null;
      return null;
  }
  throw new Error('unknown op ' + m.op);
}
async function pump() {
  busy = true;
  while (queue.length > 0) {
    const m = queue.shift();
    try {
      const value = await handle(m);
      if (m.quiet) continue;
      if (deferred !== null) {
        const error = deferred;
        deferred = null;
        answer({ id: m.id, error });
      } else {
        answer({ id: m.id, value });
      }
    } catch (e) {
      const error = { message: String(e && e.message || e), code: e && typeof e.code === 'string' ? e.code : null };
      if (m.quiet) {
        if (deferred === null) deferred = error;
      } else {
        deferred = null;
        answer({ id: m.id, error });
      }
    }
  }
  busy = false;
}
reply.on('message', (m) => {
  queue.push(m);
  if (!busy) pump();
});
`;

/** Where `pg` is, for the worker: resolved from this module (an ES module, or a CommonJS bundle). */
function pgModulePath(): string {
  const here = typeof __filename === 'string' ? __filename : import.meta.url;
  return createRequire(here).resolve('pg');
}

/** `?` placeholders to `$1, $2...` (the statements here have no `?` inside literals). */
function numbered(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

/** The URL without its password, for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return 'postgres://(unparseable url)';
  }
}

interface Reply {
  readonly id: number;
  readonly value?: unknown;
  readonly error?: { message: string; code: string | null };
}

/** How long one statement may take before the call fails (a lock held by a dead node is released sooner). */
const STATEMENT_WAIT_MS = 60_000;

export class PgDb extends SqlDb {
  readonly dialect = 'postgres' as const;
  readonly where: string;
  private readonly worker: Worker;
  private readonly reply: MessagePort;
  private readonly events: MessagePort;
  private readonly signal: Int32Array;
  /** Each parameterized statement's text for PostgreSQL and the name it is prepared under (once per connection). */
  private readonly sqlCache = new Map<string, { text: string; name: string }>();
  private readonly listeners = new Set<(channel: string, payload: string) => void>();
  private nextId = 1;

  constructor(url: string) {
    super();
    this.where = redactUrl(url);
    const pgPath = pgModulePath();
    const shared = new SharedArrayBuffer(4);
    this.signal = new Int32Array(shared);
    const replies = new MessageChannel();
    const events = new MessageChannel();
    this.reply = replies.port1;
    this.events = events.port1;
    this.worker = new Worker(WORKER, {
      eval: true,
      workerData: { pg: pgPath, url, signal: shared, reply: replies.port2, events: events.port2 },
      transferList: [replies.port2, events.port2],
    });
    this.worker.unref();
    this.events.on('message', (m: { channel: string; payload: string }) => {
      for (const l of this.listeners) l(m.channel, m.payload);
    });
    this.events.unref();
    try {
      this.call('connect', {});
    } catch (e) {
      void this.worker.terminate();
      const why = e instanceof Error ? e.message : String(e);
      throw new SqlError('connect_failed', `cannot connect to ${this.where}: ${why}`, e instanceof SqlError ? e.code : null);
    }
  }

  private call(op: string, body: Record<string, unknown>): unknown {
    const id = this.nextId++;
    this.stats.roundTrips++;
    if (op === 'query') this.stats.statements++;
    Atomics.store(this.signal, 0, 0);
    this.reply.postMessage({ id, op, ...body });
    const deadline = Date.now() + STATEMENT_WAIT_MS;
    for (;;) {
      const got = receiveMessageOnPort(this.reply);
      if (got !== undefined) {
        const r = got.message as Reply;
        if (r.id !== id) continue; // a late answer to a call that timed out
        if (r.error !== undefined) throw new SqlError('query_failed', r.error.message, r.error.code);
        return r.value;
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new SqlError('query_failed', `no answer from ${this.where} in ${STATEMENT_WAIT_MS} ms`);
      Atomics.wait(this.signal, 0, 0, left);
      Atomics.store(this.signal, 0, 0);
    }
  }

  /**
   * A parameterized statement as sent: `$n` placeholders, and a name, so that PostgreSQL parses and plans it
   * once per connection (a named prepared statement of the extended protocol), not at every call.
   */
  private statement(sql: string): { sql: string; name: string } {
    let t = this.sqlCache.get(sql);
    if (t === undefined) {
      t = { text: numbered(sql), name: `srup_${this.sqlCache.size + 1}` };
      this.sqlCache.set(sql, t);
    }
    return { sql: t.text, name: t.name };
  }

  all<T>(sql: string, params: readonly SqlValue[] = []): T[] {
    this.ensureOpen();
    return (this.call('query', { ...this.statement(sql), params }) as { rows: T[] }).rows;
  }

  run(sql: string, params: readonly SqlValue[] = []): number {
    this.ensureOpen();
    return (this.call('query', { ...this.statement(sql), params }) as { count: number }).count;
  }

  exec(sql: string): void {
    this.ensureOpen();
    this.call('query', { sql, params: null });
  }

  override runQuiet(sql: string, params: readonly SqlValue[] = []): void {
    this.ensureOpen();
    this.stats.statements++;
    this.reply.postMessage({ id: 0, op: 'query', ...this.statement(sql), params, quiet: true });
  }

  protected override execQuiet(sql: string): void {
    this.ensureOpen();
    this.stats.statements++;
    this.reply.postMessage({ id: 0, op: 'query', sql, params: null, quiet: true });
  }

  /** Starts listening on `channel` (a second connection); notifications go to the onNotification listeners. */
  listen(channel: string): void {
    this.ensureOpen();
    this.call('listen', { channel });
  }

  /** NOTIFY: delivered to every listener on commit (inside a group: when the group commits). */
  notify(channel: string, payload: string): void {
    this.all('SELECT pg_notify(?, ?)', [channel, payload]);
  }

  onNotification(listener: (channel: string, payload: string) => void): () => void {
    this.listeners.add(listener);
    if (this.listeners.size === 1) this.events.ref();
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0) this.events.unref();
    };
  }

  protected closeConnection(): void {
    try {
      this.call('end', {});
    } catch {
      // closing anyway
    }
    this.events.close();
    this.reply.close();
    void this.worker.terminate();
  }
}
