import { apiErrorBodySchema } from '@wizard-stream/contracts';
import { parseRetryAfterMs } from './backoff.js';
import { WizardApiError } from './errors.js';

export type FetchLike = typeof fetch;

/** Turns a non-2xx response into a WizardApiError, keeping the server's error body when it sent one. */
export async function apiErrorFrom(response: Response): Promise<WizardApiError> {
  const text = await response.text().catch(() => '');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  const body = apiErrorBodySchema.safeParse(parsed);
  const retryAfterMs = parseRetryAfterMs(response.headers.get('retry-after'));
  if (body.success) return new WizardApiError(response.status, body.data, retryAfterMs);
  return new WizardApiError(
    response.status,
    {
      type: 'server_error',
      code: `http_${response.status}`,
      detail: text.slice(0, 500) || response.statusText || `HTTP ${response.status}`,
      attr: null,
    },
    retryAfterMs,
  );
}

/** 5xx, plus 429: worth another attempt. Other 4xx mean the request itself is wrong. */
export function isRetryableStatus(status: number): boolean {
  return status === 429 || status >= 500;
}
