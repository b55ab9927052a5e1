/**
 * The registry contract (test/support/c2-registry-contract.ts) against every Registry implementation in the
 * tree: the in-memory one (modules/c2), the SQLite one the C2 application uses by default and the PostgreSQL one
 * (hosts/node).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryRegistry } from '../modules/c2/memory-registry.js';
import { SqliteRegistry } from '../hosts/node/sqlite-registry.js';
import { PgRegistry } from '../hosts/node/pg-registry.js';
import { registryContract } from './support/c2-registry-contract.js';
import { dropPgSchemas, freshPgUrl, pgDescribe } from './support/postgres.js';

registryContract('MemoryRegistry', () => new MemoryRegistry());

const dirs = new Map<SqliteRegistry, string>();
registryContract(
  'SqliteRegistry',
  () => {
    const dir = mkdtempSync(join(tmpdir(), 'c2-registry-'));
    const r = new SqliteRegistry(join(dir, 'c2.db'));
    dirs.set(r, dir);
    return r;
  },
  (r) => {
    const s = r as SqliteRegistry;
    s.close();
    rmSync(dirs.get(s)!, { recursive: true, force: true });
    dirs.delete(s);
  },
);

pgDescribe('PgRegistry (PostgreSQL)', () => {
  afterAll(() => dropPgSchemas());
  registryContract(
    'PgRegistry',
    () => new PgRegistry(freshPgUrl()),
    (r) => (r as PgRegistry).close(),
  );
});
