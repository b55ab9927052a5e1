/**
 * The C2 registry on PostgreSQL, for several server nodes serving one fleet: SqlRegistry (sql-registry.ts) over
 * PgDb (pg-db.ts). Selected by `srup c2 serve --db postgres://...`. Every node reads the database when it needs a
 * value, so what one node writes the others see; sequence IDs are allocated under a row lock.
 */
import { PgDb } from './pg-db.js';
import { SqlRegistry } from './sql-registry.js';

/** Several nodes take one device's messages in any order: up to this many IDs behind the newest are taken once. */
export const ACCEPT_WINDOW = 64;

export class PgRegistry extends SqlRegistry {
  declare readonly db: PgDb;

  /**
   * `acceptWindow` (default ACCEPT_WINDOW): how far out of order one device's messages may be taken (several
   * nodes share its messages); see SqlRegistry.
   */
  constructor(url: string, options: { acceptWindow?: number } = {}) {
    super(new PgDb(url), { acceptWindow: options.acceptWindow ?? ACCEPT_WINDOW });
  }
}

/** True for the --db values that name a PostgreSQL database. */
export function isPostgresUrl(s: string): boolean {
  return /^postgres(ql)?:\/\//i.test(s);
}
