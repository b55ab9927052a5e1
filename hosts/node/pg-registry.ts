/**
 * The C2 registry on PostgreSQL, for several server nodes serving one fleet: SqlRegistry (sql-registry.ts) over
 * PgDb (pg-db.ts). Selected by `srup c2 serve --db postgres://...`. Every node reads the database when it needs a
 * value, so what one node writes the others see; sequence IDs are allocated under a row lock.
 */
import { PgDb } from './pg-db.js';
import { SqlRegistry } from './sql-registry.js';

export class PgRegistry extends SqlRegistry {
  declare readonly db: PgDb;

  constructor(url: string) {
    super(new PgDb(url));
  }
}

/** True for the --db values that name a PostgreSQL database. */
export function isPostgresUrl(s: string): boolean {
  return /^postgres(ql)?:\/\//i.test(s);
}
