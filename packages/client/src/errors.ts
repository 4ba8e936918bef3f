import type { ApiErrorBody } from '@wizard-stream/contracts';

/**
 * A 4xx (or a 5xx once retries are exhausted) from the API, carrying the server's error body so
 * callers can branch on `code` and show `detail`.
 */
export class WizardApiError extends Error {
  readonly status: number;
  readonly type: string;
  readonly code: string;
  readonly detail: string;
  readonly attr: string | null;
  /** How long the server asked the caller to wait (429/503), when it said so. */
  readonly retryAfterMs: number | undefined;

  constructor(status: number, body: ApiErrorBody, retryAfterMs?: number) {
    super(`wizard-stream API answered ${status} ${body.code}: ${body.detail}`);
    this.name = 'WizardApiError';
    this.status = status;
    this.type = body.type;
    this.code = body.code;
    this.detail = body.detail;
    this.attr = body.attr;
    this.retryAfterMs = retryAfterMs;
  }
}

/** The request never got an HTTP answer (refused, reset, timed out) after every attempt. */
export class WizardNetworkError extends Error {
  constructor(
    message: string,
    readonly attempts: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'WizardNetworkError';
  }
}
