import {
  apiErrors,
  credentialFrom,
  projectIdSchema,
  type Scope,
  STREAM_TOKEN_QUERY_PARAM,
} from '@wizard-stream/contracts';
import type { FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { type Principal, rateLimitKey } from '../auth/principal.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Checks the request's credential for the project in its URL; throws the documented API error. */
    authorize(scope: Scope): Promise<{ principal: Principal; projectId: number }>;
  }
}

/** The project id in the URL; 0 (no team's id) when it is malformed, so the credential is still checked first. */
function projectIdOf(request: FastifyRequest): number {
  const raw = (request.params as { projectId?: string }).projectId ?? '';
  const parsed = projectIdSchema.safeParse(raw);
  return parsed.success ? parsed.data : 0;
}

/** Authentication, project membership, scope and the per-key rate limit, in that order. */
export const authPlugin = fp(
  async (app) => {
    app.decorateRequest('authorize', async function authorize(this: FastifyRequest, scope: Scope) {
      const { credentials, rateLimiter } = app.services;
      const queryToken = (this.query as Record<string, unknown> | undefined)?.[STREAM_TOKEN_QUERY_PARAM];
      const credential = credentialFrom(
        this.headers.authorization,
        typeof queryToken === 'string' ? queryToken : undefined,
      );
      if (!credential) throw apiErrors.notAuthenticated();
      const projectId = projectIdOf(this);
      const principal = await credentials.authorize(credential, projectId, scope);
      if (projectId === 0) throw apiErrors.notFound();
      const bucket = rateLimitKey(principal);
      if (bucket) {
        const retryAfter = rateLimiter.take(bucket);
        if (retryAfter > 0) throw apiErrors.throttled(retryAfter);
      }
      return { principal, projectId };
    });
  },
  { name: 'auth', dependencies: ['services'] },
);
