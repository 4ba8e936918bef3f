import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { releaseFastifyResponse } from '../src/hijacked-response.js';

const fastifyVersion = (createRequire(import.meta.url)('fastify/package.json') as { version: string })
  .version;
const pinnedVersion = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    dependencies: Record<string, string>;
  }
).dependencies.fastify;

/**
 * releaseFastifyResponse finds Fastify's response listener by a private function name; if a Fastify
 * release renames it nothing else fails, and every open stream holds its Request and Reply again.
 */
describe(`releaseFastifyResponse on fastify ${fastifyVersion}`, () => {
  let app: FastifyInstance;
  let url: string;
  const onResponseCalls: string[] = [];
  const removedBy = new Map<string, number>();

  beforeAll(async () => {
    app = Fastify({ logger: false });
    app.addHook('onResponse', async (request) => {
      onResponseCalls.push(request.url);
    });
    for (const path of ['/released', '/kept']) {
      app.get(path, async (_request, reply) => {
        reply.hijack();
        const response = reply.raw;
        if (path === '/released') removedBy.set(path, releaseFastifyResponse(response));
        const finished = once(response, 'finish');
        response.writeHead(200, { 'content-type': 'text/plain' });
        response.end('done');
        // Listeners run in the order they were added: Fastify's, when left in place, has run by now.
        await finished;
        return reply;
      });
    }
    url = await app.listen({ port: 0, host: '127.0.0.1' });
  });

  afterAll(async () => {
    await app.close();
  });

  it('runs against the Fastify version package.json pins (re-check fastify/lib/reply.js when it moves)', () => {
    expect(fastifyVersion).toBe(pinnedVersion);
  });

  it("finds Fastify's response listener on 'finish' and 'error' and removes it, so onResponse never runs", async () => {
    expect(await (await fetch(`${url}/kept`)).text()).toBe('done');
    expect(await (await fetch(`${url}/released`)).text()).toBe('done');
    expect(removedBy.get('/released')).toBe(2);
    // The route left alone shows the hook does run when the listener stays.
    expect(onResponseCalls).toEqual(['/kept']);
  });
});
