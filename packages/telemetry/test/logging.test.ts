import { Writable } from 'node:stream';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loggerOptions, redactUrl } from '../src/logging.js';

describe('redactUrl', () => {
  it('cuts the stream token out of a query string wherever it stands', () => {
    expect(redactUrl('/stream/?token=abc.def&workflow_id=w')).toBe('/stream/?token=[REDACTED]&workflow_id=w');
    expect(redactUrl('/stream/?workflow_id=w&token=abc')).toBe('/stream/?workflow_id=w&token=[REDACTED]');
    expect(redactUrl('/stream/?TOKEN=abc#frag')).toBe('/stream/?TOKEN=[REDACTED]#frag');
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
    app.get('/stream/', async (request) => {
      request.log.info({ authorization: 'Bearer phx_secret_in_object', token: 'tok_in_object' }, 'handled');
      return { ok: true };
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
    await app.close(); // flushes the "request completed" line

    const text = JSON.stringify(lines);
    for (const secret of [
      'phx_secret_in_header',
      'cookie_secret',
      'tok_in_query_123',
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
