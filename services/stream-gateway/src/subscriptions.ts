import {
  type BusConnection,
  confirmPublished,
  type SessionMessage,
  subscribeSessions,
} from '@wizard-stream/bus';
import { contextFromTraceHeaders, tracer } from '@wizard-stream/telemetry';
import type { StreamConnection } from './connection.js';
import { SubjectFeed } from './fanout.js';
import { sessionFrame } from './frame.js';
import type { FanoutEvents, GaugeRegistry } from './metrics.js';
import { routeSubject, type StreamRoute } from './stream-subject.js';

type Subscription = Awaited<ReturnType<typeof subscribeSessions>>;

const fanoutTracer = tracer('stream-gateway');
const utf8 = new TextDecoder();

/** How long a connect waits for NATS to confirm its subscription before it snapshots anyway. */
const SUBSCRIBE_CONFIRM_TIMEOUT_MS = 2000;

interface HubLogger {
  warn(object: object, message: string): void;
}

interface Subscribed {
  feed: SubjectFeed;
  subscription: Subscription | undefined;
}

/**
 * Resolves once the server has processed every SUB sent before the call: a PING/PONG round trip (the
 * server handles a connection's commands in order). The bus names that round trip for publishes.
 */
export function confirmSubscriptions(bus: BusConnection, timeoutMs: number): Promise<void> {
  return confirmPublished(bus, timeoutMs);
}

/**
 * One NATS subscription per distinct subject per process, reference counted by its connections; each
 * message becomes one frame offered to the subject's feed.
 */
export class SubscriptionHub {
  private readonly subjects = new Map<string, Subscribed>();
  /** Messages received since the last fan-out turn, per feed, in arrival order. */
  private queued = new Map<SubjectFeed, SessionMessage[]>();
  private flushScheduled = false;

  constructor(
    private readonly bus: BusConnection,
    private readonly events: FanoutEvents & GaugeRegistry,
    private readonly logger: HubLogger,
  ) {
    events.gauge('subscriptions', () => this.subjects.size);
  }

  get size(): number {
    return this.subjects.size;
  }

  *feeds(): IterableIterator<SubjectFeed> {
    for (const { feed } of this.subjects.values()) yield feed;
  }

  /**
   * Adds a connection to its subject's feed, subscribing when it is the first. From this call on the
   * connection receives (holds) every message the subscription gets; await feed.ready before snapshotting.
   */
  attach(route: StreamRoute, connection: StreamConnection): SubjectFeed {
    const subject = routeSubject(route);
    let subscribed = this.subjects.get(subject);
    if (!subscribed) {
      subscribed = { feed: new SubjectFeed(subject, route), subscription: undefined };
      this.subjects.set(subject, subscribed);
      subscribed.feed.ready = this.subscribe(subscribed);
    }
    subscribed.feed.connections.add(connection);
    return subscribed.feed;
  }

  detach(feed: SubjectFeed, connection: StreamConnection): void {
    feed.connections.delete(connection);
    const subscribed = this.subjects.get(feed.subject);
    if (feed.connections.size > 0 || subscribed?.feed !== feed) return;
    this.subjects.delete(feed.subject);
    subscribed.subscription?.unsubscribe();
    subscribed.subscription = undefined;
  }

  /**
   * The NATS callback: queues the message for this turn's fan-out. The NATS client hands over every
   * message of one socket read before the event loop moves on, so a gateway that fell behind finds
   * several updates queued and writes each connection once for all of them (one syscall instead of
   * one per update, which is most of a delivery's cost): it catches up instead of falling further back.
   * A gateway that keeps up finds one message per turn and writes it at once, as before.
   */
  private deliver(feed: SubjectFeed, message: SessionMessage): void {
    let queued = this.queued.get(feed);
    if (!queued) {
      queued = [];
      this.queued.set(feed, queued);
    }
    queued.push(message);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
  }

  /** Builds each queued message's frame once and offers each feed's frames together, oldest first. */
  private readonly flush = (): void => {
    this.flushScheduled = false;
    const batches = this.queued;
    this.queued = new Map();
    for (const [feed, messages] of batches) {
      const spans = messages.map((message) =>
        fanoutTracer.startSpan(
          'wizard.fanout',
          {
            attributes: {
              'messaging.destination.name': message.subject,
              'wizard.version': message.version,
            },
          },
          contextFromTraceHeaders(message.traceparent, message.tracestate),
        ),
      );
      feed.offer(
        messages.map((message) =>
          sessionFrame(message.version, message.sessionId, utf8.decode(message.payload)),
        ),
      );
      for (const span of spans) {
        span.setAttribute('wizard.connections', feed.connections.size);
        span.end();
      }
      for (const message of messages)
        if (message.committedAtMs !== undefined) this.events.onFannedOut(message.committedAtMs);
    }
  };

  private async subscribe(subscribed: Subscribed): Promise<void> {
    const { feed } = subscribed;
    let subscription: Subscription;
    try {
      subscription = await subscribeSessions(
        this.bus,
        feed.subject,
        (message) => this.deliver(feed, message),
        (subject) => this.logger.warn({ subject }, 'nats message without session headers ignored'),
      );
    } catch (error) {
      // A failed feed must not stay in the map, or every later stream on its subject would inherit the failure.
      if (this.subjects.get(feed.subject) === subscribed) this.subjects.delete(feed.subject);
      throw error;
    }
    if (this.subjects.get(feed.subject) !== subscribed) {
      subscription.unsubscribe();
      return;
    }
    subscribed.subscription = subscription;
    // While disconnected the SUB waits in the client's buffer; the reconnect re-snapshot covers that case.
    if (!this.bus.isConnected()) return;
    await confirmSubscriptions(this.bus, SUBSCRIBE_CONFIRM_TIMEOUT_MS).catch((error: Error) =>
      this.logger.warn({ subject: feed.subject, error: error.message }, 'subscription not confirmed in time'),
    );
  }
}
