import type { CredentialOwner, Scope } from '@wizard-stream/contracts';
import type { JwtPrincipal } from './jwt.js';

/** Who a request acts as, once its credential has been checked against the project in the URL. */
export type Principal =
  | {
      kind: 'api_key';
      keyId: number;
      userId: number;
      email: string;
      firstName: string;
      scopes: readonly string[];
    }
  /** keyId: the key that minted the token; the token dies with it. */
  | { kind: 'stream_token'; userId: number; teamId: number; keyId: number; scopes: readonly Scope[] }
  /** The gateways' re-snapshots, on the internal listener only. */
  | { kind: 'internal'; scopes: readonly Scope[] }
  /** A host app's JWT (auth/jwt.ts): read only, one team, no key behind it. */
  | JwtPrincipal;

/** The only kind that may push sessions: a user's personal key. */
export type ApiKeyPrincipal = Extract<Principal, { kind: 'api_key' }>;

/**
 * A rate-limit bucket per key: a stream token is charged to the key that minted it, so minting tokens
 * does not multiply a key's budget. The gateways' internal calls are not limited.
 */
export function rateLimitKey(principal: Principal): string | undefined {
  switch (principal.kind) {
    case 'api_key':
    case 'stream_token':
      return `key:${principal.keyId}`;
    case 'internal':
      return undefined;
    case 'jwt':
      return `jwt:${principal.teamId}:${principal.subject ?? ''}`;
  }
}

/** The user and key behind a credential, which the gateways keep with every stream they open. */
export function ownerOf(principal: Principal): CredentialOwner | undefined {
  return principal.kind === 'api_key' || principal.kind === 'stream_token'
    ? { userId: principal.userId, keyId: principal.keyId }
    : undefined;
}
