/**
 * `X-Wizard-Poll-Source` becomes a metric label, so only known values pass; anything else is `other`,
 * and a call without the header (a gateway's snapshot, a script) is `none`. `detector` and `transport`
 * are PostHog's web app's pollers, `sdk` is packages/client's polling transport.
 */
export const POLL_SOURCE_HEADER = 'x-wizard-poll-source';
const KNOWN_POLL_SOURCES = new Set(['sdk', 'transport', 'detector', 'dashboard']);

export type PollResult = 'hit' | 'not_modified' | 'empty' | 'killswitch';

export function pollSourceLabel(header: string | string[] | undefined): string {
  if (header === undefined) return 'none';
  const value = Array.isArray(header) ? header[0] : header;
  return value !== undefined && KNOWN_POLL_SOURCES.has(value) ? value : 'other';
}
