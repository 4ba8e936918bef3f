import { ConfigError } from '@wizard-stream/contracts';
import { describe, expect, it } from 'vitest';
import { loadStreamGatewayConfig } from '../src/config.js';

describe('loadStreamGatewayConfig', () => {
  it('applies the documented defaults (docs/configuration.md)', () => {
    expect(loadStreamGatewayConfig({})).toMatchObject({
      port: 8001,
      writeApiUrl: 'http://127.0.0.1:8000',
      natsUrl: 'nats://127.0.0.1:4222',
      heartbeatMs: 15_000,
      streamMaxDurationMs: 900_000,
      maxStreams: 20_000,
      slowClientMs: 30_000,
      drainMs: 10_000,
      killswitch: false,
      corsOrigins: [],
      snapshotTimeoutMs: 5000,
      maxClientBufferBytes: 4 * 1024 * 1024,
      internalApiToken: undefined,
    });
  });

  it('reads every variable', () => {
    const config = loadStreamGatewayConfig({
      PORT: '9100',
      STREAM_KILLSWITCH: '1',
      CORS_ORIGINS: 'https://a.example, https://b.example',
      MAX_STREAMS: '5',
      MAX_CLIENT_BUFFER_BYTES: '1048576',
      INTERNAL_API_TOKEN: 'secret-secret-secret',
    });
    expect(config).toMatchObject({
      port: 9100,
      killswitch: true,
      corsOrigins: ['https://a.example', 'https://b.example'],
      maxStreams: 5,
      maxClientBufferBytes: 1_048_576,
      internalApiToken: 'secret-secret-secret',
    });
  });

  it('names each bad value', () => {
    expect(() => loadStreamGatewayConfig({ HEARTBEAT_MS: 'soon', WRITE_API_URL: 'not a url' })).toThrow(
      ConfigError,
    );
    try {
      loadStreamGatewayConfig({ HEARTBEAT_MS: 'soon', WRITE_API_URL: 'not a url' });
    } catch (error) {
      expect((error as Error).message).toContain('HEARTBEAT_MS="soon"');
      expect((error as Error).message).toContain('WRITE_API_URL="not a url"');
    }
  });

  it('refuses an INTERNAL_API_TOKEN under 16 characters without printing it', () => {
    expect(() => loadStreamGatewayConfig({ INTERNAL_API_TOKEN: 'short-secret' })).toThrow(ConfigError);
    try {
      loadStreamGatewayConfig({ INTERNAL_API_TOKEN: 'short-secret' });
    } catch (error) {
      expect((error as Error).message).toContain('INTERNAL_API_TOKEN=');
      expect((error as Error).message).toContain('must be at least 16 characters');
      expect((error as Error).message).not.toContain('short-secret');
    }
    expect(loadStreamGatewayConfig({ INTERNAL_API_TOKEN: 'x'.repeat(16) }).internalApiToken).toBe(
      'x'.repeat(16),
    );
  });

  it('refuses a MAX_CLIENT_BUFFER_BYTES under 64 KiB, where one ordinary frame would close clients', () => {
    expect(() => loadStreamGatewayConfig({ MAX_CLIENT_BUFFER_BYTES: '65535' })).toThrow(
      'MAX_CLIENT_BUFFER_BYTES="65535"',
    );
    expect(() => loadStreamGatewayConfig({ MAX_CLIENT_BUFFER_BYTES: '4MiB' })).toThrow(ConfigError);
    expect(loadStreamGatewayConfig({ MAX_CLIENT_BUFFER_BYTES: '65536' }).maxClientBufferBytes).toBe(65_536);
  });
});
