import {
  latestSessionUrl,
  listSessionsUrl,
  sessionDtoSchema,
  sessionsUrl,
  streamTokensUrl,
  type upsertSessionBodySchema,
} from '@wizard-stream/contracts';
import type { z } from 'zod';
import { backoffDelayMs, realSleep, type Sleep } from './backoff.js';
import { WizardNetworkError } from './errors.js';
import { apiErrorFrom, type FetchLike, isRetryableStatus } from './http.js';

/** What a CLI pushes: the upsert body as written (defaults such as `tasks: []` may be left out). */
export type UpsertSessionInput = z.input<typeof upsertSessionBodySchema>;
/** A session as the API returns it (docs/wire-format.md#the-session-dto). */
export type Session = z.infer<typeof sessionDtoSchema>;

export interface StreamToken {
  token: string;
  expiresAt: Date;
}

/** Which sessions `list` reads: one workflow (optionally one skill), a page of them. */
export interface SessionListFilter {
  workflowId: string;
  skillId?: string;
  /** Sessions to skip, newest first (default 0). */
  offset?: number;
  /** Page size, 1–200 (the server's default is 50). */
  limit?: number;
}

/** One page of the list call: `next` and `previous` are the server's links, null at either end. */
export interface SessionListPage {
  count: number;
  next: string | null;
  previous: string | null;
  results: Session[];
}

export interface PushClientOptions {
  /** Where the API is reached, e.g. `http://127.0.0.1:8080`. */
  baseUrl: string;
  projectId: number;
  /** A personal API key with `wizard_session:write` (and `:read` to mint stream tokens). */
  apiKey: string;
  fetch?: FetchLike;
  /** Attempts per call, the first included (default 5). */
  maxAttempts?: number;
  /** Backoff ceiling for the first retry; doubles per retry (default 200 ms). */
  baseDelayMs?: number;
  /** Upper bound of the backoff ceiling (default 10 s). */
  maxDelayMs?: number;
  /** A server's Retry-After is honoured up to this (default 60 s), so a wrong header cannot hang a CLI. */
  maxRetryAfterMs?: number;
  /** Per-attempt timeout (default 10 s); a timed-out attempt counts as a network error. */
  requestTimeoutMs?: number;
  /** Injected by tests: the jitter source and the wait between attempts. */
  random?: () => number;
  sleep?: Sleep;
}

export interface PushClient {
  /** Creates or updates a session (idempotent by session_id, so retries are safe). */
  upsert(body: UpsertSessionInput, options?: { signal?: AbortSignal }): Promise<Session>;
  /** The workflow's latest session, or null when it has none. */
  latest(workflowId: string, skillId?: string): Promise<Session | null>;
  /** A page of the workflow's sessions, newest `started_at` first. */
  list(filter: SessionListFilter): Promise<SessionListPage>;
  /** A short-lived token a browser's EventSource can pass as `?token=`. */
  mintStreamToken(): Promise<StreamToken>;
}

const streamTokenResponse = (value: unknown): StreamToken => {
  const body = value as { token?: unknown; expires_at?: unknown };
  if (typeof body?.token !== 'string' || typeof body.expires_at !== 'string') {
    throw new Error(`stream token response is malformed: ${JSON.stringify(value).slice(0, 200)}`);
  }
  return { token: body.token, expiresAt: new Date(body.expires_at) };
};

const isLink = (value: unknown): value is string | null => value === null || typeof value === 'string';

const sessionListResponse = (value: unknown): SessionListPage => {
  const body = value as { count?: unknown; next?: unknown; previous?: unknown; results?: unknown };
  if (
    typeof body?.count !== 'number' ||
    !isLink(body.next) ||
    !isLink(body.previous) ||
    !Array.isArray(body.results)
  ) {
    throw new Error(`session list response is malformed: ${JSON.stringify(value).slice(0, 200)}`);
  }
  return {
    count: body.count,
    next: body.next,
    previous: body.previous,
    results: body.results.map((session) => sessionDtoSchema.parse(session)),
  };
};

export function createPushClient(options: PushClientOptions): PushClient {
  const fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
  const maxAttempts = Math.max(1, options.maxAttempts ?? 5);
  const backoff = {
    baseDelayMs: options.baseDelayMs ?? 200,
    maxDelayMs: options.maxDelayMs ?? 10_000,
    random: options.random ?? Math.random,
  };
  const maxRetryAfterMs = options.maxRetryAfterMs ?? 60_000;
  const requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
  const sleep = options.sleep ?? realSleep;
  const authorization = `Bearer ${options.apiKey}`;

  /** One call with retries; resolves with the successful response. */
  async function request(
    url: string,
    init: { method: string; body?: string },
    signal?: AbortSignal,
  ): Promise<Response> {
    let lastNetworkError: unknown;
    for (let attempt = 1; ; attempt++) {
      let response: Response | undefined;
      try {
        const timeout = AbortSignal.timeout(requestTimeoutMs);
        response = await fetchImpl(url, {
          method: init.method,
          body: init.body,
          headers: {
            Authorization: authorization,
            Accept: 'application/json',
            ...(init.body === undefined ? {} : { 'Content-Type': 'application/json' }),
          },
          signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
        });
      } catch (error) {
        if (signal?.aborted) throw error;
        lastNetworkError = error;
      }

      let waitMs = backoffDelayMs(attempt - 1, backoff);
      if (response) {
        if (response.ok) return response;
        const apiError = await apiErrorFrom(response);
        if (!isRetryableStatus(response.status) || attempt >= maxAttempts) throw apiError;
        if (apiError.retryAfterMs !== undefined) waitMs = Math.min(apiError.retryAfterMs, maxRetryAfterMs);
      } else if (attempt >= maxAttempts) {
        throw new WizardNetworkError(
          `${init.method} ${url} failed after ${attempt} attempts: ${String(lastNetworkError)}`,
          attempt,
          { cause: lastNetworkError },
        );
      }
      await sleep(waitMs, signal);
    }
  }

  return {
    async upsert(body, { signal } = {}) {
      const response = await request(
        sessionsUrl(options.baseUrl, options.projectId),
        { method: 'POST', body: JSON.stringify(body) },
        signal,
      );
      return sessionDtoSchema.parse(await response.json());
    },
    async latest(workflowId, skillId) {
      const response = await request(
        latestSessionUrl(options.baseUrl, options.projectId, workflowId, skillId),
        { method: 'GET' },
      );
      if (response.status === 204) return null;
      return sessionDtoSchema.parse(await response.json());
    },
    async list({ workflowId, skillId, offset, limit }) {
      const url = new URL(
        listSessionsUrl(options.baseUrl, options.projectId, { workflowId, skillId, limit }),
      );
      if (offset !== undefined) url.searchParams.set('offset', String(offset));
      const response = await request(url.toString(), { method: 'GET' });
      return sessionListResponse(await response.json());
    },
    async mintStreamToken() {
      const response = await request(streamTokensUrl(options.baseUrl, options.projectId), { method: 'POST' });
      return streamTokenResponse(await response.json());
    },
  };
}
