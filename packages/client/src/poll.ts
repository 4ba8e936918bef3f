import { latestSessionUrl, sessionDtoSchema } from '@wizard-stream/contracts';
import { parseRetryAfterMs, realSleep, type Sleep } from './backoff.js';
import { apiErrorFrom } from './http.js';
import type { Session } from './push-client.js';
import { SessionVersions } from './session-versions.js';
import type {
  CloseReason,
  ConnectionState,
  DeliveryInfo,
  StreamCredentials,
  SubscribeOptions,
  Subscription,
} from './subscribe.js';

/**
 * Polling `…/latest/` with PostHog's rules, for where SSE cannot pass (proxies that buffer, corporate
 * networks, a killswitched stream): every `intervalMs` (default 3 s, clamped to 1–300 s) ±20 % jitter;
 * 60 s after a failure and after 5 answers in a row that brought nothing new; never again after
 * 401/403/404/410. Each poll sends the last ETag, so an unchanged session costs write-api a 304.
 */
export interface PollTuning {
  /** Default 3000; clamped to [1000, 300000]. */
  intervalMs?: number;
  /** The interval after a failure or `unchangedBeforeBackoff` unchanged answers (default 60000). */
  backoffIntervalMs?: number;
  /** Default 5. */
  unchangedBeforeBackoff?: number;
  /** `X-Wizard-Poll-Source`, counted by write-api's metrics (default `sdk`). */
  pollSource?: string;
}

export type PollOptions = Pick<
  SubscribeOptions,
  | 'baseUrl'
  | 'projectId'
  | 'workflowId'
  | 'skillId'
  | 'credentials'
  | 'onSession'
  | 'onState'
  | 'onError'
  | 'onClose'
  | 'fetch'
  | 'random'
  | 'sleep'
  | 'now'
> &
  PollTuning;

export const POLL_DEFAULTS = {
  intervalMs: 3000,
  minIntervalMs: 1000,
  maxIntervalMs: 300_000,
  backoffIntervalMs: 60_000,
  unchangedBeforeBackoff: 5,
  jitter: 0.2,
  pollSource: 'sdk',
} as const;

/** Statuses that mean the poller has no business asking again (PostHog's list), plus any other 4xx but 429. */
const STOP_STATUSES = new Set([401, 403, 404, 410]);

export function clampPollInterval(intervalMs: number | undefined): number {
  const wanted = intervalMs ?? POLL_DEFAULTS.intervalMs;
  return Math.min(POLL_DEFAULTS.maxIntervalMs, Math.max(POLL_DEFAULTS.minIntervalMs, wanted));
}

/** The wait before the next poll: the interval, or the backoff interval, ±20 % uniform jitter. */
export function nextPollDelayMs(
  state: { failures: number; unchanged: number },
  tuning: Required<Pick<PollTuning, 'intervalMs' | 'backoffIntervalMs' | 'unchangedBeforeBackoff'>>,
  random: () => number,
): number {
  const backingOff = state.failures > 0 || state.unchanged >= tuning.unchangedBeforeBackoff;
  const base = backingOff ? Math.max(tuning.intervalMs, tuning.backoffIntervalMs) : tuning.intervalMs;
  return Math.round(base * (1 - POLL_DEFAULTS.jitter + 2 * POLL_DEFAULTS.jitter * random()));
}

export interface PollLoopContext {
  versions: SessionVersions;
  signal: AbortSignal;
  setState(state: ConnectionState): void;
  /** Called with the id of every session accepted (`<version>:<session_id>`, as SSE's). */
  onEventId(id: string): void;
}

