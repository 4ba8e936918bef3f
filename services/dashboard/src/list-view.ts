import type { Session } from '@wizard-stream/client';
import { byTestId, element, setPhaseBadge } from './dom.js';
import { formatTimestamp } from './format.js';
import type { SessionListModel } from './session-list.js';

export interface ListViewEvents {
  onSelect(sessionId: string): void;
  onPage(direction: 'newer' | 'older'): void;
}

interface Row {
  item: HTMLLIElement;
  button: HTMLButtonElement;
  phase: HTMLElement;
  skill: HTMLElement;
  stale: HTMLElement;
  started: HTMLTimeElement;
  id: HTMLElement;
}

/**
 * The workflow's runs, one row per session. Rows are kept by session id and updated in place, so a live
 * update neither rebuilds the list nor takes the keyboard focus off the row a user is on.
 */
export class SessionListView {
  private readonly rows = new Map<string, Row>();
  private readonly list = byTestId<HTMLOListElement>('session-list');

  constructor(private readonly events: ListViewEvents) {
    byTestId('page-newer').addEventListener('click', () => events.onPage('newer'));
    byTestId('page-older').addEventListener('click', () => events.onPage('older'));
  }

  clear(): void {
    this.rows.clear();
    this.list.replaceChildren();
    delete this.list.dataset.loaded;
    byTestId('page-range').textContent = '';
    byTestId('no-sessions').hidden = true;
    byTestId<HTMLButtonElement>('page-newer').disabled = true;
    byTestId<HTMLButtonElement>('page-older').disabled = true;
  }

  /** Marks the list as read from the API at least once since the last clear (tests wait on it). */
  markLoaded(): void {
    this.list.dataset.loaded = 'true';
  }

  render(model: SessionListModel, selectedId: string | undefined): void {
    const sessions = model.rows();
    const wanted = new Set(sessions.map((session) => session.session_id));
    for (const [id, row] of this.rows) {
      if (!wanted.has(id)) {
        row.item.remove();
        this.rows.delete(id);
      }
    }
    const items = sessions.map((session) => {
      const row = this.rows.get(session.session_id) ?? this.createRow(session.session_id);
      this.fill(row, session, session.session_id === selectedId);
      return row.item;
    });
    // Moving a node blurs it: only reorder when the order changed.
    const current = [...this.list.children];
    if (current.length !== items.length || items.some((item, index) => current[index] !== item)) {
      this.list.replaceChildren(...items);
    }
    byTestId('no-sessions').hidden = sessions.length > 0;
    byTestId('page-range').textContent =
      sessions.length === 0
        ? ''
        : `${model.offset + 1}–${model.offset + sessions.length} of ${Math.max(model.count, model.offset + sessions.length)}`;
    byTestId<HTMLButtonElement>('page-newer').disabled = !model.hasNewer;
    byTestId<HTMLButtonElement>('page-older').disabled = !model.hasOlder;
  }

  private createRow(sessionId: string): Row {
    const item = element('li', { testId: 'session-row' });
    item.dataset.sessionId = sessionId;
    const button = element('button', { className: 'row' });
    button.type = 'button';
    button.addEventListener('click', () => this.events.onSelect(sessionId));
    const phase = element('span', { className: 'badge', testId: 'row-phase' });
    const skill = element('span', { className: 'row-skill', testId: 'row-skill' });
    const stale = element('span', { className: 'badge stale', testId: 'row-stale', text: 'stale' });
    const started = element('time', { className: 'row-started', testId: 'row-started' });
    const id = element('span', { className: 'row-id', testId: 'row-id', text: sessionId });
    button.append(phase, skill, stale, started, id);
    item.append(button);
    const row = { item, button, phase, skill, stale, started, id };
    this.rows.set(sessionId, row);
    return row;
  }

  private fill(row: Row, session: Session, selected: boolean): void {
    setPhaseBadge(row.phase, session.run_phase);
    row.skill.textContent = session.skill_id;
    row.stale.hidden = !session.is_stale;
    row.started.dateTime = session.started_at;
    row.started.textContent = formatTimestamp(session.started_at);
    row.item.dataset.version = String(session.version);
    if (selected) row.button.setAttribute('aria-current', 'true');
    else row.button.removeAttribute('aria-current');
  }
}
