import { randomBytes } from 'node:crypto';
import {
  ConfigError,
  camelCaseKeys,
  DEFAULT_STALE_AFTER_MS,
  databaseEnv,
  databaseLocation,
  envBool,
  envInt,
  envOptionalInt,
  envSecret,
  envString,
  envUrl,
  loadConfig,
  refineNatsEnv,
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
    // Credentials and internal calls (docs/operations.md#credentials-and-internal-calls).
    /** The gateways' read listener (INTERNAL_API_TOKEN only); unset: none. 0 picks a free port (tests). */
    INTERNAL_PORT: envOptionalInt({ min: 0, max: 65_535 }),
    AUTH_FAILURES_PER_MIN: envInt(30, { min: 1 }),
    AUTH_CACHE_MAX: envInt(10_000, { min: 1, max: 10_000_000 }),
    /** As the gateway's: `…/latest/` answers 204, so pollers wind down too (PostHog's killswitch). */
    STREAM_KILLSWITCH: envBool(false),
    // Host-app JWTs (auth/jwt.ts): HS256 with the secret and/or RS256/ES256 from the JWKS.
    STREAM_JWT_SECRET: envSecret(32),
    STREAM_JWT_JWKS_URL: envUrl(),
    STREAM_JWT_ISSUER: envString(),
    STREAM_JWT_AUDIENCE: envString(),
    STREAM_JWT_JWKS_COOLDOWN_MS: envInt(30_000, { min: 0, max: 3_600_000 }),
    /** Whole request (headers and body) must arrive within this; a trickled body is cut off with 408. */
    REQUEST_TIMEOUT_MS: envInt(10_000, { min: 100, max: 600_000 }),
    /** Longest a database statement (and the wait for a pool connection) may take before a 503. */
    STATEMENT_TIMEOUT_MS: envInt(5000, { min: 10, max: 600_000 }),
    /** Pushes waiting for an upsert statement beyond which new ones get 503 + Retry-After. */
    UPSERT_QUEUE_LIMIT: envInt(2000, { min: 1, max: 1_000_000 }),
    /** Failed relay publishes of one version before the row is set aside (dead-lettered). */
    RELAY_MAX_ATTEMPTS: envInt(10, { min: 1, max: 1000 }),
  })
  .superRefine(refineNatsEnv)
  .transform(({ DATABASE_URL, PGLITE_DIR, STREAM_TOKEN_SECRET, ...settings }) => ({
    ...camelCaseKeys(settings),
    database: databaseLocation({ DATABASE_URL, PGLITE_DIR }),
    streamTokenSecret: STREAM_TOKEN_SECRET ?? randomBytes(32).toString('hex'),
    streamTokenSecretGenerated: STREAM_TOKEN_SECRET === undefined,
  }));

export type WriteApiConfig = z.output<typeof writeApiConfigSchema>;

/** Reads and validates the environment once; throws a ConfigError naming every bad variable. */
export function loadWriteApiConfig(env: Record<string, string | undefined>): WriteApiConfig {
  const config = loadConfig('write-api', writeApiConfigSchema, env);
  if (config.internalPort !== undefined && config.internalApiToken === undefined) {
    throw new ConfigError('write-api', [
      `INTERNAL_PORT=${config.internalPort}: the internal listener needs INTERNAL_API_TOKEN`,
    ]);
  }
  return config;
}
