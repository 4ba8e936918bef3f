/**
 * The grammar of the credentials the public API takes (docs/api.md#authentication), shared by write-api,
 * which checks them, and the gateways, which forward them: anything outside it is refused before it
 * costs a lookup. Both kinds are canonical base64url (no padding, no stray bits), so one token has one
 * spelling and `token==` or trailing junk is simply not a token.
 */

/** Personal API keys: the prefix and 32 random bytes. Shown once; stored as their SHA-256 hash. */
export const API_KEY_PREFIX = 'wsk_';
export const API_KEY_BYTES = 32;
/** Stream tokens: `wst_<claims>.<mac>`, signed by write-api (services/write-api/src/stream-tokens/token.ts). */
export const STREAM_TOKEN_PREFIX = 'wst_';
/** An HMAC-SHA256. */
const MAC_BYTES = 32;
/** Claims are a small JSON object; anything longer was not minted by us. */
const MAX_CLAIMS_CHARS = 256;

const BASE64URL = /^[A-Za-z0-9_-]+$/;

/** True when `text` is the one unpadded base64url spelling of its bytes (and of `bytes` bytes, if given). */
export function isCanonicalBase64url(text: string, bytes?: number): boolean {
  if (!BASE64URL.test(text)) return false;
  const decoded = Buffer.from(text, 'base64url');
  if (bytes !== undefined && decoded.length !== bytes) return false;
  return decoded.toString('base64url') === text;
}

export function isApiKeyShape(credential: string): boolean {
  return (
    credential.startsWith(API_KEY_PREFIX) &&
    isCanonicalBase64url(credential.slice(API_KEY_PREFIX.length), API_KEY_BYTES)
  );
}

/** The two parts of a well-formed stream token (not yet verified), or undefined. */
export function splitStreamToken(credential: string): { claims: string; mac: string } | undefined {
  if (!credential.startsWith(STREAM_TOKEN_PREFIX)) return undefined;
  const parts = credential.slice(STREAM_TOKEN_PREFIX.length).split('.');
  if (parts.length !== 2) return undefined;
  const [claims, mac] = parts as [string, string];
  if (claims.length > MAX_CLAIMS_CHARS || !isCanonicalBase64url(claims)) return undefined;
  if (!isCanonicalBase64url(mac, MAC_BYTES)) return undefined;
  return { claims, mac };
}

/** Host-app JWTs are minted elsewhere, so only their outer form is known; anything longer is no JWT of ours. */
const MAX_JWT_CHARS = 8192;

/**
 * A JWS compact token (a host app's JWT, docs/api.md#host-app-jwts): three base64url parts whose first
 * is a JSON header naming an `alg`. Our own credentials never look like that (API keys have no dot,
 * stream tokens one), so the shape alone tells which check a credential gets.
 */
export function isJwtShape(credential: string): boolean {
  if (credential.length > MAX_JWT_CHARS) return false;
  const parts = credential.split('.');
  if (parts.length !== 3 || !parts.every((part) => BASE64URL.test(part))) return false;
  try {
    const header = JSON.parse(Buffer.from(parts[0] as string, 'base64url').toString('utf8')) as unknown;
    return (
      typeof header === 'object' && header !== null && typeof (header as { alg?: unknown }).alg === 'string'
    );
  } catch {
    return false;
  }
}

/** A credential of a shape the public API takes: anything else is refused without a lookup. */
export function isPublicCredentialShape(credential: string): boolean {
  return isApiKeyShape(credential) || splitStreamToken(credential) !== undefined || isJwtShape(credential);
}

/** What a query string may carry: a read-only credential made for a browser (a stream token or a JWT). */
function isQueryCredentialShape(credential: string): boolean {
  return splitStreamToken(credential) !== undefined || isJwtShape(credential);
}

/**
 * The credential a request carries: a bearer token in the header, or else a stream token or JWT in the query
 * (EventSource cannot send headers). Nothing else is taken from a query string: a URL ends up in
 * browser history, proxy logs and Referer headers, so a key or the internal token there counts as none.
 */
export function credentialFrom(
  authorization: string | undefined,
  queryToken: string | undefined,
): string | undefined {
  const match = authorization?.match(/^Bearer\s+(\S+)\s*$/i);
  if (match?.[1]) return match[1];
  return queryToken !== undefined && isQueryCredentialShape(queryToken) ? queryToken : undefined;
}

/** Who write-api found behind a read call's credential: sent back to the gateways with a snapshot. */
export interface CredentialOwner {
  userId: number;
  /** The personal API key itself, or the one that minted the stream token. */
  keyId: number;
}

/** Response header of write-api's read calls naming the credential's owner (`user=3; key=12`). */
export const PRINCIPAL_HEADER = 'wizard-principal';

export function formatPrincipalHeader(owner: CredentialOwner): string {
  return `user=${owner.userId}; key=${owner.keyId}`;
}

export function parsePrincipalHeader(value: string | null | undefined): CredentialOwner | undefined {
  const match = value?.match(/^user=([1-9][0-9]{0,15}); key=([1-9][0-9]{0,15})$/);
  if (!match) return undefined;
  const userId = Number(match[1]);
  const keyId = Number(match[2]);
  return Number.isSafeInteger(userId) && Number.isSafeInteger(keyId) ? { userId, keyId } : undefined;
}

/**
 * Request header of a gateway's snapshot call: how many stream connects share it (the gateway coalesces
 * identical connects into one call). write-api charges that many requests to the key's rate limit, so a
 * connect storm is paid for like separate calls. It counts only with CONNECTS_SIGNATURE_HEADER: else
 * anyone holding a stream token could spend its minting key's whole budget with one request.
 */
export const CONNECTS_HEADER = 'wizard-connects';
/** HMAC-SHA256 (INTERNAL_API_TOKEN) of the count and the credential: the gateway vouches for the count. */
export const CONNECTS_SIGNATURE_HEADER = 'wizard-connects-signature';
export const MAX_CONNECTS_PER_CALL = 1000;

export function parseConnectsHeader(value: string | string[] | undefined): number {
  const count = typeof value === 'string' && /^[1-9][0-9]{0,3}$/.test(value) ? Number(value) : 1;
  return Math.min(count, MAX_CONNECTS_PER_CALL);
}
