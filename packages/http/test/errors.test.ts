import { apiErrorBodySchema, apiErrors, MAX_BODY_BYTES } from '@wizard-stream/contracts';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorsPlugin } from '../src/index.js';

describe('errorsPlugin', () => {
  let app: FastifyInstance;
  let url: string;

  beforeAll(async () => {
    app = Fastify({ bodyLimit: MAX_BODY_BYTES });
    await app.register(errorsPlugin, {
      classify: (error) =>
        error instanceof Error && error.message === 'db down' ? apiErrors.unavailable('down', 5) : undefined,
    });
    app.get('/api-error', async () => {
      throw apiErrors.throttled(7);
    });
    app.get('/classified', async () => {
      throw new Error('db down');
    });
    app.get('/crash', async () => {
      throw new Error('boom');
    });
    app.post('/echo', async (request) => request.body);
    app.get(
      '/typed',
      { schema: { querystring: { type: 'object', properties: { n: { type: 'integer' } } } } },
      async () => ({}),
    );
    url = await app.listen({ port: 0, host: '127.0.0.1' });
  });

  afterAll(() => app.close());

  async function call(path: string, init?: RequestInit) {
    const response = await fetch(`${url}${path}`, init);
    return {
      status: response.status,
      headers: response.headers,
      body: apiErrorBodySchema.parse(await response.json()),
    };
  }

  it('answers an ApiError with its status, headers and body', async () => {
    const { status, headers, body } = await call('/api-error');
    expect(status).toBe(429);
    expect(headers.get('retry-after')).toBe('7');
    expect(headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(body.code).toBe('throttled');
  });

  it("keeps a Fastify 4xx's code, lower-cased, and names the body limit", async () => {
    const { status, body } = await call('/typed?n=many');
    expect(status).toBe(400);
    expect(body).toMatchObject({ type: 'invalid_request', code: 'fst_err_validation' });
    const tooLarge = await call('/echo', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ blob: 'x'.repeat(MAX_BODY_BYTES) }),
    });
    expect(tooLarge.status).toBe(413);
    expect(tooLarge.body.detail).toContain(String(MAX_BODY_BYTES));
    const media = await call('/echo', {
      method: 'POST',
      headers: { 'content-type': 'text/x-nothing' },
      body: 'a',
    });
    expect(media.status).toBe(415);
    expect(media.body.code).toBe('unsupported_media_type');
  });

  it("runs the service's classifier before the generic mapping, and hides any other failure behind a 500", async () => {
    expect((await call('/classified')).status).toBe(503);
    const crash = await call('/crash');
    expect(crash.status).toBe(500);
    expect(crash.body.detail).not.toContain('boom');
  });

  it('answers unknown routes with a not_found body naming the route', async () => {
    const { status, body } = await call('/nowhere?x=1');
    expect(status).toBe(404);
    expect(body).toMatchObject({ code: 'not_found', detail: 'No route for GET /nowhere.' });
  });
});
