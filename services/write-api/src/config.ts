import { randomBytes } from 'node:crypto';
import {
  DEFAULT_STALE_AFTER_MS,
  envBool,
  envInt,
  envList,
  envLogLevel,
  envString,
  envUrl,
  loadConfig,
} from '@wizard-stream/contracts';
import { z } from 'zod';

const writeApiConfigSchema = z.object({
  DATABASE_URL: envUrl(),
  PGLITE_DIR: envString('.data/pglite'),
  DB_POOL_SIZE: envInt(10, { min: 1, max: 1000 }),
  NATS_URL: envString('nats://127.0.0.1:4222'),
  PORT: envInt(8000, { min: 0, max: 65535 }),
  HOST: envString('127.0.0.1'),
  STREAM_TOKEN_SECRET: envString(),
  INTERNAL_API_TOKEN: envString(),
  STALE_AFTER_MS: envInt(DEFAULT_STALE_AFTER_MS, { min: 1000 }),
  STALE_SWEEP_MS: envInt(5000, { min: 50 }),
  RELAY_INTERVAL_MS: envInt(1000, { min: 50 }),
  RELAY_GRACE_MS: envInt(2000, { min: 0 }),
  RATE_LIMIT_PER_MIN: envInt(600, { min: 1 }),
  AUTH_CACHE_MS: envInt(5000, { min: 0 }),
  CORS_ORIGINS: envList(),
  LOG_LEVEL: envLogLevel(),
  MIGRATE_ON_START: envBool(true),
});

type RawConfig = z.infer<typeof writeApiConfigSchema>;

export interface WriteApiConfig {
  databaseUrl: string | undefined;
  pgliteDir: string;
  dbPoolSize: number;
  natsUrl: string;
  port: number;
  host: string;
  /** HMAC key for stream tokens; a random one (tokens die with the process) when unset. */
  streamTokenSecret: string;
  streamTokenSecretGenerated: boolean;
  /** The gateways' shared secret for re-snapshots; read calls only. Disabled when unset. */
  internalApiToken: string | undefined;
  staleAfterMs: number;
  staleSweepMs: number;
  relayIntervalMs: number;
  relayGraceMs: number;
  rateLimitPerMinute: number;
  authCacheMs: number;
  corsOrigins: string[];
  logLevel: string;
  migrateOnStart: boolean;
}

function fromRaw(raw: RawConfig): WriteApiConfig {
  if (raw.INTERNAL_API_TOKEN !== undefined && raw.INTERNAL_API_TOKEN.length < 16) {
    throw new Error(
      'write-api: invalid configuration:\n  - INTERNAL_API_TOKEN: must be at least 16 characters',
    );
  }
  return {
    databaseUrl: raw.DATABASE_URL,
    pgliteDir: raw.PGLITE_DIR,
    dbPoolSize: raw.DB_POOL_SIZE,
    natsUrl: raw.NATS_URL,
    port: raw.PORT,
    host: raw.HOST,
    streamTokenSecret: raw.STREAM_TOKEN_SECRET ?? randomBytes(32).toString('hex'),
    streamTokenSecretGenerated: raw.STREAM_TOKEN_SECRET === undefined,
    internalApiToken: raw.INTERNAL_API_TOKEN,
    staleAfterMs: raw.STALE_AFTER_MS,
    staleSweepMs: raw.STALE_SWEEP_MS,
    relayIntervalMs: raw.RELAY_INTERVAL_MS,
    relayGraceMs: raw.RELAY_GRACE_MS,
    rateLimitPerMinute: raw.RATE_LIMIT_PER_MIN,
    authCacheMs: raw.AUTH_CACHE_MS,
    corsOrigins: raw.CORS_ORIGINS,
    logLevel: raw.LOG_LEVEL,
    migrateOnStart: raw.MIGRATE_ON_START,
  };
}

/** Reads and validates the environment once; throws a ConfigError naming every bad variable. */
export function loadWriteApiConfig(env: Record<string, string | undefined>): WriteApiConfig {
  return fromRaw(loadConfig('write-api', writeApiConfigSchema, env));
}
