import { createHmac, timingSafeEqual } from 'node:crypto';
import { STREAM_TOKEN_PREFIX, STREAM_TOKEN_TTL_MS, splitStreamToken } from '@wizard-stream/contracts';

/**
 * Stream tokens let a browser's EventSource (which cannot send headers) connect: `wst_<claims>.<mac>`
 * (the grammar is contracts/credentials.ts's), claims = base64url JSON {u: user, t: team, k: the key
 * that minted it, exp: ms epoch}, mac = HMAC-SHA256 over the claims. They grant read access to one team
 * for STREAM_TOKEN_TTL_MS, and only while the minting key is live (credentials.ts checks that).
 */

export interface StreamTokenClaims {
  userId: number;
  teamId: number;
  keyId: number;
  expiresAt: number;
}

function mac(secret: string, claims: string): Buffer {
  return createHmac('sha256', secret).update(claims).digest();
}

export function signStreamToken(
  secret: string,
  owner: { userId: number; teamId: number; keyId: number },
  now = Date.now(),
) {
  const expiresAt = now + STREAM_TOKEN_TTL_MS;
  const claims = Buffer.from(
    JSON.stringify({ u: owner.userId, t: owner.teamId, k: owner.keyId, exp: expiresAt }),
  ).toString('base64url');
  return { token: `${STREAM_TOKEN_PREFIX}${claims}.${mac(secret, claims).toString('base64url')}`, expiresAt };
}

const isId = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) > 0;

/** The claims of a valid, unexpired token in its one canonical spelling; undefined for anything else. */
export function verifyStreamToken(
  secret: string,
  token: string,
  now = Date.now(),
): StreamTokenClaims | undefined {
  const parts = splitStreamToken(token);
  if (!parts) return undefined;
  const expected = mac(secret, parts.claims);
  const given = Buffer.from(parts.mac, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
  try {
    const parsed = JSON.parse(Buffer.from(parts.claims, 'base64url').toString('utf8')) as Record<
      string,
      unknown
    >;
    const { u, t, k, exp } = parsed;
    if (!isId(u) || !isId(t) || !isId(k) || typeof exp !== 'number' || exp <= now) return undefined;
    return { userId: u, teamId: t, keyId: k, expiresAt: exp };
  } catch {
    return undefined;
  }
}
