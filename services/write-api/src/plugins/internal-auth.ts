import { timingSafeEqual } from 'node:crypto';
import { apiErrors, credentialFrom, projectIdSchema, SCOPES, type Scope } from '@wizard-stream/contracts';
import type { FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Principal } from '../auth/principal.js';

function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * `request.authorize` on the internal listener: INTERNAL_API_TOKEN in the Authorization header, read
 * calls only, nothing from the query string. No public credential works here, and the internal token
 * works nowhere else, so it is worthless wherever the internal port is not reachable.
 */
export const internalAuthPlugin = fp<{ internalApiToken: string }>(
  async (app, { internalApiToken }) => {
    app.decorateRequest('credentialOwner', undefined);
    app.decorateRequest('authorize', async function authorize(this: FastifyRequest, scope: Scope) {
      const credential = credentialFrom(this.headers.authorization, undefined);
      if (!credential) throw apiErrors.notAuthenticated();
      if (!sameSecret(credential, internalApiToken)) throw apiErrors.authenticationFailed();
      if (scope !== SCOPES.read)
        throw apiErrors.permissionDenied('The internal listener serves read calls only.');
      const project = projectIdSchema.safeParse((this.params as { projectId?: string }).projectId ?? '');
      if (!project.success) throw apiErrors.notFound();
      const principal: Principal = { kind: 'internal', scopes: [SCOPES.read] };
      return { principal, projectId: project.data };
    });
    app.decorateRequest('authenticateKey', async () => {
      throw apiErrors.notFound();
    });
  },
  { name: 'auth', dependencies: ['services'] },
);
