import { Writable } from 'node:stream';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loggerOptions, redactUrl } from '../src/logging.js';

describe('redactUrl', () => {
  it('cuts the stream token out of a query string wherever it stands', () => {
    expect(redactUrl('/stream/?token=abc.def&workflow_id=w')).toBe('/stream/?token=[REDACTED]&workflow_id=w');
    expect(redactUrl('/stream/?workflow_id=w&token=abc')).toBe('/stream/?workflow_id=w&token=[REDACTED]');
    // A `#` in a request target is part of the value for the query parser: cut with it.
    expect(redactUrl('/stream/?TOKEN=abc#frag')).toBe('/stream/?TOKEN=[REDACTED]');
  });

  it('compares the parameter name decoded, as the query parser reads it (?%74oken= is ?token=)', () => {
    expect(redactUrl('/stream/?%74oken=wst_secret&workflow_id=w')).toBe(
      '/stream/?%74oken=[REDACTED]&workflow_id=w',
    );
    expect(redactUrl('/stream/?workflow_id=w&%74%6F%6B%65%6E=wst_secret')).toBe(
      '/stream/?workflow_id=w&%74%6F%6B%65%6E=[REDACTED]',
    );
    expect(redactUrl('/stream/?to%6Ben=wst_secret#x')).toBe('/stream/?to%6Ben=[REDACTED]');
    // Malformed escapes elsewhere do not stop the redaction.
    expect(redactUrl('/stream/?a%=1&%74oken=wst_secret')).toBe('/stream/?a%=1&%74oken=[REDACTED]');
    // Encoded twice is another name for the parser, so it is no credential and stays.
    expect(redactUrl('/stream/?%2574oken=x')).toBe('/stream/?%2574oken=x');
  });

  it('leaves URLs without a token and look-alike parameters untouched', () => {
    expect(redactUrl('/api/projects/1/wizard/sessions/?workflow_id=w')).toBe(
      '/api/projects/1/wizard/sessions/?workflow_id=w',
    );
    expect(redactUrl('/x?stream_token=keep')).toBe('/x?stream_token=keep');
  });
});

describe('loggerOptions in a real Fastify logger', () => {
  const lines: Record<string, unknown>[] = [];
  let app: FastifyInstance;
  let baseUrl: string;

  beforeAll(async () => {
    const stream = new Writable({
      write(chunk, _encoding, done) {
        for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
        done();
      },
    });
    app = Fastify({ logger: { ...loggerOptions('telemetry-test', 'info'), stream } });
    app.get<{ Querystring: { token?: string } }>('/stream/', async (request) => {
      request.log.info({ authorization: 'Bearer phx_secret_in_object', token: 'tok_in_object' }, 'handled');
      // What the services would take as the credential.
      return { token: request.query.token ?? null };
    });
    baseUrl = await app.listen({ port: 0, host: '127.0.0.1' });
  });

  afterAll(async () => {
    await app?.close();
  });

  it('writes JSON lines with the service and request id and no credential anywhere', async () => {
    const response = await fetch(`${baseUrl}/stream/?workflow_id=w&token=tok_in_query_123`, {
      headers: { authorization: 'Bearer phx_secret_in_header', cookie: 'session=cookie_secret' },
    });
    expect(response.status).toBe(200);
    await response.arrayBuffer();
    // Percent-encoded, the parameter is still the token for the parser: the log must not show it either.
    const encoded = await fetch(`${baseUrl}/stream/?workflow_id=w&%74oken=tok_encoded_secret`);
    expect(await encoded.json()).toEqual({ token: 'tok_encoded_secret' });
    await app.close(); // flushes the "request completed" line

    const text = JSON.stringify(lines);
    for (const secret of [
      'phx_secret_in_header',
      'cookie_secret',
      'tok_in_query_123',
      'tok_encoded_secret',
      'phx_secret_in_object',
      'tok_in_object',
    ]) {
      expect(text).not.toContain(secret);
    }
    const incoming = lines.find((line) => line.msg === 'incoming request') as
      | { req: { url: string; id: string }; service: string }
      | undefined;
    expect(incoming?.service).toBe('telemetry-test');
    expect(incoming?.req.url).toBe('/stream/?workflow_id=w&token=[REDACTED]');
    expect(incoming?.req.id).toBeTruthy();
    const handled = lines.find((line) => line.msg === 'handled');
    expect(handled).toMatchObject({ authorization: '[REDACTED]', token: '[REDACTED]' });
  });
});
