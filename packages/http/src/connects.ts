import { createHmac, timingSafeEqual } from 'node:crypto';
import { CONNECTS_HEADER, CONNECTS_SIGNATURE_HEADER, parseConnectsHeader } from '@wizard-stream/contracts';

/**
 * The gateway vouches for the connect count of its snapshot calls (contracts' CONNECTS_HEADER) with an
 * HMAC keyed by INTERNAL_API_TOKEN, so write-api charges the count only when a gateway sent it. Server
 * side only (node:crypto), hence here rather than in contracts, which the browser bundles import.
 */
export function signConnects(secret: string, connects: number, credential: string): string {
  return createHmac('sha256', secret).update(`${connects}\n${credential}`).digest('base64url');
}

/**
 * How many requests a call is charged: the signed count of a gateway's snapshot call, else 1 (no
 * secret configured, no or a wrong signature, or any other caller).
 */
export function chargedConnects(
  headers: Record<string, string | string[] | undefined>,
  credential: string | undefined,
  secret: string | undefined,
): number {
  const count = parseConnectsHeader(headers[CONNECTS_HEADER]);
  const signature = headers[CONNECTS_SIGNATURE_HEADER];
  if (count === 1 || !secret || !credential || typeof signature !== 'string') return 1;
  const expected = Buffer.from(signConnects(secret, count, credential));
  const given = Buffer.from(signature);
  return given.length === expected.length && timingSafeEqual(given, expected) ? count : 1;
}
