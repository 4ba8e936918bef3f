import { apiErrors, isApiKeyShape, SCOPES, type Scope, STREAM_TOKEN_PREFIX } from '@wizard-stream/contracts';
import {
  type ApiKeyLookup,
  type DatabaseSchema,
  findApiKey,
  findKeyStanding,
  hashApiKey,
  type KeyStanding,
  recordApiKeyUse,
} from '@wizard-stream/db';
import type { Kysely } from 'kysely';
import { LRUCache } from 'lru-cache';
import { verifyStreamToken } from '../stream-tokens/token.js';
import { type JwtVerifier, looksLikeJwt } from './jwt.js';
import type { ApiKeyPrincipal, Principal } from './principal.js';

export interface CredentialCheckerOptions {
  db: Kysely<DatabaseSchema>;
  streamTokenSecret: string;
  /** How long a lookup is reused; a key revoked on another replica keeps working for at most this long. */
  cacheMs: number;
  /** Lookups kept at most (least recently used first out). */
  cacheMax: number;
  /** Host-app JWTs (auth/jwt.ts); undefined when neither STREAM_JWT_SECRET nor STREAM_JWT_JWKS_URL is set. */
  jwt?: JwtVerifier | undefined;
}

const LAST_USED_RESOLUTION_MS = 60_000;
/** The team id of no team: key management is per user, not per project. */
const NO_TEAM = 0;

/** A cached answer, `undefined` (no such live key) included: lru-cache does not store undefined itself. */
interface Cached {
  keyId: number | undefined;
  userId: number | undefined;
  lookup: ApiKeyLookup | KeyStanding | undefined;
}

/**
 * Turns a public credential into a Principal for one project, in the order the API documents:
 * unknown credential → 401, project not the user's → 404, scope missing → 403. A credential of no
 * shape the API issues is refused before any lookup. The internal token is not a public credential:
 * it is accepted by the internal listener alone (plugins/internal-auth.ts).
 */
export class CredentialChecker {
  private readonly cache: LRUCache<string, Cached> | undefined;
  private readonly lastUsedWrites: LRUCache<number, number>;

  constructor(private readonly options: CredentialCheckerOptions) {
    this.cache =
      options.cacheMs > 0 ? new LRUCache({ max: options.cacheMax, ttl: options.cacheMs }) : undefined;
    this.lastUsedWrites = new LRUCache({ max: options.cacheMax });
  }

  async authorize(credential: string, projectId: number, scope: Scope): Promise<Principal> {
    // Host-app JWT stream auth (auth/jwt.ts): read only, one team, optionally some workflows.
    if (looksLikeJwt(credential)) {
      if (!this.options.jwt) throw apiErrors.authenticationFailed('JWT authentication is not configured.');
      return this.options.jwt.authorize(credential, projectId, scope);
    }

    if (credential.startsWith(STREAM_TOKEN_PREFIX)) {
      const claims = verifyStreamToken(this.options.streamTokenSecret, credential);
      if (!claims) throw apiErrors.authenticationFailed('Invalid or expired stream token.');
      if (claims.teamId !== projectId) throw apiErrors.notFound();
      if (scope !== SCOPES.read) throw apiErrors.permissionDenied(`Stream tokens do not grant ${scope}.`);
      const standing = await this.cached(`standing:${claims.keyId}:${projectId}`, claims.keyId, () =>
        findKeyStanding(this.options.db, claims.keyId, projectId),
      );
      if (!standing || standing.userId !== claims.userId) {
        throw apiErrors.authenticationFailed('The API key that minted this stream token was revoked.');
      }
      if (!standing.isMember) throw apiErrors.notFound();
      return {
        kind: 'stream_token',
        userId: claims.userId,
        teamId: claims.teamId,
        keyId: claims.keyId,
        scopes: [SCOPES.read],
      };
    }

    const lookup = await this.lookupKey(credential, projectId);
    if (!lookup.isMember) throw apiErrors.notFound();
    return this.withScope(lookup, scope);
  }

  /** A personal API key of the caller, for calls that belong to no project (managing keys). */
  async authenticateKey(credential: string, scope: Scope): Promise<ApiKeyPrincipal> {
    if (credential.startsWith(STREAM_TOKEN_PREFIX)) {
      throw apiErrors.permissionDenied('Personal API keys are managed with a personal API key.');
    }
    return this.withScope(await this.lookupKey(credential, NO_TEAM), scope);
  }

  /** Forgets what this replica cached about a key, so that its revocation applies here at once. */
  forgetKey(keyId: number): void {
    for (const [name, entry] of this.cache?.entries() ?? [])
      if (entry.keyId === keyId) this.cache?.delete(name);
  }

  /** Forgets what this replica cached about a user's keys (a membership changed). */
  forgetUser(userId: number): void {
    for (const [name, entry] of this.cache?.entries() ?? [])
      if (entry.userId === userId) this.cache?.delete(name);
  }

  private async lookupKey(key: string, projectId: number): Promise<ApiKeyLookup> {
    if (!isApiKeyShape(key)) throw apiErrors.authenticationFailed('Invalid personal API key.');
    const keyHash = hashApiKey(key);
    const lookup = await this.cached(`key:${keyHash}:${projectId}`, undefined, () =>
      findApiKey(this.options.db, keyHash, projectId),
    );
    if (!lookup) throw apiErrors.authenticationFailed('Invalid personal API key.');
    return lookup;
  }

  private withScope(lookup: ApiKeyLookup, scope: Scope): ApiKeyPrincipal {
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

  private async cached<T extends ApiKeyLookup | KeyStanding>(
    name: string,
    keyId: number | undefined,
    load: () => Promise<T | undefined>,
  ): Promise<T | undefined> {
    const hit = this.cache?.get(name);
    if (hit) return hit.lookup as T | undefined;
    const lookup = await load();
    this.cache?.set(name, {
      keyId: keyId ?? (lookup && 'keyId' in lookup ? lookup.keyId : undefined),
      userId: lookup?.userId,
      lookup,
    });
    return lookup;
  }

  /** last_used_at is kept to the minute, written in the background so it never slows a request. */
  private recordUse(lookup: ApiKeyLookup): void {
    const now = Date.now();
    const lastWrite = this.lastUsedWrites.get(lookup.keyId) ?? lookup.lastUsedAt?.getTime() ?? 0;
    if (now - lastWrite < LAST_USED_RESOLUTION_MS) return;
    this.lastUsedWrites.set(lookup.keyId, now);
    recordApiKeyUse(this.options.db, lookup.keyId, new Date(now)).catch(() =>
      this.lastUsedWrites.delete(lookup.keyId),
    );
  }
}
