import { apiErrors, SCOPES, STREAM_TOKEN_PATH } from '@wizard-stream/contracts';
import type { FastifyInstance } from 'fastify';
import { streamTokenRouteSchema } from '../openapi/route-schemas.js';
import { signStreamToken } from './token.js';

/** Mints the short-lived token a browser's EventSource passes as `?token=` (docs/api.md). */
export async function streamTokenRoutes(app: FastifyInstance): Promise<void> {
  app.post(STREAM_TOKEN_PATH, { schema: streamTokenRouteSchema }, async (request, reply) => {
    const { principal, projectId } = await request.authorize(SCOPES.read);
    if (principal.kind !== 'api_key') {
      throw apiErrors.permissionDenied('Stream tokens are minted with a personal API key.');
    }
    const { token, expiresAt } = signStreamToken(app.services.config.streamTokenSecret, {
      userId: principal.userId,
      teamId: projectId,
      keyId: principal.keyId,
    });
    return reply.code(201).send({ token, expires_at: new Date(expiresAt).toISOString() });
  });
}
