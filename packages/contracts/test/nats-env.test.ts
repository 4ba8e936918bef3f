import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ConfigError, camelCaseKeys, loadConfig, refineNatsEnv, serviceEnv } from '../src/config.js';

/** A service schema as write-api's and the gateway's are built: serviceEnv, refineNatsEnv, camelCaseKeys. */
const schema = z.object(serviceEnv(8000)).superRefine(refineNatsEnv).transform(camelCaseKeys);

function errorOf(env: Record<string, string>): string {
  try {
    loadConfig('test-service', schema, env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error(`${JSON.stringify(env)} was accepted`);
}

describe('the NATS_* settings of serviceEnv', () => {
  it('are all unset by default: anonymous over plain TCP', () => {
    expect(loadConfig('test-service', schema, {})).toMatchObject({
      natsUrl: 'nats://127.0.0.1:4222',
      natsUser: undefined,
      natsPassword: undefined,
      natsTlsCaFile: undefined,
      natsTlsCertFile: undefined,
      natsTlsKeyFile: undefined,
    });
  });

  it('reads a login and TLS files', () => {
    const config = loadConfig('test-service', schema, {
      NATS_USER: 'write-api',
      NATS_PASSWORD: 'a-long-enough-password',
      NATS_TLS_CA_FILE: '/etc/nats-tls/ca.crt',
      NATS_TLS_CERT_FILE: '/etc/nats-tls/tls.crt',
      NATS_TLS_KEY_FILE: '/etc/nats-tls/tls.key',
    });
    expect(config).toMatchObject({
      natsUser: 'write-api',
      natsPassword: 'a-long-enough-password',
      natsTlsCaFile: '/etc/nats-tls/ca.crt',
      natsTlsCertFile: '/etc/nats-tls/tls.crt',
      natsTlsKeyFile: '/etc/nats-tls/tls.key',
    });
    // A CA alone: TLS that verifies the server, without a client certificate.
    expect(loadConfig('test-service', schema, { NATS_TLS_CA_FILE: '/ca.crt' }).natsTlsCaFile).toBe('/ca.crt');
  });

  it('refuses a user without a password and a password without a user, never printing the password', () => {
    expect(errorOf({ NATS_USER: 'write-api' })).toContain(
      'NATS_USER="write-api": is set without NATS_PASSWORD',
    );
    const message = errorOf({ NATS_PASSWORD: 'secret-password-1' });
    expect(message).toContain('NATS_PASSWORD=(17 characters, not shown): is set without NATS_USER');
    expect(message).not.toContain('secret-password-1');
  });

  it('refuses a password under 8 characters without printing it', () => {
    const message = errorOf({ NATS_USER: 'write-api', NATS_PASSWORD: 'short' });
    expect(message).toContain('NATS_PASSWORD=(5 characters, not shown): must be at least 8 characters');
    expect(message).not.toContain('"short"');
  });

  it('refuses a client certificate without its key, a key without its certificate, and either without the CA', () => {
    expect(errorOf({ NATS_TLS_CA_FILE: '/ca', NATS_TLS_CERT_FILE: '/crt' })).toContain(
      'NATS_TLS_CERT_FILE="/crt": is set without NATS_TLS_KEY_FILE',
    );
    expect(errorOf({ NATS_TLS_CA_FILE: '/ca', NATS_TLS_KEY_FILE: '/key' })).toContain(
      'NATS_TLS_KEY_FILE="/key": is set without NATS_TLS_CERT_FILE',
    );
    const withoutCa = errorOf({ NATS_TLS_CERT_FILE: '/crt', NATS_TLS_KEY_FILE: '/key' });
    expect(withoutCa).toContain('NATS_TLS_CERT_FILE="/crt": is set without NATS_TLS_CA_FILE');
    expect(withoutCa).toContain('NATS_TLS_KEY_FILE="/key": is set without NATS_TLS_CA_FILE');
  });
});
