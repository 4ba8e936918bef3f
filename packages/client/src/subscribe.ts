import { sessionDtoSchema, streamTokensUrl, streamUrl } from '@wizard-stream/contracts';
import { backoffDelayMs, realSleep, type Sleep } from './backoff.js';
import { type EventSourceConstructor, eventSourceTransport } from './eventsource-transport.js';
import { fetchTransport } from './fetch-transport.js';
import { apiErrorFrom, type FetchLike } from './http.js';
import { type PollTuning, runPollLoop } from './poll.js';
import type { Session } from './push-client.js';
import { SessionVersions } from './session-versions.js';
import type { ConnectOutcome, Transport } from './transport.js';

export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'closed';

/** Why a subscription stopped for good. */
export type CloseReason =
  | { reason: 'closed' }
  /** The server answered 204 (killswitch): it asks clients not to come back. */
  | { reason: 'no_content' }
  /** A 4xx retrying cannot fix (invalid ids, no access to the project). */
  | { reason: 'rejected'; error: Error };

export type StreamCredentials =
  /** A personal API key; in a browser it is exchanged for a stream token on every connect. */
  | { apiKey: string }
  /** A stream token (expires after 10 minutes; prefer getToken for long-lived pages). */
  | { token: string }
  /** Called before every connect, so a reconnect after expiry uses a fresh stream token. */
  | { getToken: () => Promise<string> };

export interface DeliveryInfo {
  /** now − updated_at when the frame arrived: the end-to-end delivery latency of a live update. */
  latencyMs: number;
  /**
   * Whether the session was updated after this connection was requested, so latencyMs is how long its
   * delivery took. False for the snapshot sent on (re)connect, whose latencyMs is the session's age.
   */
  live: boolean;
  eventId: string | undefined;
}

export interface SubscribeOptions {
  baseUrl: string;
  projectId: number;
  workflowId: string;
  skillId?: string;
  credentials: StreamCredentials;
  onSession: (session: Session, info: DeliveryInfo) => void;
  onState?: (state: ConnectionState) => void;
  /** Transient problems (a failed attempt, a malformed frame); the subscription carries on. */
  onError?: (error: unknown) => void;
  /** The subscription stopped for good: close(), a 204, or a 4xx. */
  onClose?: (close: CloseReason) => void;
  /** `auto` picks EventSource where it exists (browsers), streaming fetch elsewhere (Node). */
  transport?: 'auto' | 'fetch' | 'eventsource';
  fetch?: FetchLike;
  EventSource?: EventSourceConstructor;
  /** Backoff after a failure: full jitter over min(maxDelayMs, baseDelayMs·2^n) (defaults 500 ms, 30 s). */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Reconnect delay after `event: end`, jittered over [0, this] (default 250 ms). */
  endReconnectDelayMs?: number;
  /** A connection open this long counts as healthy and resets the backoff (default 5 s). */
  healthyAfterMs?: number;
  /** The longest a server's Retry-After may hold the next attempt back (default 60 s). */
  maxRetryAfterMs?: number;
  /**
   * fetch transport: a stream with no frame and no `: ping` for this long is treated as dropped and
   * reconnected (default 45 s, three of the gateway's default heartbeats; 0 disables). Browsers' EventSource
   * does not expose heartbeats, so it is not applied there.
   */
  idleTimeoutMs?: number;
  /**
   * Switch to polling `…/latest/` (poll.ts) once SSE failed `afterFailures` times in a row (default 3)
   * or the gateway answered 204 (its killswitch), and stay there. Off unless given.
   */
  pollFallback?: PollTuning & { afterFailures?: number };
  /** Injected by tests: the jitter source, the wait between attempts, and the clock. */
  random?: () => number;
  sleep?: Sleep;
  now?: () => number;
}

export interface Subscription {
  readonly state: ConnectionState;
  /** The id of the last session frame received (what a resume sends as Last-Event-ID). */
  readonly lastEventId: string | undefined;
  /** True once the subscription polls instead of streaming (poll(), or subscribe()'s pollFallback). */
  readonly polling: boolean;
  /** Resolves once the subscription has stopped for good. */
  readonly closed: Promise<CloseReason>;
  close(): void;
}

function pickTransport(options: SubscribeOptions): { transport: Transport; browser: boolean } {
  const EventSourceImpl =
    options.EventSource ?? (globalThis as { EventSource?: EventSourceConstructor }).EventSource;
  const wanted = options.transport ?? 'auto';
  if (wanted === 'eventsource' || (wanted === 'auto' && EventSourceImpl !== undefined)) {
    if (!EventSourceImpl) throw new Error('subscribe: transport "eventsource" needs an EventSource');
    return { transport: eventSourceTransport(EventSourceImpl), browser: true };
  }
  return { transport: fetchTransport, browser: false };
}

/**
 * Follows the latest session of a workflow (optionally one skill) live, reconnecting on its own
 * schedule: exponential backoff with full jitter after failures (reset once a connection was healthy),
 * a short jittered delay after `event: end`, the server's Retry-After when it sends one, and never again
 * after a 204. Each session's versions only increase in what onSession sees.
 */
