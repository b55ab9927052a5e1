/**
 * `srup c2 migrate --from DIR --to postgres://...`: copies a C2 database into an empty one, table by table, rows
 * as they are (both are first brought to this program's schema version, whose tables and columns are the same in
 * both dialects: sql-schema.ts). The copy is one transaction on the target: all of it or nothing.
 */
import { IDENTITY_COLUMNS, TABLES } from './sql-schema.js';
import type { SqlDb, SqlValue } from './sql.js';

export class MigrateError extends Error {
  readonly reason: 'target_not_empty';
  constructor(reason: 'target_not_empty', message: string) {
    super(message);
    this.name = 'MigrateError';
    this.reason = reason;
  }
}

const CHUNK = 500;

/** Rows copied per table. Both databases must already be at the same schema version (open them as registries). */
export function copyDatabase(from: SqlDb, to: SqlDb): Record<string, number> {
  for (const t of TABLES) {
    const n = Number(to.get<{ n: number }>(`SELECT COUNT(*) AS n FROM ${t}`)?.n ?? 0);
    if (n > 0) throw new MigrateError('target_not_empty', `${to.where} is not empty: its table ${t} has ${n} rows`);
  }
  const copied: Record<string, number> = {};
  to.transaction(() => {
    for (const t of TABLES) {
      copied[t] = 0;
      for (let offset = 0; ; offset += CHUNK) {
        const rows = from.all<Record<string, SqlValue>>(`SELECT * FROM ${t} ORDER BY 1 LIMIT ? OFFSET ?`, [CHUNK, offset]);
        if (rows.length === 0) break;
        const cols = Object.keys(rows[0]);
        const one = `(${cols.map(() => '?').join(', ')})`;
        const values: SqlValue[] = [];
        for (const r of rows) for (const c of cols) values.push(r[c]);
        to.run(`INSERT INTO ${t} (${cols.join(', ')}) VALUES ${rows.map(() => one).join(', ')}`, values);
        copied[t] += rows.length;
        if (rows.length < CHUNK) break;
      }
    }
    if (to.dialect === 'postgres') {
      // Identity columns continue after the copied rows.
      for (const [t, c] of IDENTITY_COLUMNS) {
        to.all(`SELECT setval(pg_get_serial_sequence('${t}', '${c}'), COALESCE((SELECT MAX(${c}) FROM ${t}), 0) + 1, false)`);
      }
    }
  });
  return copied;
}
