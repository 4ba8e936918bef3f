import { type ApiError, apiErrors } from '@wizard-stream/contracts';
import { QUERY_READ_TIMEOUT } from '@wizard-stream/db';

/**
 * Errors that mean "the database cannot be reached right now" rather than "this statement is wrong":
 * the API answers them with 503 + Retry-After so that clients retry, instead of a 500.
 */
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

export function isDatabaseUnavailable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (UNAVAILABLE_CODES.has(code)) return true;
    // SQLSTATE class 08 (connection exception), 57P0x (shutdown / cannot connect now), 53300 (too many
    // connections), 57014 (canceled: STATEMENT_TIMEOUT_MS passed).
    if (code.startsWith('08') || code.startsWith('57P0') || code === '53300' || code === '57014') return true;
  }
  const message = error.message;
  return (
    message.includes('timeout exceeded when trying to connect') ||
    // node-postgres' query_timeout: the database did not answer within STATEMENT_TIMEOUT_MS (it hangs).
    message === QUERY_READ_TIMEOUT ||
    message.includes('Connection terminated') ||
    message.includes('Client has encountered a connection error') ||
    message.includes('driver has already been destroyed') ||
    (error instanceof AggregateError && error.errors.some(isDatabaseUnavailable))
  );
}

export const DATABASE_RETRY_AFTER_SECONDS = 5;

/** The 503 the API answers while the database cannot be reached; undefined for any other failure. */
export function databaseUnavailableError(error: unknown): ApiError | undefined {
  return isDatabaseUnavailable(error)
    ? apiErrors.unavailable('The database is unavailable; retry shortly.', DATABASE_RETRY_AFTER_SECONDS)
    : undefined;
}
