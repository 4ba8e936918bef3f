import {
  type BusConnection,
  confirmPublished,
  type SessionMessage,
  subscribeSessions,
} from '@wizard-stream/bus';
import { streamSubject } from '@wizard-stream/contracts';
import { contextFromTraceHeaders, tracer } from '@wizard-stream/telemetry';
import type { StreamConnection } from './connection.js';
import { sessionFrame } from './frame.js';
import type { GatewayMetrics } from './metrics.js';
import type { StreamRoute } from './snapshot.js';

type Subscription = Awaited<ReturnType<typeof subscribeSessions>>;

const fanoutTracer = tracer('stream-gateway');
const utf8 = new TextDecoder();

/** How long a connect waits for NATS to confirm its subscription before it snapshots anyway. */
const SUBSCRIBE_CONFIRM_TIMEOUT_MS = 2000;

interface HubLogger {
  warn(object: object, message: string): void;
}

/** The connections of one subject and the one NATS subscription they share. */
export class SubjectFeed {
  readonly connections = new Set<StreamConnection>();
  subscription: Subscription | undefined;
  /** Resolves once the server has the subscription, so a snapshot taken after it misses nothing. */
  ready: Promise<void> = Promise.resolve();

  constructor(
    readonly subject: string,
    readonly route: StreamRoute,
    private readonly metrics: GatewayMetrics,
  ) {}

  /** The NATS callback: builds the frame once and offers the same bytes to every connection; never blocks. */
  deliver(message: SessionMessage): void {
    const span = fanoutTracer.startSpan(
      'wizard.fanout',
      { attributes: { 'messaging.destination.name': message.subject, 'wizard.version': message.version } },
      contextFromTraceHeaders(message.traceparent, message.tracestate),
    );
    const frame = sessionFrame(message.version, message.sessionId, utf8.decode(message.payload));
    const now = Date.now();
    for (const connection of this.connections) connection.offer(frame, now);
    span.setAttribute('wizard.connections', this.connections.size);
    span.end();
    if (message.committedAtMs !== undefined) {
      this.metrics.commitToWriteSeconds.observe(Math.max(0, Date.now() - message.committedAtMs) / 1000);
    }
  }
}

/** One NATS subscription per distinct subject per process, reference counted by its connections. */
export class SubscriptionHub {
  private readonly feeds = new Map<string, SubjectFeed>();

  constructor(
    private readonly bus: BusConnection,
    private readonly metrics: GatewayMetrics,
    private readonly logger: HubLogger,
  ) {}

  get size(): number {
    return this.feeds.size;
  }

  all(): IterableIterator<SubjectFeed> {
    return this.feeds.values();
  }

  /**
   * Adds a connection to its subject's feed, subscribing when it is the first. From this call on the
   * connection receives (holds) every message the subscription gets; await feed.ready before snapshotting.
   */
  attach(route: StreamRoute, connection: StreamConnection): SubjectFeed {
    const subject = streamSubject(route.teamId, route.workflowId, route.skillId);
    let feed = this.feeds.get(subject);
    if (!feed) {
      feed = new SubjectFeed(subject, route, this.metrics);
      this.feeds.set(subject, feed);
      feed.ready = this.subscribe(feed);
    }
    feed.connections.add(connection);
    return feed;
  }

  detach(feed: SubjectFeed, connection: StreamConnection): void {
    feed.connections.delete(connection);
    if (feed.connections.size > 0 || this.feeds.get(feed.subject) !== feed) return;
    this.feeds.delete(feed.subject);
    feed.subscription?.unsubscribe();
    feed.subscription = undefined;
  }

  private async subscribe(feed: SubjectFeed): Promise<void> {
    let subscription: Subscription;
    try {
      subscription = await subscribeSessions(
        this.bus,
        feed.subject,
        (message) => feed.deliver(message),
        (subject) => this.logger.warn({ subject }, 'nats message without session headers ignored'),
      );
    } catch (error) {
      // A failed feed must not stay in the map, or every later stream on its subject would inherit the failure.
      if (this.feeds.get(feed.subject) === feed) this.feeds.delete(feed.subject);
      throw error;
    }
    if (this.feeds.get(feed.subject) !== feed) {
      subscription.unsubscribe();
      return;
    }
    feed.subscription = subscription;
    // While disconnected the SUB waits in the client's buffer; the reconnect re-snapshot covers that case.
    if (!this.bus.isConnected()) return;
    // A PING/PONG round trip: once it returns, the server has processed the SUB sent before it.
    await confirmPublished(this.bus, SUBSCRIBE_CONFIRM_TIMEOUT_MS).catch((error: Error) =>
      this.logger.warn({ subject: feed.subject, error: error.message }, 'subscription not confirmed in time'),
    );
  }
}
