import { compileErrors, validate } from '@readme/openapi-parser';
import { sessionDtoSchema } from '@wizard-stream/contracts';
import { registeredRoutes } from '@wizard-stream/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, startHarness } from './support/harness.js';

// biome-ignore lint/suspicious/noExplicitAny: the document is walked by path in the assertions
type Document = any;

const openApiPath = (url: string) => url.replace(/:(\w+)/g, '{$1}').replace(/(.)\/$/, '$1');

describe('the OpenAPI document at /api/schema/', () => {
  let h: Harness;
  let document: Document;

  beforeAll(async () => {
    h = await startHarness('pglite');
    const response = await h.request('GET', '/api/schema/', { key: null });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    document = response.json;
  }, 60_000);
  afterAll(async () => {
    await h?.close();
  });

  it('is a valid OpenAPI 3.1 document (checked by @readme/openapi-parser)', async () => {
    expect(document.openapi).toBe('3.1.0');
    // validate() dereferences in place: give it a copy.
    const result = await validate(structuredClone(document));
    expect(result.valid, result.valid ? '' : compileErrors(result)).toBe(true);
  });

  it('documents every route write-api registered, each with its statuses', () => {
    const routes = registeredRoutes(h.api.app.printRoutes({ commonPrefix: false })).filter(
      // HEAD mirrors GET; the document and its docs page do not describe themselves.
      ({ url, method }) => method !== 'HEAD' && !url.startsWith('/api/schema'),
    );
    expect(routes.length).toBeGreaterThan(15);
    const missing = routes.filter(
      ({ url, method }) => !document.paths[openApiPath(url)]?.[method.toLowerCase()],
    );
    expect(missing).toEqual([]);
    for (const { url, method } of routes) {
      const operation = document.paths[openApiPath(url)][method.toLowerCase()];
      expect(operation.summary, `${method} ${url}`).toEqual(expect.any(String));
      const descriptions = Object.values(operation.responses).map(
        (r) => (r as { description: string }).description,
      );
      expect(descriptions, `${method} ${url}`).not.toContain('Default Response');
    }
  });

  it('names the error body, the session DTO and the push, and every error response uses the error body', () => {
    const { schemas } = document.components;
    expect(Object.keys(schemas.Error.properties)).toEqual(['type', 'code', 'detail', 'attr']);
    // The DTO's fields, in the serializer's order.
    expect(Object.keys(schemas.Session.properties)).toEqual(Object.keys(sessionDtoSchema.shape));
    expect(Object.keys(schemas.Session.properties).at(-1)).toBe('version');
    // The push accepts the CLI's spelling; the DTO serves only PostHog's.
    expect(schemas.SessionUpsertInput.properties.tasks.items.properties.status.enum).toContain('cancelled');
    expect(schemas.Session.properties.tasks.items.properties.status.enum).not.toContain('cancelled');
    for (const [path, item] of Object.entries<Document>(document.paths)) {
      for (const [method, operation] of Object.entries<Document>(item)) {
        for (const [status, response] of Object.entries<Document>(operation.responses)) {
          if (Number(status) < 400 || path.match(/^\/(healthz|readyz|metrics)$/)) continue;
          expect(response.content['application/json'].schema, `${method} ${path} ${status}`).toEqual({
            $ref: '#/components/schemas/Error',
          });
        }
      }
    }
  });

  it('describes the auth schemes and the scope each operation needs', () => {
    const schemes = document.components.securitySchemes;
    expect(schemes.PersonalApiKey).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(schemes.StreamToken).toMatchObject({ type: 'apiKey', in: 'query', name: 'token' });
    expect(schemes.HostJwt).toMatchObject({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT' });
    const sessions = document.paths['/api/projects/{projectId}/wizard/sessions'];
    expect(sessions.post.security).toEqual([{ PersonalApiKey: ['wizard_session:write'] }]);
    expect(sessions.get.security).toEqual([
      { PersonalApiKey: ['wizard_session:read'] },
      { StreamToken: ['wizard_session:read'] },
      { HostJwt: ['wizard_session:read'] },
    ]);
  });

  it("covers the gateway's stream route: text/event-stream and its statuses", () => {
    const stream = document.paths['/api/projects/{projectId}/wizard/sessions/stream'].get;
    expect(Object.keys(stream.responses[200].content)).toEqual(['text/event-stream']);
    expect(Object.keys(stream.responses).sort()).toEqual(
      ['200', '204', '400', '401', '403', '404', '406', '429', '503'].sort(),
    );
    expect(stream.parameters.map((p: { name: string; in: string }) => `${p.in}:${p.name}`)).toEqual(
      expect.arrayContaining(['query:workflow_id', 'query:skill_id', 'path:projectId']),
    );
    const latest = document.paths['/api/projects/{projectId}/wizard/sessions/latest'].get;
    expect(Object.keys(latest.responses)).toEqual(expect.arrayContaining(['200', '204', '304']));
  });

  it('serves an offline docs page at /api/schema/docs/ whose assets are all local', async () => {
    const page = await h.request('GET', '/api/schema/docs/', { key: null });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    const assets = [...page.text.matchAll(/(?:src|href)="([^"]+)"/g)].map((match) => match[1] as string);
    expect(assets.length).toBeGreaterThan(2);
    for (const asset of assets) {
      expect(asset, 'no CDN').not.toMatch(/^(https?:)?\/\//);
      const response = await fetch(new URL(asset, `${h.api.url}/api/schema/docs/`));
      expect(response.status, asset).toBe(200);
      expect((await response.arrayBuffer()).byteLength, asset).toBeGreaterThan(0);
    }
    const initializer = await h.request('GET', '/api/schema/docs/static/swagger-initializer.js', {
      key: null,
    });
    expect(initializer.text).toContain('./json');
    const json = await h.request('GET', '/api/schema/docs/json', { key: null });
    expect(json.json.paths).toEqual(document.paths);
  });
});
