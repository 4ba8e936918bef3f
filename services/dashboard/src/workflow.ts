import {
  createPushClient,
  type DeliveryInfo,
  type PushClient,
  type Session,
  type Subscription,
  subscribe,
} from '@wizard-stream/client';
import type { SessionDetailView } from './detail-view.js';
import { byTestId } from './dom.js';
import type { SessionListView } from './list-view.js';
import { compareNewestFirst, SessionListModel } from './session-list.js';
import type { ConnectSettings } from './settings.js';
import type { StatusView } from './status-view.js';

/** Failed stream attempts in a row before the page polls instead (SSE blocked on the way). */
const POLL_AFTER_FAILURES = 3;

export const PAGE_SIZE = 20;

interface Views {
  status: StatusView;
  list: SessionListView;
  detail: SessionDetailView;
}

interface Connection {
  push: PushClient;
  workflowId: string;
  skillId: string | undefined;
  subscription: Subscription;
}

/**
 * Follows one workflow: its sessions a page at a time through the list API, kept live by the workflow's
 * stream, and the selected session in detail. Until the user picks a row, the selection follows the
 * newest running session (a run started later takes over).
 */
export class WorkflowController {
  private connection: Connection | undefined;
  /** Bumped on every connect: a replaced connection's late answers and its own close must not show. */
  private generation = 0;
  private pageRequest = 0;
  private model = new SessionListModel(PAGE_SIZE);
  private selectedId: string | undefined;
  private pinned = false;
  private shownInDetail: Session | undefined;
  /** Per session, the delivery time of its last live update. */
  private readonly latencyMs = new Map<string, number>();

  constructor(private readonly views: Views) {}

  connect(settings: ConnectSettings): void {
    this.connection?.subscription.close();
    const generation = ++this.generation;
    const isCurrent = () => generation === this.generation;
    const projectId = Number(settings.projectId);
    const baseUrl = window.location.origin;
    const skillId = settings.skillId || undefined;
    const push = createPushClient({ baseUrl, projectId, apiKey: settings.apiKey, maxAttempts: 3 });

    this.model = new SessionListModel(PAGE_SIZE);
    this.selectedId = undefined;
    this.pinned = false;
    this.shownInDetail = undefined;
    this.latencyMs.clear();
    this.views.list.clear();
    this.views.detail.clear();
    this.views.status.showNotice(undefined);
    this.views.status.showScope(settings.workflowId, skillId);
    byTestId('workspace').hidden = false;

    // Where SSE cannot pass (a proxy that blocks it), the page polls `latest/` instead: PostHog's rules.
    let polling = () => false;
    const subscription = subscribe({
      baseUrl,
      projectId,
      workflowId: settings.workflowId,
      ...(skillId ? { skillId } : {}),
      // A fresh stream token on every (re)connect, so an expired one never strands the page.
      credentials: { getToken: async () => (await push.mintStreamToken()).token },
      onSession: (session, delivery) => {
        if (!isCurrent()) return;
        this.onFrame(session, delivery);
        // Polling follows only the latest session: the rest of the page is read again with it.
        if (polling()) void this.refresh();
      },
      pollFallback: { afterFailures: POLL_AFTER_FAILURES },
      onState: (state) => {
        if (!isCurrent()) return;
        this.views.status.showState(polling() && state === 'open' ? 'polling' : state);
        if (state === 'open') void this.refresh();
      },
      onClose: (close) => {
        if (isCurrent()) this.views.status.showClosed(close);
      },
    });
    polling = () => subscription.polling;
    this.connection = { push, workflowId: settings.workflowId, skillId, subscription };
    // Read at once, so the list shows even when streaming does not come up; again once the stream is open.
    void this.loadPage(0);
  }

  /**
   * Re-reads the page on screen. The stream carries changes from the moment it opens (plus the latest
   * session), so this runs on every open: a read made after the stream opened misses nothing. When the
   * subscription falls back to polling, `open` means its first poll answered.
   */
  refresh(): Promise<void> {
    return this.loadPage(this.model.offset);
  }

  /** A row the user picked: it stays selected, whatever starts later. */
  select(sessionId: string): void {
    this.pinned = true;
    this.selectedId = sessionId;
    this.render();
    // Stacked layout (narrow screens): the detail is below the list, bring it into view.
    if (window.matchMedia('(max-width: 899px)').matches) {
      byTestId('session').scrollIntoView({ block: 'start' });
    }
  }

  page(direction: 'newer' | 'older'): void {
    const step = direction === 'older' ? PAGE_SIZE : -PAGE_SIZE;
    void this.loadPage(Math.max(0, this.model.offset + step));
  }

  private async loadPage(offset: number): Promise<void> {
    const connection = this.connection;
    if (!connection) return;
    const generation = this.generation;
    const request = ++this.pageRequest;
    const isCurrent = () => generation === this.generation && request === this.pageRequest;
    try {
      const page = await connection.push.list({
        workflowId: connection.workflowId,
        ...(connection.skillId ? { skillId: connection.skillId } : {}),
        offset,
        limit: PAGE_SIZE,
      });
      if (!isCurrent()) return;
      this.model.applyPage(page, offset);
      this.views.status.showNotice(undefined);
      this.followDefault();
      this.render();
      this.views.list.markLoaded();
    } catch (error) {
      if (isCurrent())
        this.views.status.showNotice(`Could not read the sessions: ${(error as Error).message}`);
    }
  }

  private onFrame(session: Session, delivery: DeliveryInfo): void {
    const effect = this.model.applySession(session);
    if (effect === 'stale-version') return;
    if (delivery.live) this.latencyMs.set(session.session_id, delivery.latencyMs);
    if (effect === 'inserted') this.followDefault();
    this.render();
  }

  /** Unless the user picked a row: select the default when nothing is, or when a newer run took over. */
  private followDefault(): void {
    if (this.pinned) return;
    const candidate = this.model.defaultSelection();
    if (!candidate) return;
    const selected = this.selectedId === undefined ? undefined : this.model.get(this.selectedId);
    if (!selected || compareNewestFirst(candidate, selected) < 0) this.selectedId = candidate.session_id;
  }

  private render(): void {
    this.views.list.render(this.model, this.selectedId);
    const selected = this.selectedId === undefined ? undefined : this.model.get(this.selectedId);
    if (selected === this.shownInDetail) return;
    this.shownInDetail = selected;
    if (selected) this.views.detail.show(selected, this.latencyMs.get(selected.session_id));
    else this.views.detail.clear();
  }

  tick(now: number): void {
    this.views.detail.tick(now);
  }
}
