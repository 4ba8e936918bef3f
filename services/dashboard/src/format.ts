import type { ConnectionState, Session } from '@wizard-stream/client';

/** Human-readable figures for the page; pure so they are testable without a DOM. */

export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return '—';
  const magnitude = Math.abs(ms);
  if (magnitude < 1000) return `${Math.round(ms)} ms`;
  if (magnitude < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  if (magnitude < 3_600_000) return `${Math.floor(ms / 60_000)} min ${Math.floor((ms % 60_000) / 1000)} s`;
  return `${Math.floor(ms / 3_600_000)} h ${Math.floor((ms % 3_600_000) / 60_000)} min`;
}

export function formatAgo(updatedAt: string, now: number): string {
  const at = Date.parse(updatedAt);
  if (Number.isNaN(at)) return '—';
  return `${formatDuration(Math.max(0, now - at))} ago`;
}

/**
 * What the page says about its connection. `polling` is the state of a polling fallback (re-reading the
 * list on a timer while streaming is unavailable); nothing enters it yet, see WorkflowController.refresh.
 */
export type PageConnectionState = ConnectionState | 'polling';

export const CONNECTION_LABELS: Record<PageConnectionState, string> = {
  connecting: 'connecting…',
  open: 'live',
  reconnecting: 'reconnecting…',
  closed: 'disconnected',
  polling: 'polling',
};

export const TASK_STATUS_LABELS: Record<string, string> = {
  pending: 'pending',
  in_progress: 'in progress',
  completed: 'done',
  failed: 'failed',
  canceled: 'canceled',
};

const pad = (value: number) => String(value).padStart(2, '0');

/** `YYYY-MM-DD HH:MM:SS`, in the browser's time zone unless `utc`; the same width on every row. */
export function formatTimestamp(iso: string, { utc = false } = {}): string {
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return '—';
  const [year, month, day, hours, minutes, seconds] = utc
    ? [
        at.getUTCFullYear(),
        at.getUTCMonth() + 1,
        at.getUTCDate(),
        at.getUTCHours(),
        at.getUTCMinutes(),
        at.getUTCSeconds(),
      ]
    : [at.getFullYear(), at.getMonth() + 1, at.getDate(), at.getHours(), at.getMinutes(), at.getSeconds()];
  return `${year}-${pad(month)}-${pad(day)} ${pad(hours)}:${pad(minutes)}:${pad(seconds)}`;
}

export interface SessionErrorParts {
  type: string;
  message: string;
  /** Any other fields the CLI sent, as indented JSON; empty when there are none. */
  details: string;
}

/** A session's error (`{type, message, ...}`, free JSON from the CLI) split into what the page shows. */
export function describeSessionError(error: Record<string, unknown>): SessionErrorParts {
  const { type, message, ...rest } = error;
  const text = (value: unknown) =>
    typeof value === 'string' ? value : value == null ? '' : JSON.stringify(value);
  return {
    type: text(type) || 'Error',
    message: text(message),
    details: Object.keys(rest).length > 0 ? JSON.stringify(rest, null, 2) : '',
  };
}

export interface EventPlanEntry {
  name: string;
  description: string;
}

/**
 * The rows of an event plan. The CLI sends `{events: [{name, description}]}`; the field is free JSON, so
 * anything else returns undefined and the page shows the JSON as it is.
 */
export function eventPlanEntries(plan: Record<string, unknown>): EventPlanEntry[] | undefined {
  const events = plan.events;
  if (!Array.isArray(events)) return undefined;
  const entries: EventPlanEntry[] = [];
  for (const event of events) {
    const { name, description } = (event ?? {}) as { name?: unknown; description?: unknown };
    if (typeof name !== 'string') return undefined;
    entries.push({ name, description: typeof description === 'string' ? description : '' });
  }
  return entries;
}

/**
 * What the page shows of a pending question. A sensitive question's prompts are never shown, even if a
 * server sent them.
 */
export function describePendingInput(input: NonNullable<Session['pending_input']>): {
  summary: string;
  prompts: string[];
} {
  if (input.sensitive) return { summary: 'Input required', prompts: [] };
  const count = input.question_count;
  return { summary: `${count} question${count === 1 ? '' : 's'} waiting`, prompts: input.prompts ?? [] };
}
