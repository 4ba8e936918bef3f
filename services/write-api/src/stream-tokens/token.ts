import { createHmac, timingSafeEqual } from 'node:crypto';
import { STREAM_TOKEN_TTL_MS } from '@wizard-stream/contracts';

/**
 * Stream tokens let a browser's EventSource (which cannot send headers) connect: `wst_<claims>.<mac>`,
 * claims = base64url JSON {u: user, t: team, exp: ms epoch}, mac = HMAC-SHA256 over the claims.
 * They grant read access to one team for STREAM_TOKEN_TTL_MS.
 */
export const STREAM_TOKEN_PREFIX = 'wst_';

export interface StreamTokenClaims {
  userId: number;
  teamId: number;
  expiresAt: number;
}

function mac(secret: string, claims: string): Buffer {
  return createHmac('sha256', secret).update(claims).digest();
}

export function signStreamToken(secret: string, userId: number, teamId: number, now = Date.now()) {
  const expiresAt = now + STREAM_TOKEN_TTL_MS;
  const claims = Buffer.from(JSON.stringify({ u: userId, t: teamId, exp: expiresAt })).toString('base64url');
  return { token: `${STREAM_TOKEN_PREFIX}${claims}.${mac(secret, claims).toString('base64url')}`, expiresAt };
}

/** The claims of a valid, unexpired token; undefined for anything else. */
export function verifyStreamToken(
  secret: string,
  token: string,
  now = Date.now(),
): StreamTokenClaims | undefined {
  if (!token.startsWith(STREAM_TOKEN_PREFIX)) return undefined;
  const [claims, signature, extra] = token.slice(STREAM_TOKEN_PREFIX.length).split('.');
  if (!claims || !signature || extra !== undefined) return undefined;
  const expected = mac(secret, claims);
  const given = Buffer.from(signature, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
  try {
    const parsed = JSON.parse(Buffer.from(claims, 'base64url').toString('utf8')) as Record<string, unknown>;
    const { u, t, exp } = parsed;
    if (!Number.isSafeInteger(u) || !Number.isSafeInteger(t) || typeof exp !== 'number' || exp <= now)
      return undefined;
    return { userId: u as number, teamId: t as number, expiresAt: exp };
  } catch {
    return undefined;
  }
}
