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

export const CONNECTION_LABELS: Record<ConnectionState, string> = {
  connecting: 'connecting…',
  open: 'live',
  reconnecting: 'reconnecting…',
  closed: 'disconnected',
};

export const TASK_STATUS_LABELS: Record<string, string> = {
  pending: 'pending',
  in_progress: 'in progress',
  completed: 'done',
  failed: 'failed',
  canceled: 'canceled',
};

/** An error object from the CLI as one readable block: "type: message" plus any other fields. */
export function formatSessionError(error: Record<string, unknown>): string {
  const { type, message, ...rest } = error;
  const head = [type, message].filter((part) => typeof part === 'string' && part !== '').join(': ');
  const tail = Object.keys(rest).length > 0 ? JSON.stringify(rest, null, 2) : '';
  return [head, tail].filter(Boolean).join('\n') || JSON.stringify(error);
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
