import {
  camelCaseKeys,
  envBool,
  envInt,
  envUrl,
  loadConfig,
  refineNatsEnv,
  serviceEnv,
} from '@wizard-stream/contracts';
import { z } from 'zod';

const MAX_DELAY_MS = 24 * 60 * 60 * 1000;

export const streamGatewayEnvSchema = z
  .object({
    ...serviceEnv(8001),
    WRITE_API_URL: envUrl('http://127.0.0.1:8000'),
    HEARTBEAT_MS: envInt(15_000, { min: 10, max: MAX_DELAY_MS }),
    STREAM_MAX_DURATION_MS: envInt(900_000, { min: 100, max: MAX_DELAY_MS }),
    MAX_STREAMS: envInt(20_000, { min: 1, max: 1_000_000 }),
    SLOW_CLIENT_MS: envInt(30_000, { min: 10, max: MAX_DELAY_MS }),
    DRAIN_MS: envInt(10_000, { min: 0, max: 10 * 60 * 1000 }),
    STREAM_KILLSWITCH: envBool(false),
    SNAPSHOT_TIMEOUT_MS: envInt(5000, { min: 10, max: 120_000 }),
    // Credentials and internal calls (docs/operations.md#credentials-and-internal-calls).
    /** write-api's internal listener (its INTERNAL_PORT), where re-snapshots read with INTERNAL_API_TOKEN. */
    WRITE_API_INTERNAL_URL: envUrl(),
    MAX_STREAMS_PER_KEY: envInt(100, { min: 1, max: 1_000_000 }),
    AUTH_FAILURES_PER_MIN: envInt(30, { min: 1 }),
    // Held plus unsent frame bytes per client; below 64 KiB a single ordinary frame would close clients.
    MAX_CLIENT_BUFFER_BYTES: envInt(4 * 1024 * 1024, { min: 64 * 1024, max: 1024 * 1024 * 1024 }),
  })
  .superRefine(refineNatsEnv)
  .transform(({ STREAM_KILLSWITCH, ...settings }) => ({
    ...camelCaseKeys(settings),
    killswitch: STREAM_KILLSWITCH,
  }));

export type StreamGatewayConfig = z.output<typeof streamGatewayEnvSchema>;

/** Reads and validates the gateway's environment once (docs/configuration.md); throws a ConfigError naming each bad value. */
export function loadStreamGatewayConfig(env: Record<string, string | undefined>): StreamGatewayConfig {
  return loadConfig('stream-gateway', streamGatewayEnvSchema, env);
}
