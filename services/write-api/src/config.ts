import { randomBytes } from 'node:crypto';
import {
  camelCaseKeys,
  DEFAULT_STALE_AFTER_MS,
  databaseEnv,
  databaseLocation,
  envBool,
  envInt,
  envString,
  loadConfig,
  serviceEnv,
} from '@wizard-stream/contracts';
import { z } from 'zod';

export const writeApiConfigSchema = z
  .object({
    ...serviceEnv(8000),
    ...databaseEnv,
    DB_POOL_SIZE: envInt(10, { min: 1, max: 1000 }),
    /** HMAC key for stream tokens; a random one (tokens die with the process) when unset. */
    STREAM_TOKEN_SECRET: envString(),
    STALE_AFTER_MS: envInt(DEFAULT_STALE_AFTER_MS, { min: 1000 }),
    STALE_SWEEP_MS: envInt(5000, { min: 50 }),
    RELAY_INTERVAL_MS: envInt(1000, { min: 50 }),
    RELAY_GRACE_MS: envInt(2000, { min: 0 }),
    RATE_LIMIT_PER_MIN: envInt(600, { min: 1 }),
    AUTH_CACHE_MS: envInt(5000, { min: 0 }),
    MIGRATE_ON_START: envBool(true),
    /** Whole request (headers and body) must arrive within this; a trickled body is cut off with 408. */
    REQUEST_TIMEOUT_MS: envInt(10_000, { min: 100, max: 600_000 }),
    /** Longest a database statement (and the wait for a pool connection) may take before a 503. */
    STATEMENT_TIMEOUT_MS: envInt(5000, { min: 10, max: 600_000 }),
    /** Pushes waiting for an upsert statement beyond which new ones get 503 + Retry-After. */
    UPSERT_QUEUE_LIMIT: envInt(2000, { min: 1, max: 1_000_000 }),
    /** Failed relay publishes of one version before the row is set aside (dead-lettered). */
    RELAY_MAX_ATTEMPTS: envInt(10, { min: 1, max: 1000 }),
  })
  .transform(({ DATABASE_URL, PGLITE_DIR, STREAM_TOKEN_SECRET, ...settings }) => ({
    ...camelCaseKeys(settings),
    database: databaseLocation({ DATABASE_URL, PGLITE_DIR }),
    streamTokenSecret: STREAM_TOKEN_SECRET ?? randomBytes(32).toString('hex'),
    streamTokenSecretGenerated: STREAM_TOKEN_SECRET === undefined,
  }));

export type WriteApiConfig = z.output<typeof writeApiConfigSchema>;

/** Reads and validates the environment once; throws a ConfigError naming every bad variable. */
export function loadWriteApiConfig(env: Record<string, string | undefined>): WriteApiConfig {
  return loadConfig('write-api', writeApiConfigSchema, env);
}