export function subscribe(options: SubscribeOptions): Subscription {
  const fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
  const { transport, browser } = pickTransport(options);
  const random = options.random ?? Math.random;
  const sleep = options.sleep ?? realSleep;
  const now = options.now ?? Date.now;
  const backoff = {
    baseDelayMs: options.baseDelayMs ?? 500,
    maxDelayMs: options.maxDelayMs ?? 30_000,
    random,
  };
  const endReconnectDelayMs = options.endReconnectDelayMs ?? 250;
  const healthyAfterMs = options.healthyAfterMs ?? 5_000;
  const maxRetryAfterMs = options.maxRetryAfterMs ?? 60_000;
  const url = streamUrl(options.baseUrl, options.projectId, options.workflowId, options.skillId);
  const versions = new SessionVersions();
  const stop = new AbortController();

  let state: ConnectionState = 'connecting';
  let lastEventId: string | undefined;
  let resolveClosed!: (close: CloseReason) => void;
  const closed = new Promise<CloseReason>((resolve) => {
    resolveClosed = resolve;
  });

  const setState = (next: ConnectionState) => {
    if (state === next) return;
    state = next;
    options.onState?.(next);
  };

  const credentials = options.credentials;
  const credentialRefreshable = 'getToken' in credentials || ('apiKey' in credentials && browser);

  /** The credential for one attempt: a browser holding an API key exchanges it for a stream token. */
  async function resolveCredential(): Promise<string> {
    if ('token' in credentials) return credentials.token;
    if ('getToken' in credentials) return credentials.getToken();
    if (!browser) return credentials.apiKey;
    const response = await fetchImpl(streamTokensUrl(options.baseUrl, options.projectId), {
      method: 'POST',
      headers: { Authorization: `Bearer ${credentials.apiKey}`, Accept: 'application/json' },
      signal: stop.signal,
    });
    if (!response.ok) throw await apiErrorFrom(response);
    const body = (await response.json()) as { token?: unknown };
    if (typeof body.token !== 'string') throw new Error('stream token response has no token');
    return body.token;
  }

  /** When the current connection was requested: frames updated before it are its snapshot. */
  let connectingSince = 0;

  function onMessage(id: string | undefined, data: string) {
    let session: Session;
    try {
      session = sessionDtoSchema.parse(JSON.parse(data));
    } catch (error) {
      options.onError?.(new Error(`dropped a malformed session frame (id ${id}): ${String(error)}`));
      return;
    }
    if (!versions.accept(session.session_id, session.version)) return;
    // Only what was accepted: resuming from it lets the gateway skip a snapshot the client already has.
    if (id !== undefined) lastEventId = id;
    const updatedAt = Date.parse(session.updated_at);
    options.onSession(session, {
      latencyMs: now() - updatedAt,
      live: updatedAt >= connectingSince,
      eventId: id,
    });
  }

  async function connectOnce(): Promise<{ outcome: ConnectOutcome; openedAt: number | undefined }> {
    let openedAt: number | undefined;
    connectingSince = now();
    let credential: string;
    try {
      credential = await resolveCredential();
    } catch (error) {
      if (stop.signal.aborted) return { outcome: { kind: 'aborted' }, openedAt };
      const status = (error as { status?: number }).status;
      // A key that cannot mint tokens will not learn to; anything else (network, 5xx) may pass.
      const fatal = status !== undefined && status >= 400 && status < 500 && status !== 429;
      return {
        outcome: fatal ? { kind: 'fatal', error: error as Error } : { kind: 'failed', error },
        openedAt,
      };
    }
    const outcome = await transport({
      url,
      credential,
      credentialRefreshable,
      lastEventId,
      idleTimeoutMs: options.idleTimeoutMs ?? 45_000,
      signal: stop.signal,
      fetch: fetchImpl,
      onOpen: () => {
        openedAt = now();
        setState('open');
      },
      onMessage,
    });
    return { outcome, openedAt };
  }

  // The SSE→polling fallback (poll.ts): same versions, so nothing already delivered shows twice.
  let polling = false;
  const fallback = options.pollFallback;
  const pollInstead = (): Promise<CloseReason> => {
    polling = true;
    return runPollLoop(
      { ...options, ...fallback },
      { versions, signal: stop.signal, setState, onEventId: (id) => (lastEventId = id) },
    );
  };

  async function run(): Promise<CloseReason> {
    let failures = 0;
    for (;;) {
      const { outcome, openedAt } = await connectOnce();
      let delayMs: number;
      switch (outcome.kind) {
        case 'aborted':
          return { reason: 'closed' };
        case 'stop':
          if (fallback) return pollInstead();
          return { reason: 'no_content' };
        case 'fatal':
          return { reason: 'rejected', error: outcome.error };
        case 'end':
          failures = 0;
          delayMs = Math.round(random() * endReconnectDelayMs);
          break;
        case 'dropped':
          if (openedAt !== undefined && now() - openedAt >= healthyAfterMs) failures = 0;
          if (outcome.error !== undefined) options.onError?.(outcome.error);
          delayMs = backoffDelayMs(failures++, backoff);
          break;
        case 'failed':
          options.onError?.(outcome.error);
          // Retry-After lengthens the wait but never shortens it: a `0` or a past date repeated by a
          // server or proxy would otherwise be a tight reconnect loop.
          delayMs = Math.max(
            Math.min(outcome.retryAfterMs ?? 0, maxRetryAfterMs),
            backoffDelayMs(failures, backoff),
          );
          failures++;
          break;
      }
      if (fallback && failures >= (fallback.afterFailures ?? 3)) return pollInstead();
      setState('reconnecting');
      try {
        await sleep(delayMs, stop.signal);
      } catch {
        return { reason: 'closed' };
      }
      if (stop.signal.aborted) return { reason: 'closed' };
    }
  }

  options.onState?.('connecting');
  void run().then((close) => {
    stop.abort();
    setState('closed');
    options.onClose?.(close);
    resolveClosed(close);
  });

  return {
    get state() {
      return state;
    },
    get lastEventId() {
      return lastEventId;
    },
    get polling() {
      return polling;
    },
    closed,
    close() {
      stop.abort();
    },
  };
}
