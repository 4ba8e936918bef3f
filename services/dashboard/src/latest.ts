import type { Session } from '@wizard-stream/client';

/**
 * Whether a frame replaces the session on screen. A workflow's stream carries every session on it (an
 * older run's staleness transition included), but the page follows the latest one, in the order of the
 * API's `latest` call: later `started_at`, then later `created_at`.
 */
export function replacesShownSession(candidate: Session, shown: Session | undefined): boolean {
  if (!shown || candidate.session_id === shown.session_id) return true;
  const started = Date.parse(candidate.started_at) - Date.parse(shown.started_at);
  if (started !== 0) return started > 0;
  return Date.parse(candidate.created_at) >= Date.parse(shown.created_at);
}
