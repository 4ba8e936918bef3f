import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { SCOPES, STREAM_TOKEN_QUERY_PARAM } from '@wizard-stream/contracts';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { jsonSchemaTransform, jsonSchemaTransformObject } from 'fastify-type-provider-zod';

/** Where the document and its offline docs page are served (also through the edge: both are under /api/). */
export const SCHEMA_PATH = '/api/schema/';
export const SCHEMA_DOCS_PREFIX = '/api/schema/docs';

/**
 * The docs page's assets (swagger-ui, no CDN): next to the bundle in a container image
 * (scripts/build-bundles.mjs copies them to `swagger-ui/`), else in the installed package.
 */
function swaggerUiAssetsDir(): string {
  const bundled = join(dirname(fileURLToPath(import.meta.url)), 'swagger-ui');
  if (existsSync(bundled)) return bundled;
  return join(dirname(createRequire(import.meta.url).resolve('@fastify/swagger-ui/package.json')), 'static');
}

const scopes = `Scopes: \`${SCOPES.read}\` (reads, streams), \`${SCOPES.write}\` (pushes), \`${SCOPES.keysRead}\` / \`${SCOPES.keysWrite}\` (list / manage keys).`;

/**
 * Route schemas only document: every handler validates with parseInput after authorization, so the
 * documented order of statuses (401 before 400) holds, and the body is the API's error body. Every
 * Fastify instance that registers the session routes (the public one, the internal listener) needs it.
 */
export function documentOnlySchemas(app: FastifyInstance): void {
  app.setValidatorCompiler(() => (value) => ({ value }));
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
}

/**
 * OpenAPI 3.1 from the route schemas (openapi/route-schemas.ts), at `GET /api/schema/`, and a docs page
 * at `/api/schema/docs/`. Registered before the routes, whose `onRoute` it records.
 */
export const openApiPlugin = fp(
  async (app) => {
    documentOnlySchemas(app);

    await app.register(swagger, {
      openapi: {
        openapi: '3.1.0',
        info: {
          title: 'wizard-stream',
          version: '1',
          description:
            'Live session state for the PostHog wizard CLI. write-api serves every route but the stream, which stream-gateway serves behind the same host. Every error body is `Error`.',
        },
        tags: [
          {
            name: 'sessions',
            description:
              'Under `/api/projects/{projectId}/wizard/sessions/`; `…/wizard_sessions/` is an alias.',
          },
          { name: 'stream tokens' },
          { name: 'personal API keys', description: 'The caller’s own keys, PostHog’s shape.' },
          { name: 'health', description: 'No credential; not routed by the edge.' },
        ],
        components: {
          securitySchemes: {
            PersonalApiKey: {
              type: 'http',
              scheme: 'bearer',
              description: `A personal API key (\`wsk_…\`), with the scopes it was created with. ${scopes}`,
            },
            StreamToken: {
              type: 'apiKey',
              in: 'query',
              name: STREAM_TOKEN_QUERY_PARAM,
              description: `A stream token (\`wst_…\`) from \`POST …/stream_tokens/\`, or a host-app JWT, as \`?${STREAM_TOKEN_QUERY_PARAM}=\` (also accepted as Bearer). Read only: \`${SCOPES.read}\` on one team.`,
            },
            HostJwt: {
              type: 'http',
              scheme: 'bearer',
              bearerFormat: 'JWT',
              description: `A JWT minted by a host app (HS256 with \`STREAM_JWT_SECRET\`, or RS256/ES256 from \`STREAM_JWT_JWKS_URL\`): claims \`team_id\`, optional \`workflow_ids\`, \`exp\`. Read only: \`${SCOPES.read}\`.`,
            },
          },
        },
      },
      transform: jsonSchemaTransform,
      transformObject: jsonSchemaTransformObject,
    });

    const baseDir = swaggerUiAssetsDir();
    await app.register(swaggerUi, {
      routePrefix: SCHEMA_DOCS_PREFIX,
      baseDir,
      // Given, so that swagger-ui does not look for its logo relative to its own module (absent in a bundle).
      logo: { type: 'image/svg+xml', content: await readFile(join(baseDir, 'logo.svg')) },
      uiConfig: { deepLinking: false, validatorUrl: null },
      staticCSP: true,
    });

    app.get(SCHEMA_PATH, { schema: { hide: true } }, async (_request, reply) =>
      reply.type('application/json; charset=utf-8').send(app.swagger()),
    );
  },
  { name: 'openapi' },
);
