import { ConfigError } from '@wizard-stream/contracts';
import { describe, expect, it } from 'vitest';
import { loadWriteApiConfig } from '../src/config.js';

/** The message of the ConfigError that loading `env` throws. */
function configErrorOf(env: Record<string, string>): string {
  try {
    loadWriteApiConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error(`${JSON.stringify(env)} was accepted`);
}

describe('loadWriteApiConfig', () => {
  it('applies the defaults, PGlite in .data/pglite and a generated stream-token secret', () => {
    const config = loadWriteApiConfig({});
    expect(config).toMatchObject({
      database: { url: undefined, pgliteDataDir: '.data/pglite' },
      dbPoolSize: 10,
      natsUrl: 'nats://127.0.0.1:4222',
      port: 8000,
      host: '127.0.0.1',
      internalApiToken: undefined,
      rateLimitPerMin: 600,
      corsOrigins: [],
      logLevel: 'info',
      migrateOnStart: true,
      streamTokenSecretGenerated: true,
    });
    expect(config.streamTokenSecret).toMatch(/^[0-9a-f]{64}$/);
  });

  it('uses DATABASE_URL instead of PGlite when it is set', () => {
    const config = loadWriteApiConfig({ DATABASE_URL: 'postgres://db.example/wizard', PGLITE_DIR: '/tmp/x' });
    expect(config.database).toEqual({ url: 'postgres://db.example/wizard', pgliteDataDir: undefined });
  });

  it('refuses an INTERNAL_API_TOKEN under 16 characters with a ConfigError that does not print it', () => {
    const message = configErrorOf({ INTERNAL_API_TOKEN: 'short-secret' });
    expect(message).toContain('INTERNAL_API_TOKEN=');
    expect(message).toContain('must be at least 16 characters');
    expect(message).not.toContain('short-secret');
    expect(loadWriteApiConfig({ INTERNAL_API_TOKEN: 'x'.repeat(16) }).internalApiToken).toBe('x'.repeat(16));
  });

  it('names each bad value', () => {
    const message = configErrorOf({ PORT: 'eighty', DB_POOL_SIZE: '0' });
    expect(message).toContain('PORT="eighty"');
    expect(message).toContain('DB_POOL_SIZE="0"');
  });
});
