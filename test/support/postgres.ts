/**
 * PostgreSQL for the tests: the server named by SRUP_TEST_PG (default postgres://postgres@127.0.0.1:5432/postgres,
 * which `.ci/run` starts), and one schema per test so that suites can run in parallel on one server.
 *
 *   const pg = postgresOrSkip('PgRegistry contract');   // prints one skip line when no server answers
 *   pgDescribe('...', () => { ... url = pg.freshUrl() ... });
 */
import { randomBytes } from 'node:crypto';
import { PgDb } from '../../hosts/node/pg-db.js';

export const PG_BASE_URL = process.env.SRUP_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/postgres';

let probed: string | null | undefined;

/** Null when the server answers, else why not. Probed once per test file. */
export function postgresProblem(): string | null {
  if (probed !== undefined) return probed;
  try {
    new PgDb(PG_BASE_URL).close();
    probed = null;
  } catch (e) {
    probed = e instanceof Error ? e.message : String(e);
  }
  return probed;
}

/** describe() when PostgreSQL answers; otherwise one clear line and the suite skipped. */
export function pgDescribe(name: string, fn: () => void): void {
  const problem = postgresProblem();
  if (problem === null) {
    describe(name, fn);
    return;
  }
  // eslint-disable-next-line no-console
  console.log(`SKIPPED (no PostgreSQL server: ${problem}; set SRUP_TEST_PG or run .ci/run): ${name}`);
  describe.skip(name, fn);
}

const made: string[] = [];

/** A URL whose search_path is a new empty schema on the test server. */
export function freshPgUrl(): string {
  const schema = `t_${randomBytes(6).toString('hex')}`;
  const admin = new PgDb(PG_BASE_URL);
  try {
    admin.exec(`CREATE SCHEMA ${schema}`);
  } finally {
    admin.close();
  }
  made.push(schema);
  const u = new URL(PG_BASE_URL);
  u.searchParams.set('options', `-c search_path=${schema}`);
  return u.toString();
}

/** Drops the schemas freshPgUrl made (call in afterAll). */
export function dropPgSchemas(): void {
  if (made.length === 0) return;
  const admin = new PgDb(PG_BASE_URL);
  try {
    while (made.length > 0) admin.exec(`DROP SCHEMA IF EXISTS ${made.pop()} CASCADE`);
  } finally {
    admin.close();
  }
}
