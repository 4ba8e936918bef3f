import { type BusConnection, confirmPublished } from '@wizard-stream/bus';
import type { SnapshotClient } from './snapshot.js';
import type { SubjectFeed, SubscriptionHub } from './subscriptions.js';

const CONCURRENT_CALLS = 16;
const ATTEMPTS = 5;
const FIRST_RETRY_MS = 500;

interface ResnapshotLogger {
  info(object: object, message: string): void;
  warn(object: object, message: string): void;
}

/**
 * After a NATS reconnect every active subscription takes a fresh snapshot with the gateway's own
 * credential and offers it to its connections; the per-connection version check drops what they have.
 */
export function resnapshotOnReconnect(
  bus: BusConnection,
  hub: SubscriptionHub,
  snapshots: SnapshotClient,
  internalApiToken: string | undefined,
  logger: ResnapshotLogger,
): () => void {
  return bus.onReconnect(() => {
    if (!internalApiToken) {
      logger.warn(
        {},
        'nats reconnected but INTERNAL_API_TOKEN is unset: open streams are not re-snapshotted',
      );
      return;
    }
    void resnapshotAll(bus, hub, snapshots, internalApiToken, logger);
  });
}

async function resnapshotAll(
  bus: BusConnection,
  hub: SubscriptionHub,
  snapshots: SnapshotClient,
  token: string,
  logger: ResnapshotLogger,
): Promise<void> {
  // The client re-sent its SUBs on reconnect; a snapshot read after the server has them misses nothing.
  await confirmPublished(bus, 5000).catch(() => {});
  const feeds = [...hub.all()];
  logger.info({ subscriptions: feeds.length }, 're-snapshotting after nats reconnect');
  let next = 0;
  const worker = async () => {
    while (next < feeds.length) {
      const feed = feeds[next++] as SubjectFeed;
      await resnapshotFeed(feed, snapshots, token, logger);
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENT_CALLS, feeds.length) }, worker));
}

async function resnapshotFeed(
  feed: SubjectFeed,
  snapshots: SnapshotClient,
  token: string,
  logger: ResnapshotLogger,
): Promise<void> {
  for (let attempt = 1; attempt <= ATTEMPTS && feed.connections.size > 0; attempt++) {
    try {
      const result = await snapshots.fetch(token, feed.route, 'resnapshot');
      if (result.kind === 'session') {
        const now = Date.now();
        for (const connection of feed.connections) connection.offer(result.frame, now);
      } else if (result.kind === 'refused') {
        logger.warn(
          { subject: feed.subject, status: result.status },
          'write-api refused the gateway re-snapshot',
        );
      }
      return;
    } catch (error) {
      logger.warn({ subject: feed.subject, attempt, error: (error as Error).message }, 're-snapshot failed');
      await new Promise((resolve) => setTimeout(resolve, FIRST_RETRY_MS * 2 ** (attempt - 1)));
    }
  }
}
