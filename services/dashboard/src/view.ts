import type { CloseReason, ConnectionState, DeliveryInfo, Session } from '@wizard-stream/client';
import {
  CONNECTION_LABELS,
  describePendingInput,
  formatAgo,
  formatDuration,
  formatSessionError,
  TASK_STATUS_LABELS,
} from './format.js';
import { replacesShownSession } from './latest.js';
import { renderMarkdown } from './markdown.js';

function byTestId<T extends HTMLElement = HTMLElement>(id: string): T {
  const element = document.querySelector<T>(`[data-testid="${id}"]`);
  if (!element) throw new Error(`dashboard markup is missing [data-testid="${id}"]`);
  return element;
}

/**
 * Renders sessions into the static markup. Every value from the server is set as textContent;
 * the sanitised handoff markdown is the only innerHTML.
 */
export class SessionView {
  private session: Session | undefined;
  private renderedHandoff: string | null | undefined;

  showState(state: ConnectionState): void {
    const pill = byTestId('connection-state');
    pill.dataset.state = state;
    pill.textContent = CONNECTION_LABELS[state];
  }

  showNotice(message: string | undefined): void {
    const notice = byTestId('notice');
    notice.hidden = message === undefined;
    notice.textContent = message ?? '';
  }

  showClosed(close: CloseReason): void {
    if (close.reason === 'no_content') this.showNotice('Streaming is switched off on the server (204).');
    if (close.reason === 'rejected') this.showNotice(`The stream was refused: ${close.error.message}`);
  }

  showWaiting(workflowId: string, skillId: string | undefined): void {
    this.session = undefined;
    this.renderedHandoff = undefined;
    byTestId('session').hidden = true;
    this.showNotice(undefined);
    const scope = skillId ? `${workflowId} / ${skillId}` : workflowId;
    byTestId('connection-state').title = `following ${scope}`;
    const waiting = byTestId('waiting');
    waiting.hidden = false;
    waiting.textContent = `Waiting for a session on ${scope}…`;
  }

  showSession(session: Session, delivery: DeliveryInfo): void {
    if (!replacesShownSession(session, this.session)) return;
    this.session = session;
    byTestId('waiting').hidden = true;
    byTestId('session').hidden = false;
    byTestId('session-title').textContent = `${session.workflow_id} / ${session.skill_id}`;
    byTestId('session-id').textContent = session.session_id;
    byTestId('version').textContent = String(session.version);
    const phase = byTestId('run-phase');
    phase.dataset.phase = session.run_phase;
    phase.textContent = session.run_phase;
    // A snapshot's age is no delivery time: the figure shown stays that of the last live update.
    if (delivery.live) byTestId('latency').textContent = formatDuration(delivery.latencyMs);
    this.renderTasks(session);
    this.renderPendingInput(session);
    this.renderError(session);
    this.renderHandoff(session);
    this.tick(Date.now());
  }

  /** Refreshes what depends on the clock: "updated … ago" and staleness. */
  tick(now: number): void {
    if (!this.session) return;
    byTestId('updated-ago').textContent = formatAgo(this.session.updated_at, now);
    byTestId('stale').hidden = !this.session.is_stale;
  }

  private renderTasks(session: Session): void {
    const list = byTestId('tasks');
    list.replaceChildren(
      ...session.tasks.map((task) => {
        const item = document.createElement('li');
        item.dataset.testid = 'task';
        const status = document.createElement('span');
        status.className = 'status';
        status.dataset.status = task.status;
        status.textContent = TASK_STATUS_LABELS[task.status] ?? task.status;
        const title = document.createElement('span');
        title.className = 'title';
        title.textContent = task.title;
        item.append(status, title);
        return item;
      }),
    );
    byTestId('no-tasks').hidden = session.tasks.length > 0;
  }

  private renderPendingInput(session: Session): void {
    const section = byTestId('pending-input');
    const body = byTestId('pending-input-body');
    const input = session.pending_input;
    section.hidden = input === null;
    if (!input) {
      body.replaceChildren();
      return;
    }
    const { summary: summaryText, prompts: promptTexts } = describePendingInput(input);
    const summary = document.createElement('p');
    summary.textContent = summaryText;
    if (promptTexts.length === 0) {
      body.replaceChildren(summary);
      return;
    }
    const prompts = document.createElement('ol');
    for (const prompt of promptTexts) {
      const item = document.createElement('li');
      item.textContent = prompt;
      prompts.append(item);
    }
    body.replaceChildren(summary, prompts);
  }

  private renderError(session: Session): void {
    byTestId('error').hidden = session.error === null;
    byTestId('error-body').textContent = session.error ? formatSessionError(session.error) : '';
  }

  private renderHandoff(session: Session): void {
    byTestId('handoff-section').hidden = !session.handoff_text;
    if (session.handoff_text === this.renderedHandoff) return;
    this.renderedHandoff = session.handoff_text;
    byTestId('handoff').innerHTML = session.handoff_text ? renderMarkdown(session.handoff_text) : '';
  }
}
