import { apiErrorFrom, type FetchLike, isRetryableStatus } from './http.js';

/** What one connection attempt ended with; the subscribe loop decides what to do next from it. */
export type ConnectOutcome =
  /** The server sent `event: end` (rotation or drain): reconnect promptly. */
  | { kind: 'end' }
  /** An open stream broke (server gone, network reset): reconnect with backoff. */
  | { kind: 'dropped'; error?: unknown }
  /** The attempt never opened but may succeed later (network error, 5xx, 429, expired token). */
  | { kind: 'failed'; error: unknown; retryAfterMs?: number }
  /** 204: the server says stop (killswitch). Never reconnect. */
  | { kind: 'stop' }
  /** A 4xx that retrying cannot fix (bad ids, no access). */
  | { kind: 'fatal'; error: Error }
  /** close() was called. */
  | { kind: 'aborted' };

export interface ConnectContext {
  /** The stream URL without credentials. */
  url: string;
  /** An API key or stream token, resolved for this attempt. */
  credential: string;
  /** Whether a 401 may be cured by resolving the credential again (a fresh stream token). */
  credentialRefreshable: boolean;
  lastEventId: string | undefined;
  /** A stream silent this long (no frame, no `: ping`) counts as dropped; 0 never times out. */
  idleTimeoutMs: number;
  signal: AbortSignal;
  fetch: FetchLike;
  onOpen(): void;
  onMessage(id: string | undefined, data: string): void;
}

export type Transport = (context: ConnectContext) => Promise<ConnectOutcome>;

/** Classifies a response that did not open a stream. */
export async function outcomeOfRejectedResponse(
  response: Response,
  credentialRefreshable: boolean,
): Promise<ConnectOutcome> {
  if (response.status === 204) return { kind: 'stop' };
  const error = await apiErrorFrom(response);
  if (isRetryableStatus(response.status)) {
    return error.retryAfterMs === undefined
      ? { kind: 'failed', error }
      : { kind: 'failed', error, retryAfterMs: error.retryAfterMs };
  }
  if (response.status === 401 && credentialRefreshable) return { kind: 'failed', error };
  return { kind: 'fatal', error };
}

export function isEventStream(response: Response): boolean {
  return (response.headers.get('content-type') ?? '').toLowerCase().startsWith('text/event-stream');
}
