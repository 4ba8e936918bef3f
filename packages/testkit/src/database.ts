import { randomBytes } from 'node:crypto';
import { type Database, type DialectName, migrateToLatest, openDatabase } from '@wizard-stream/db';
import pg from 'pg';

/** The PostgreSQL server tests use; CI starts it (see .ci/run). */
export const TEST_POSTGRES_URL =
  process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export const DIALECTS: readonly DialectName[] = ['postgres', 'pglite'];

export interface TestDatabase extends Database {
  /** The connection string of a PostgreSQL test database; undefined for PGlite. */
  url: string | undefined;
  /** Closes the handle and drops the PostgreSQL database. */
  dispose(): Promise<void>;
}

async function adminQuery(text: string): Promise<void> {
  const client = new pg.Client({ connectionString: TEST_POSTGRES_URL });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

/**
 * A fresh, migrated database: a new PostgreSQL database on the test server, or an in-memory PGlite.
 * PGlite takes seconds to start, so share one per test file.
 */
export async function createTestDatabase(dialect: DialectName): Promise<TestDatabase> {
  if (dialect === 'pglite') {
    const database = await openDatabase({});
    await migrateToLatest(database.db);
    return { ...database, url: undefined, dispose: () => database.close() };
  }
  const name = `wizard_test_${randomBytes(6).toString('hex')}`;
  await adminQuery(`create database ${name}`);
  const url = new URL(TEST_POSTGRES_URL);
  url.pathname = `/${name}`;
  const database = await openDatabase({ url: url.toString(), poolSize: 20 });
  await migrateToLatest(database.db);
  return {
    ...database,
    url: url.toString(),
    dispose: async () => {
      await database.close();
      await adminQuery(`drop database if exists ${name} with (force)`);
    },
  };
}
