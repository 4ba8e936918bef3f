import type { Session, SessionListPage } from '@wizard-stream/client';

/** The list API's order (docs/api.md): later `started_at` first, then later `created_at`. */
export function compareNewestFirst(a: Session, b: Session): number {
  const started = Date.parse(b.started_at) - Date.parse(a.started_at);
  if (started !== 0) return started;
  return Date.parse(b.created_at) - Date.parse(a.created_at);
}

/** What a stream frame did to the page. */
export type FrameEffect =
  /** A row on the page changed. */
  | 'updated'
  /** A session new to the page took its place on the first page. */
  | 'inserted'
  /** A newer version of a session that is not on this page (the detail may still show it). */
  | 'outside'
  /** A version no newer than the one held: dropped. */
  | 'stale-version';

/**
 * One page of a workflow's sessions, kept current by the workflow stream. Every session is held by id at
 * its highest version, so a list response and a frame may arrive in either order and the newer one wins.
 */
export class SessionListModel {
  private readonly known = new Map<string, Session>();
  private ids: string[] = [];
  offset = 0;
  count = 0;
  hasOlder = false;
  hasNewer = false;

  constructor(readonly limit: number) {}

  get(sessionId: string): Session | undefined {
    return this.known.get(sessionId);
  }

  /** The page's sessions, newest first. */
  rows(): Session[] {
    return this.ids.map((id) => this.known.get(id)).filter((session) => session !== undefined);
  }

  /** Replaces the page with a list response read at `offset`. */
  applyPage(page: SessionListPage, offset: number): void {
    for (const session of page.results) this.remember(session);
    this.offset = offset;
    this.count = page.count;
    this.hasOlder = page.next !== null;
    this.hasNewer = page.previous !== null;
    this.ids = page.results.map((session) => session.session_id);
    this.sort();
  }

  /**
   * A frame from the stream. A session the page does not hold is a new run when it sorts into the first
   * page; on a later page, or below a full first page, it is left to the next list read (whose count is
   * then exact again).
   */
  applySession(session: Session): FrameEffect {
    if (!this.remember(session)) return 'stale-version';
    if (this.ids.includes(session.session_id)) {
      this.sort();
      return 'updated';
    }
    if (this.offset !== 0) return 'outside';
    const last = this.rows().at(-1);
    if (this.ids.length >= this.limit && last && compareNewestFirst(session, last) > 0) return 'outside';
    this.ids.push(session.session_id);
    this.sort();
    this.count += 1;
    if (this.ids.length > this.limit) {
      this.ids.length = this.limit;
      this.hasOlder = true;
    }
    return 'inserted';
  }

  /**
   * The session to show when the user has not picked one: the newest running session that is not
   * stale (the run someone is watching), else the newest session. Only the first page holds the newest.
   */
  defaultSelection(): Session | undefined {
    if (this.offset !== 0) return undefined;
    const rows = this.rows();
    return rows.find((session) => session.run_phase === 'running' && !session.is_stale) ?? rows[0];
  }

  private remember(session: Session): boolean {
    const held = this.known.get(session.session_id);
    if (held && held.version >= session.version) return false;
    this.known.set(session.session_id, session);
    return true;
  }

  private sort(): void {
    const rows = this.rows().sort(compareNewestFirst);
    this.ids = rows.map((session) => session.session_id);
  }
}
