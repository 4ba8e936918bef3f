import { timingSafeEqual } from 'node:crypto';
import { apiErrors, SCOPES, type Scope } from '@wizard-stream/contracts';
import {
  type ApiKeyLookup,
  type DatabaseSchema,
  findApiKey,
  hashApiKey,
  recordApiKeyUse,
} from '@wizard-stream/db';
import type { Kysely } from 'kysely';
import { STREAM_TOKEN_PREFIX, verifyStreamToken } from '../stream-tokens/token.js';
import { type JwtVerifier, looksLikeJwt } from './jwt.js';
import type { Principal } from './principal.js';

export interface CredentialCheckerOptions {
  db: Kysely<DatabaseSchema>;
  streamTokenSecret: string;
  internalApiToken: string | undefined;
  /** How long a key lookup is reused; a revoked key keeps working for at most this long. */
  cacheMs: number;
  /** Host-app JWTs (auth/jwt.ts); undefined when neither STREAM_JWT_SECRET nor STREAM_JWT_JWKS_URL is set. */
  jwt?: JwtVerifier | undefined;
}

const LAST_USED_RESOLUTION_MS = 60_000;
const MAX_CACHE_ENTRIES = 10_000;

function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Turns a bearer credential into a Principal for one project, in the order the API documents:
 * unknown credential → 401, project not the user's → 404, scope missing → 403.
 */
export class CredentialChecker {
  private readonly cache = new Map<string, { lookup: ApiKeyLookup | undefined; expiresAt: number }>();
  private readonly lastUsedWrites = new Map<number, number>();

  constructor(private readonly options: CredentialCheckerOptions) {}

  async authorize(credential: string | undefined, projectId: number, scope: Scope): Promise<Principal> {
    if (!credential) throw apiErrors.notAuthenticated();
    const { internalApiToken, streamTokenSecret } = this.options;

    if (internalApiToken && sameSecret(credential, internalApiToken)) {
      if (scope !== SCOPES.read)
        throw apiErrors.permissionDenied('The internal token is limited to read calls.');
      return { kind: 'internal', scopes: [SCOPES.read] };
    }

    // Host-app JWT stream auth (auth/jwt.ts): read only, one team, optionally some workflows.
    if (looksLikeJwt(credential)) {
      if (!this.options.jwt) throw apiErrors.authenticationFailed('JWT authentication is not configured.');
      return this.options.jwt.authorize(credential, projectId, scope);
    }

    if (credential.startsWith(STREAM_TOKEN_PREFIX)) {
      const claims = verifyStreamToken(streamTokenSecret, credential);
      if (!claims) throw apiErrors.authenticationFailed('Invalid or expired stream token.');
      if (claims.teamId !== projectId) throw apiErrors.notFound();
      if (scope !== SCOPES.read) throw apiErrors.permissionDenied(`Stream tokens do not grant ${scope}.`);
      return { kind: 'stream_token', userId: claims.userId, teamId: claims.teamId, scopes: [SCOPES.read] };
    }

    const lookup = await this.lookupKey(credential, projectId);
    if (!lookup) throw apiErrors.authenticationFailed('Invalid personal API key.');
    if (!lookup.isMember) throw apiErrors.notFound();
    if (!lookup.scopes.includes(scope)) {
      throw apiErrors.permissionDenied(`This API key does not have the ${scope} scope.`);
    }
    this.recordUse(lookup);
    return {
      kind: 'api_key',
      keyId: lookup.keyId,
      userId: lookup.userId,
      email: lookup.email,
      firstName: lookup.firstName,
      scopes: lookup.scopes,
    };
  }

  private async lookupKey(key: string, projectId: number): Promise<ApiKeyLookup | undefined> {
    const keyHash = hashApiKey(key);
    const cacheKey = `${keyHash}:${projectId}`;
    const now = Date.now();
    const cached = this.cache.get(cacheKey);
    if (cached && cached.expiresAt > now) return cached.lookup;

    const lookup = await findApiKey(this.options.db, keyHash, projectId);
    if (this.options.cacheMs > 0) {
      if (this.cache.size >= MAX_CACHE_ENTRIES) this.cache.clear();
      this.cache.set(cacheKey, { lookup, expiresAt: now + this.options.cacheMs });
    }
    return lookup;
  }

  /** last_used_at is kept to the minute, written in the background so it never slows a request. */
  private recordUse(lookup: ApiKeyLookup): void {
    const now = Date.now();
    const lastWrite = this.lastUsedWrites.get(lookup.keyId) ?? lookup.lastUsedAt?.getTime() ?? 0;
    if (now - lastWrite < LAST_USED_RESOLUTION_MS) return;
    if (this.lastUsedWrites.size >= MAX_CACHE_ENTRIES) this.lastUsedWrites.clear();
    this.lastUsedWrites.set(lookup.keyId, now);
    recordApiKeyUse(this.options.db, lookup.keyId, new Date(now)).catch(() =>
      this.lastUsedWrites.delete(lookup.keyId),
    );
  }
}
