import type { Scope } from '@wizard-stream/contracts';
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
  | { kind: 'stream_token'; userId: number; teamId: number; scopes: readonly Scope[] }
  | { kind: 'internal'; scopes: readonly Scope[] }
  // A host app's JWT (auth/jwt.ts).
  | JwtPrincipal;

/** The only kind that may push sessions: a user's personal key. */
export type ApiKeyPrincipal = Extract<Principal, { kind: 'api_key' }>;

/** A rate-limit bucket per key or user; the gateways' internal calls are not limited. */
export function rateLimitKey(principal: Principal): string | undefined {
  switch (principal.kind) {
    case 'api_key':
      return `key:${principal.keyId}`;
    case 'stream_token':
      return `user:${principal.userId}`;
    case 'internal':
      return undefined;
    case 'jwt':
      return `jwt:${principal.teamId}:${principal.subject ?? ''}`;
  }
}
