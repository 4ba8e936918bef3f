import {
  envBool,
  envInt,
  envList,
  envLogLevel,
  envString,
  envUrl,
  loadConfig,
} from '@wizard-stream/contracts';
import { z } from 'zod';

const MAX_DELAY_MS = 24 * 60 * 60 * 1000;

export const streamGatewayEnvSchema = z.object({
  PORT: envInt(8001, { max: 65_535 }),
  HOST: envString('127.0.0.1'),
  NATS_URL: envString('nats://127.0.0.1:4222'),
  WRITE_API_URL: envUrl('http://127.0.0.1:8000'),
  INTERNAL_API_TOKEN: envString(),
  HEARTBEAT_MS: envInt(15_000, { min: 10, max: MAX_DELAY_MS }),
  STREAM_MAX_DURATION_MS: envInt(900_000, { min: 100, max: MAX_DELAY_MS }),
  MAX_STREAMS: envInt(20_000, { min: 1, max: 1_000_000 }),
  SLOW_CLIENT_MS: envInt(30_000, { min: 10, max: MAX_DELAY_MS }),
  DRAIN_MS: envInt(10_000, { min: 0, max: 10 * 60 * 1000 }),
  STREAM_KILLSWITCH: envBool(false),
  CORS_ORIGINS: envList(),
  LOG_LEVEL: envLogLevel(),
  SNAPSHOT_TIMEOUT_MS: envInt(5000, { min: 10, max: 120_000 }),
});

export interface StreamGatewayConfig {
  port: number;
  host: string;
  natsUrl: string;
  writeApiUrl: string;
  /** The gateway's own credential for re-snapshots; without it reconnect re-snapshots are skipped. */
  internalApiToken: string | undefined;
  heartbeatMs: number;
  streamMaxDurationMs: number;
  maxStreams: number;
  slowClientMs: number;
  drainMs: number;
  killswitch: boolean;
  corsOrigins: string[];
  logLevel: string;
  snapshotTimeoutMs: number;
}

/** Reads and validates the gateway's environment once (SPEC §9); throws a ConfigError naming each bad value. */
export function loadStreamGatewayConfig(env: Record<string, string | undefined>): StreamGatewayConfig {
  const parsed = loadConfig('stream-gateway', streamGatewayEnvSchema, env);
  return {
    port: parsed.PORT,
    host: parsed.HOST,
    natsUrl: parsed.NATS_URL,
    writeApiUrl: parsed.WRITE_API_URL,
    internalApiToken: parsed.INTERNAL_API_TOKEN,
    heartbeatMs: parsed.HEARTBEAT_MS,
    streamMaxDurationMs: parsed.STREAM_MAX_DURATION_MS,
    maxStreams: parsed.MAX_STREAMS,
    slowClientMs: parsed.SLOW_CLIENT_MS,
    drainMs: parsed.DRAIN_MS,
    killswitch: parsed.STREAM_KILLSWITCH,
    corsOrigins: parsed.CORS_ORIGINS,
    logLevel: parsed.LOG_LEVEL,
    snapshotTimeoutMs: parsed.SNAPSHOT_TIMEOUT_MS,
  };
}
