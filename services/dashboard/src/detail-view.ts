import type { Session } from '@wizard-stream/client';
import { byTestId, element, setPhaseBadge } from './dom.js';
import {
  describePendingInput,
  describeSessionError,
  eventPlanEntries,
  formatAgo,
  formatDuration,
  formatTimestamp,
  TASK_STATUS_LABELS,
} from './format.js';
import { renderMarkdown } from './markdown.js';

/**
 * The selected session in full. Every value from the server is set as textContent; the sanitised
 * handoff markdown is the only innerHTML.
 */
export class SessionDetailView {
  private session: Session | undefined;
  private renderedHandoff: string | null | undefined;

  clear(): void {
    this.session = undefined;
    this.renderedHandoff = undefined;
    byTestId('session').hidden = true;
  }

  /** Shows a session; `latencyMs` is the delivery time of its last live update, when one was seen. */
  show(session: Session, latencyMs: number | undefined): void {
    this.session = session;
    byTestId('session').hidden = false;
    byTestId('session').dataset.sessionId = session.session_id;
    byTestId('session-title').textContent = `${session.workflow_id} / ${session.skill_id}`;
    setPhaseBadge(byTestId('run-phase'), session.run_phase);
    byTestId('session-id').textContent = session.session_id;
    byTestId('version').textContent = String(session.version);
    byTestId('started-at').textContent = formatTimestamp(session.started_at);
    byTestId('updated-at').textContent = formatTimestamp(session.updated_at);
    byTestId('updated-at').title = session.updated_at;
    byTestId('created-by').textContent = session.created_by?.first_name || '—';
    byTestId('latency').textContent = latencyMs === undefined ? '—' : formatDuration(latencyMs);
    this.renderTasks(session);
    this.renderPendingInput(session);
    this.renderEventPlan(session);
    this.renderError(session);
    this.renderHandoff(session);
    this.tick(Date.now());
  }

  /** Refreshes what depends on the clock ("… ago") and the stale badge. */
  tick(now: number): void {
    if (!this.session) return;
    byTestId('updated-ago').textContent = formatAgo(this.session.updated_at, now);
    byTestId('stale').hidden = !this.session.is_stale;
  }

  private renderTasks(session: Session): void {
    byTestId('tasks').replaceChildren(
      ...session.tasks.map((task) => {
        const item = element('li', { testId: 'task' });
        const status = element('span', {
          className: 'status',
          text: TASK_STATUS_LABELS[task.status] ?? task.status,
        });
        status.dataset.status = task.status;
        item.append(status, element('span', { className: 'title', text: task.title }));
        return item;
      }),
    );
    byTestId('no-tasks').hidden = session.tasks.length > 0;
  }

  private renderPendingInput(session: Session): void {
    const input = session.pending_input;
    byTestId('pending-input').hidden = input === null;
    const body = byTestId('pending-input-body');
    if (!input) {
      body.replaceChildren();
      return;
    }
    const { summary, prompts } = describePendingInput(input);
    const parts: HTMLElement[] = [element('p', { text: summary })];
    if (prompts.length > 0) {
      const list = element('ol');
      list.append(...prompts.map((prompt) => element('li', { text: prompt })));
      parts.push(list);
    }
    body.replaceChildren(...parts);
  }

  private renderEventPlan(session: Session): void {
    const plan = session.event_plan;
    byTestId('event-plan-section').hidden = plan === null;
    const entries = plan ? eventPlanEntries(plan) : undefined;
    const table = byTestId('event-plan');
    const raw = byTestId('event-plan-raw');
    table.hidden = entries === undefined;
    raw.hidden = plan === null || entries !== undefined;
    raw.textContent = plan && !entries ? JSON.stringify(plan, null, 2) : '';
    byTestId('event-plan-rows').replaceChildren(
      ...(entries ?? []).map(({ name, description }) => {
        const row = element('tr', { testId: 'event-plan-row' });
        row.append(
          element('td', { className: 'event-name', text: name }),
          element('td', { text: description }),
        );
        return row;
      }),
    );
  }

  private renderError(session: Session): void {
    byTestId('error').hidden = session.error === null;
    const { type, message, details } = session.error
      ? describeSessionError(session.error)
      : { type: '', message: '', details: '' };
    byTestId('error-type').textContent = type;
    byTestId('error-message').textContent = message;
    byTestId('error-details').hidden = details === '';
    byTestId('error-details').textContent = details;
  }

  private renderHandoff(session: Session): void {
    byTestId('handoff-section').hidden = !session.handoff_text;
    if (session.handoff_text === this.renderedHandoff) return;
    this.renderedHandoff = session.handoff_text;
    byTestId('handoff').innerHTML = session.handoff_text ? renderMarkdown(session.handoff_text) : '';
  }
}
