import { registeredRoutes } from '@wizard-stream/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningStreamGateway } from '../src/index.js';
import { TestStack } from './support/stack.js';

describe("write-api's OpenAPI document covers the gateway's routes", () => {
  let stack: TestStack;
  let gateway: RunningStreamGateway;

  beforeAll(async () => {
    stack = await TestStack.start('pglite');
    gateway = await stack.startGateway();
  }, 60_000);
  afterAll(async () => {
    await stack?.close();
  }, 30_000);

  it('lists every route the gateway registered, with the same methods', async () => {
    const document = (await (await fetch(`${stack.writeApi.url}/api/schema/`)).json()) as {
      paths: Record<string, Record<string, unknown>>;
    };
    const routes = registeredRoutes(gateway.app.printRoutes({ commonPrefix: false })).filter(
      ({ method }) => method !== 'HEAD' && method !== 'OPTIONS',
    );
    expect(routes.map(({ url }) => url)).toContain('/api/projects/:projectId/wizard/sessions/stream/');
    const missing = routes.filter(({ url, method }) => {
      const path = url.replace(/:(\w+)/g, '{$1}').replace(/(.)\/$/, '$1');
      return document.paths[path]?.[method.toLowerCase()] === undefined;
    });
    expect(missing).toEqual([]);
  });
});
