import {
  ApiError,
  apiErrors,
  type CredentialOwner,
  credentialFrom,
  formatPrincipalHeader,
  PRINCIPAL_HEADER,
  projectIdSchema,
  SCOPES,
  type Scope,
  STREAM_TOKEN_QUERY_PARAM,
} from '@wizard-stream/contracts';
import { chargedConnects } from '@wizard-stream/http';
import type { FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { type ApiKeyPrincipal, ownerOf, type Principal, rateLimitKey } from '../auth/principal.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Checks the request's credential for the project in its URL; throws the documented API error. */
    authorize(scope: Scope): Promise<{ principal: Principal; projectId: number }>;
    /** Checks that the request carries a personal API key with `scope` (calls outside any project). */
    authenticateKey(scope: Scope): Promise<ApiKeyPrincipal>;
    /** Set once authorized: named back to the gateways in PRINCIPAL_HEADER. */
    credentialOwner: CredentialOwner | undefined;
  }
}

/** The project id in the URL; 0 (no team's id) when it is malformed, so the credential is still checked first. */
function projectIdOf(request: FastifyRequest): number {
  const raw = (request.params as { projectId?: string }).projectId ?? '';
  const parsed = projectIdSchema.safeParse(raw);
  return parsed.success ? parsed.data : 0;
}

/** A stream token in `?token=` counts on read calls only; every other call takes its credential from the header. */
function credentialOf(request: FastifyRequest, scope: Scope): string {
  const queryToken =
    scope === SCOPES.read
      ? (request.query as Record<string, unknown> | undefined)?.[STREAM_TOKEN_QUERY_PARAM]
      : undefined;
  const credential = credentialFrom(
    request.headers.authorization,
    typeof queryToken === 'string' ? queryToken : undefined,
  );
  if (!credential) throw apiErrors.notAuthenticated();
  return credential;
}

/**
 * Authentication, project membership, scope and the per-key rate limit, in that order, behind the
 * per-address throttle of failed authentications: an address over AUTH_FAILURES_PER_MIN is refused
 * before its credential costs a lookup.
 */
export const authPlugin = fp(
  async (app) => {
    const { credentials, rateLimiter, authFailures, config } = app.services;

    async function authenticated<T>(request: FastifyRequest, check: () => Promise<T>): Promise<T> {
      const wait = authFailures.retryAfterSeconds(request.ip);
      if (wait > 0) throw apiErrors.throttled(wait);
      try {
        return await check();
      } catch (error) {
        if (error instanceof ApiError && error.statusCode === 401) authFailures.recordFailure(request.ip);
        throw error;
      }
    }

    /** `credential` is set for a call that may be a gateway's snapshot, whose signed connects all count. */
    function charge(request: FastifyRequest, principal: Principal, credential?: string): void {
      const bucket = rateLimitKey(principal);
      if (!bucket) return;
      const connects = chargedConnects(request.headers, credential, config.internalApiToken);
      const retryAfter = rateLimiter.take(bucket, Date.now(), connects);
      if (retryAfter > 0) throw apiErrors.throttled(retryAfter);
    }

    app.decorateRequest('credentialOwner', undefined);
    app.decorateRequest('authorize', async function authorize(this: FastifyRequest, scope: Scope) {
      const projectId = projectIdOf(this);
      let credential: string | undefined;
      const principal = await authenticated(this, () => {
        credential = credentialOf(this, scope);
        return credentials.authorize(credential, projectId, scope);
      });
      if (projectId === 0) throw apiErrors.notFound();
      charge(this, principal, credential);
      this.credentialOwner = ownerOf(principal);
      return { principal, projectId };
    });
    app.decorateRequest(
      'authenticateKey',
      async function authenticateKey(this: FastifyRequest, scope: Scope) {
        const credential = credentialFrom(this.headers.authorization, undefined);
        const principal = await authenticated(this, () => {
          if (!credential) throw apiErrors.notAuthenticated();
          return credentials.authenticateKey(credential, scope);
        });
        charge(this, principal);
        return principal;
      },
    );
    app.addHook('onSend', async (request, reply) => {
      if (request.credentialOwner && reply.statusCode < 300) {
        reply.header(PRINCIPAL_HEADER, formatPrincipalHeader(request.credentialOwner));
      }
    });
  },
  { name: 'auth', dependencies: ['services'] },
);
