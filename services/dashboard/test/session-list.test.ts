import type { Session, SessionListPage } from '@wizard-stream/client';
import { describe, expect, it } from 'vitest';
import { compareNewestFirst, SessionListModel } from '../src/index.js';

const minute = 60_000;
const at = (minutes: number) => new Date(Date.parse('2026-01-01T12:00:00Z') + minutes * minute).toISOString();

function session(id: string, startedMinute: number, overrides: Partial<Session> = {}): Session {
  return {
    session_id: id,
    team_id: 1,
    workflow_id: 'wf',
    skill_id: 'setup',
    started_at: at(startedMinute),
    run_phase: 'completed',
    tasks: [],
    event_plan: null,
    error: null,
    pending_input: null,
    handoff_text: null,
    created_by: null,
    created_at: at(startedMinute),
    updated_at: at(startedMinute + 1),
    is_stale: false,
    version: 1,
    ...overrides,
  };
}

function page(results: Session[], count: number, { next = false, previous = false } = {}): SessionListPage {
  return { count, next: next ? 'next-link' : null, previous: previous ? 'previous-link' : null, results };
}

const ids = (model: SessionListModel) => model.rows().map((row) => row.session_id);

describe('the list model', () => {
  it('orders as the API does: later start first, then later creation', () => {
    const early = session('early', 0);
    const late = session('late', 10);
    const twin = { ...session('twin', 0), created_at: at(5) };
    expect([early, twin, late].sort(compareNewestFirst).map((row) => row.session_id)).toEqual([
      'late',
      'twin',
      'early',
    ]);
  });

  it('keeps the newer of a listed and a streamed copy, whichever arrives first', () => {
    const model = new SessionListModel(10);
    expect(model.applySession(session('a', 0, { version: 3, run_phase: 'error' }))).toBe('inserted');
    model.applyPage(page([session('a', 0, { version: 2 })], 1), 0);
    expect(model.get('a')?.version).toBe(3);
    expect(model.rows()[0]?.run_phase).toBe('error');
    expect(model.applySession(session('a', 0, { version: 3 }))).toBe('stale-version');
    expect(model.applySession(session('a', 0, { version: 4, run_phase: 'completed' }))).toBe('updated');
    expect(model.rows()[0]?.run_phase).toBe('completed');
  });

  it('puts a new run at the top of a full first page and pushes the oldest row to the next page', () => {
    const model = new SessionListModel(2);
    model.applyPage(page([session('b', 20), session('a', 10)], 2), 0);
    expect(model.hasOlder).toBe(false);
    expect(model.applySession(session('c', 30))).toBe('inserted');
    expect(ids(model)).toEqual(['c', 'b']);
    expect(model.count).toBe(3);
    expect(model.hasOlder).toBe(true);
    // Older than every row of a full page: it belongs to a later page, which the next read shows.
    expect(model.applySession(session('old', 0))).toBe('outside');
    expect(ids(model)).toEqual(['c', 'b']);
  });

  it('only updates the rows it holds on a later page, but still keeps the newest copy of others', () => {
    const model = new SessionListModel(2);
    model.applyPage(page([session('b', 20), session('a', 10)], 4, { previous: true }), 2);
    expect(model.applySession(session('new', 30))).toBe('outside');
    expect(ids(model)).toEqual(['b', 'a']);
    expect(model.get('new')?.session_id).toBe('new');
    expect(model.applySession(session('a', 10, { version: 2, is_stale: true }))).toBe('updated');
    expect(model.rows()[1]?.is_stale).toBe(true);
    expect(model.hasNewer).toBe(true);
  });

  it('selects the newest running session that is not stale, else the newest', () => {
    const model = new SessionListModel(10);
    model.applyPage(
      page(
        [
          session('done', 40),
          session('abandoned', 30, { run_phase: 'running', is_stale: true }),
          session('live', 20, { run_phase: 'running' }),
          session('older-live', 10, { run_phase: 'running' }),
        ],
        4,
      ),
      0,
    );
    expect(model.defaultSelection()?.session_id).toBe('live');
    const finished = new SessionListModel(10);
    finished.applyPage(page([session('done', 40), session('failed', 30, { run_phase: 'error' })], 2), 0);
    expect(finished.defaultSelection()?.session_id).toBe('done');
    const later = new SessionListModel(10);
    later.applyPage(page([session('live', 20, { run_phase: 'running' })], 11, { previous: true }), 10);
    expect(later.defaultSelection()).toBeUndefined();
  });
});
