import {
  type ApiError,
  apiErrors,
  isJwtShape,
  SCOPES,
  type Scope,
  workflowIdSchema,
} from '@wizard-stream/contracts';
import { createRemoteJWKSet, errors, type JWTPayload, type JWTVerifyGetKey, jwtVerify } from 'jose';
import { z } from 'zod';

/**
 * JWT stream auth for host apps (docs/api.md#host-app-jwts): an app with its own users mints a JWT for
 * a browser, as Mercure and Centrifugo allow, instead of handing out a personal API key. A JWT is a
 * read credential for one team, optionally limited to some workflows, and never a write credential.
 */

export interface JwtVerifierOptions {
  /** HS256 key; unset → HS256 tokens are refused. */
  secret: string | undefined;
  /** RS256/ES256 keys; fetched on first use, cached, refetched when a token names an unknown `kid`. */
  jwksUrl: string | undefined;
  issuer: string | undefined;
  audience: string | undefined;
  /** The least time between two JWKS fetches, so tokens with made-up `kid`s cannot hammer the JWKS. */
  jwksCooldownMs: number;
}

export interface JwtPrincipal {
  kind: 'jwt';
  teamId: number;
  /** `sub`, when the host app sets one: the rate-limit bucket is per subject. */
  subject: string | undefined;
  /** The workflows the token may read; undefined → every workflow of the team. */
  workflowIds: readonly string[] | undefined;
  scopes: readonly Scope[];
}

/** Tokens a little past `exp` (or before `nbf`) still pass: host and service clocks differ. */
export const JWT_CLOCK_TOLERANCE_S = 30;
const JWKS_TIMEOUT_MS = 5000;

const claimsSchema = z.object({
  team_id: z.int().positive(),
  workflow_ids: z.array(workflowIdSchema).max(1000).optional(),
  sub: z.string().optional(),
});

/** The JWS outer form (packages/contracts): decides that a credential gets this check. */
export const looksLikeJwt = isJwtShape;

function failed(detail: string): ApiError {
  return apiErrors.authenticationFailed(detail);
}

export class JwtVerifier {
  private readonly key: JWTVerifyGetKey;
  private readonly algorithms: string[];

  constructor(private readonly options: JwtVerifierOptions) {
    const secret = options.secret === undefined ? undefined : new TextEncoder().encode(options.secret);
    const jwks =
      options.jwksUrl === undefined
        ? undefined
        : createRemoteJWKSet(new URL(options.jwksUrl), {
            cooldownDuration: options.jwksCooldownMs,
            timeoutDuration: JWKS_TIMEOUT_MS,
          });
    this.algorithms = [...(secret ? ['HS256'] : []), ...(jwks ? ['RS256', 'ES256'] : [])];
    this.key = async (header, token) => {
      if (header.alg === 'HS256' && secret) return secret;
      if (jwks) return jwks(header, token);
      throw new errors.JOSEAlgNotAllowed(`"${header.alg}" is not an accepted algorithm`);
    };
  }

  /** The order of docs/api.md#authentication: invalid → 401, another team → 404, a write → 403. */
  async authorize(token: string, projectId: number, scope: Scope): Promise<JwtPrincipal> {
    const payload = await this.verify(token);
    const claims = claimsSchema.safeParse(payload);
    if (!claims.success) {
      const issue = claims.error.issues[0];
      throw failed(`The JWT's claims are invalid: ${issue?.path.join('.') || 'claims'}: ${issue?.message}`);
    }
    if (claims.data.team_id !== projectId) throw apiErrors.notFound();
    if (scope !== SCOPES.read)
      throw apiErrors.permissionDenied(`JWTs are read-only: they do not grant ${scope}.`);
    return {
      kind: 'jwt',
      teamId: claims.data.team_id,
      subject: claims.data.sub,
      workflowIds: claims.data.workflow_ids,
      scopes: [SCOPES.read],
    };
  }

  private async verify(token: string): Promise<JWTPayload> {
    const { issuer, audience, jwksUrl } = this.options;
    try {
      const { payload } = await jwtVerify(token, this.key, {
        algorithms: this.algorithms,
        requiredClaims: ['exp'],
        clockTolerance: JWT_CLOCK_TOLERANCE_S,
        ...(issuer !== undefined && { issuer }),
        ...(audience !== undefined && { audience }),
      });
      return payload;
    } catch (error) {
      if (error instanceof errors.JWTExpired) throw failed('The JWT has expired.');
      if (error instanceof errors.JWTClaimValidationFailed) {
        const expected = error.claim === 'aud' ? audience : error.claim === 'iss' ? issuer : undefined;
        throw failed(
          expected === undefined
            ? `The JWT's "${error.claim}" claim is invalid: ${error.reason}.`
            : `The JWT's "${error.claim}" claim is not "${expected}".`,
        );
      }
      if (error instanceof errors.JWKSNoMatchingKey)
        throw failed(`No key of the JWKS matches the JWT's kid.`);
      const keysUnreadable =
        error instanceof errors.JWKSTimeout ||
        error instanceof errors.JWKSInvalid ||
        !(error instanceof errors.JOSEError);
      // Not the token's fault: the key set could not be read, and the caller may retry.
      if (keysUnreadable && jwksUrl !== undefined) {
        throw apiErrors.unavailable(`The JWKS at ${jwksUrl} could not be fetched.`, 5);
      }
      if (!(error instanceof errors.JOSEError)) throw error;
      throw failed(`Invalid JWT: ${error.message}.`);
    }
  }
}

/**
 * A JWT limited to some workflows reads only those: a request naming another workflow, or none (a list
 * without `workflow_id`), is refused. Any other credential passes.
 */
export function assertJwtWorkflow(
  principal: { kind: string; workflowIds?: readonly string[] | undefined },
  workflowId: unknown,
  refuse: (detail: string) => ApiError = apiErrors.permissionDenied,
): void {
  if (principal.kind !== 'jwt' || principal.workflowIds === undefined) return;
  if (typeof workflowId === 'string' && principal.workflowIds.includes(workflowId)) return;
  throw refuse(
    typeof workflowId === 'string' && workflowId !== ''
      ? `This JWT does not cover workflow "${workflowId}".`
      : 'This JWT is limited to some workflows: name one as workflow_id.',
  );
}
