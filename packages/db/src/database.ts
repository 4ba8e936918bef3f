import { mkdir } from 'node:fs/promises';
import { PGlite } from '@electric-sql/pglite';
import { Kysely, PGliteDialect, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { preparingPool } from './prepared-statements.js';
import type { DatabaseSchema } from './schema.js';

export type DialectName = 'postgres' | 'pglite';

export interface DatabaseOptions {
  /** A PostgreSQL connection string; when unset the embedded PGlite is used. */
  url?: string | undefined;
  /** Where PGlite keeps its files; unset means in memory (tests). */
  pgliteDataDir?: string | undefined;
  /** node-postgres pool size. */
  poolSize?: number;
  /** How long a request waits for a pool connection before it fails (and the API answers 503). */
  connectionTimeoutMs?: number;
  /**
   * Longest a statement may run (node-postgres only): the server's `statement_timeout`, and the same
   * bound on the client's wait for an answer, which also covers a server that hangs instead of failing.
   * PGlite runs statements synchronously in-process, where no timer can interrupt them.
   */
  statementTimeoutMs?: number;
  /** Called with errors of idle pool clients, which would otherwise crash the process. */
  onPoolError?: (error: Error) => void;
}

export interface Database {
  db: Kysely<DatabaseSchema>;
  dialect: DialectName;
  /** Connections in use and waiting requests (node-postgres only; PGlite has one session). */
  poolStats(): { total: number; idle: number; waiting: number };
  close(): Promise<void>;
}

const INT8_OID = 20;
const INT8_ARRAY_OID = 1016;
const TIMESTAMPTZ_OID = 1184;

/**
 * int8 comes back from node-postgres as a string and from PGlite as a number (a BigInt above 2^53).
 * Both dialects go through this one parser so that ids and versions are plain numbers everywhere.
 */
export function parseInt8(text: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value)) throw new Error(`int8 value ${text} does not fit a JavaScript number`);
  return value;
}

function parseInt8Array(text: string): number[] {
  const inner = text.slice(1, -1);
  return inner === '' ? [] : inner.split(',').map(parseInt8);
}

const postgresTypes = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === INT8_OID) return parseInt8;
    if (oid === INT8_ARRAY_OID) return parseInt8Array;
    // biome-ignore lint/suspicious/noExplicitAny: node-postgres' overloads do not accept a union format
    return pg.types.getTypeParser(oid, format as any);
  },
};

export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  if (options.url) {
    const pool = new pg.Pool({
      connectionString: options.url,
      max: options.poolSize ?? 10,
      connectionTimeoutMillis: options.connectionTimeoutMs ?? 5000,
      ...(options.statementTimeoutMs
        ? { statement_timeout: options.statementTimeoutMs, query_timeout: options.statementTimeoutMs }
        : {}),
      types: postgresTypes,
    });
    pool.on('error', (error) => options.onPoolError?.(error));
    // The pool listens for errors of idle clients only: a connection that dies while checked out between
    // two queries (a restart, a failover) would otherwise be an uncaught exception that ends the process.
    // Its next query fails instead ("not queryable"), which the API answers with 503.
    pool.on('connect', (client) => client.on('error', (error) => options.onPoolError?.(error)));
    const db = new Kysely<DatabaseSchema>({ dialect: new PostgresDialect({ pool: preparingPool(pool) }) });
    return {
      db,
      dialect: 'postgres',
      poolStats: () => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }),
      close: () => db.destroy(),
    };
  }

  if (options.pgliteDataDir) await mkdir(options.pgliteDataDir, { recursive: true });
  // One options object: `new PGlite(undefined, options)` (in memory) silently drops the options.
  const pglite = new PGlite({
    dataDir: options.pgliteDataDir,
    parsers: {
      [INT8_OID]: parseInt8,
      [INT8_ARRAY_OID]: parseInt8Array,
      // PGlite's own parser hands "0013-01-01 00:00:00+00" to Date's legacy parsing, which reads the
      // years 0–99 as 1900–1999 or not at all; node-postgres' parser reads every year as written.
      [TIMESTAMPTZ_OID]: pg.types.getTypeParser(TIMESTAMPTZ_OID, 'text'),
    },
  });
  await pglite.waitReady;
  const db = new Kysely<DatabaseSchema>({ dialect: new PGliteDialect({ pglite }) });
  return {
    db,
    dialect: 'pglite',
    poolStats: () => ({ total: 1, idle: 1, waiting: 0 }),
    close: async () => {
      await db.destroy();
      if (!pglite.closed) await pglite.close();
    },
  };
}

/** A round trip to the database, for readiness checks. */
export async function pingDatabase(db: Kysely<DatabaseSchema>): Promise<void> {
  await sql`select 1`.execute(db);
}