/** The loop itself, shared by poll() and subscribe()'s fallback; resolves once polling stops for good. */
export async function runPollLoop(options: PollOptions, context: PollLoopContext): Promise<CloseReason> {
  const fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
  const random = options.random ?? Math.random;
  const sleep: Sleep = options.sleep ?? realSleep;
  const now = options.now ?? Date.now;
  const tuning = {
    intervalMs: clampPollInterval(options.intervalMs),
    backoffIntervalMs: options.backoffIntervalMs ?? POLL_DEFAULTS.backoffIntervalMs,
    unchangedBeforeBackoff: options.unchangedBeforeBackoff ?? POLL_DEFAULTS.unchangedBeforeBackoff,
  };
  const url = latestSessionUrl(options.baseUrl, options.projectId, options.workflowId, options.skillId);
  const credentials: StreamCredentials = options.credentials;
  const since = now();
  let credential: string | undefined;
  let etag: string | undefined;
  const state = { failures: 0, unchanged: 0 };

  const resolveCredential = async (fresh: boolean): Promise<string> => {
    if ('token' in credentials) return credentials.token;
    if ('apiKey' in credentials) return credentials.apiKey;
    if (fresh || credential === undefined) credential = await credentials.getToken();
    return credential;
  };

  const pollOnce = async (): Promise<
    | { kind: 'changed' | 'unchanged' }
    | { kind: 'failed'; retryAfterMs?: number }
    | { kind: 'stop'; error: Error }
  > => {
    let refreshed = false;
    for (;;) {
      const headers: Record<string, string> = {
        Authorization: `Bearer ${await resolveCredential(false)}`,
        Accept: 'application/json',
        'X-Wizard-Poll-Source': options.pollSource ?? POLL_DEFAULTS.pollSource,
      };
      if (etag !== undefined) headers['If-None-Match'] = etag;
      const response = await fetchImpl(url, { headers, signal: context.signal });
      if (response.status === 304 || response.status === 204) {
        await response.body?.cancel();
        return { kind: 'unchanged' };
      }
      if (response.status === 200) {
        etag = response.headers.get('etag') ?? undefined;
        const session: Session = sessionDtoSchema.parse(await response.json());
        if (!context.versions.accept(session.session_id, session.version)) return { kind: 'unchanged' };
        context.onEventId(`${session.version}:${session.session_id}`);
        const updatedAt = Date.parse(session.updated_at);
        const info: DeliveryInfo = {
          latencyMs: now() - updatedAt,
          live: updatedAt >= since,
          eventId: `${session.version}:${session.session_id}`,
        };
        options.onSession(session, info);
        return { kind: 'changed' };
      }
      const error = await apiErrorFrom(response);
      // An expired stream token from getToken is cured by a fresh one; anything else is final.
      if (response.status === 401 && 'getToken' in credentials && !refreshed) {
        refreshed = true;
        await resolveCredential(true);
        continue;
      }
      if (STOP_STATUSES.has(response.status) || (response.status < 500 && response.status !== 429)) {
        return { kind: 'stop', error };
      }
      options.onError?.(error);
      return { kind: 'failed', retryAfterMs: parseRetryAfterMs(response.headers.get('retry-after')) };
    }
  };

  for (;;) {
    let retryAfterMs = 0;
    try {
      const outcome = await pollOnce();
      if (outcome.kind === 'stop') return { reason: 'rejected', error: outcome.error };
      if (outcome.kind === 'failed') {
        state.failures += 1;
        retryAfterMs = Math.min(outcome.retryAfterMs ?? 0, POLL_DEFAULTS.maxIntervalMs);
        context.setState('reconnecting');
      } else {
        state.failures = 0;
        state.unchanged = outcome.kind === 'unchanged' ? state.unchanged + 1 : 0;
        context.setState('open');
      }
    } catch (error) {
      if (context.signal.aborted) return { reason: 'closed' };
      // No answer, or an answer that is not a session: retried like a 5xx.
      options.onError?.(error);
      state.failures += 1;
      context.setState('reconnecting');
    }
    try {
      await sleep(Math.max(retryAfterMs, nextPollDelayMs(state, tuning, random)), context.signal);
    } catch {
      return { reason: 'closed' };
    }
    if (context.signal.aborted) return { reason: 'closed' };
  }
}

/**
 * Follows the latest session of a workflow by polling instead of SSE; the same callbacks and
 * Subscription as subscribe(). subscribe() switches to it on its own with `pollFallback`.
 */
export function poll(options: PollOptions): Subscription {
  const stop = new AbortController();
  let state: ConnectionState = 'connecting';
  let lastEventId: string | undefined;
  const setState = (next: ConnectionState) => {
    if (state === next) return;
    state = next;
    options.onState?.(next);
  };
  options.onState?.('connecting');
  const closed = runPollLoop(options, {
    versions: new SessionVersions(),
    signal: stop.signal,
    setState,
    onEventId: (id) => {
      lastEventId = id;
    },
  }).then((close) => {
    stop.abort();
    setState('closed');
    options.onClose?.(close);
    return close;
  });
  return {
    get state() {
      return state;
    },
    get lastEventId() {
      return lastEventId;
    },
    polling: true,
    closed,
    close() {
      stop.abort();
    },
  };
}
