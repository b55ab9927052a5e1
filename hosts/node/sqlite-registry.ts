/**
 * The C2 registry on one SQLite file (the embedded default): SqlRegistry (sql-registry.ts) over SqliteDb
 * (WAL, synchronous=FULL). The schema and its migrations are in sql-schema.ts; the C2 application's own tables
 * (campaigns, sessions, settings) are read and written by tools/c2/store.ts over the same connection.
 */
import { SqlRegistry } from './sql-registry.js';
import { SqliteDb } from './sqlite-db.js';

export { SCHEMA_VERSION } from './sql-schema.js';

export class SqliteRegistry extends SqlRegistry {
  readonly path: string;

  constructor(path: string) {
    super(new SqliteDb(path));
    this.path = path;
  }
}
