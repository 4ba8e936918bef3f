import type { BusConnection, ReconnectInfo } from '@wizard-stream/bus';
import type { SubjectFeed } from './fanout.js';
import type { SnapshotClient } from './snapshot.js';
import { confirmSubscriptions, type SubscriptionHub } from './subscriptions.js';

const CONCURRENT_CALLS = 16;
const ATTEMPTS = 5;
const FIRST_RETRY_MS = 500;
/** Sessions per route looked at after an outage: the newest by start, as the list call orders them. */
const RECENT_SESSIONS = 50;
/**
 * How far before the noticed disconnect changes count as possibly missed: a connection can die some
 * time before the client notices (a dead route, a server that stopped answering pings).
 */
const DISCONNECT_LOOKBACK_MS = 30_000;

interface ResnapshotLogger {
  info(object: object, message: string): void;
  warn(object: object, message: string): void;
}

/**
 * After a NATS reconnect every active subscription re-reads, with the gateway's own credential on
 * write-api's internal listener (WRITE_API_INTERNAL_URL; the token works nowhere else), the
 * sessions of its route that changed while the connection was down, and offers them to its feed; the
 * per-connection version check drops what they already have.
 */
export function resnapshotOnReconnect(
  bus: BusConnection,
  hub: SubscriptionHub,
  snapshots: SnapshotClient,
  internalApiToken: string | undefined,
  logger: ResnapshotLogger,
): () => void {
  return bus.onReconnect((info: ReconnectInfo) => {
    if (!internalApiToken || !snapshots.hasInternalListener) {
      logger.warn(
        {},
        'nats reconnected but INTERNAL_API_TOKEN or WRITE_API_INTERNAL_URL is unset: open streams are not re-snapshotted',
      );
      return;
    }
    const since = (info.disconnectedAt ?? 0) - DISCONNECT_LOOKBACK_MS;
    void resnapshotAll(bus, hub, snapshots, internalApiToken, since, logger);
  });
}

async function resnapshotAll(
  bus: BusConnection,
  hub: SubscriptionHub,
  snapshots: SnapshotClient,
  token: string,
  since: number,
  logger: ResnapshotLogger,
): Promise<void> {
  // The client re-sent its SUBs on reconnect; a snapshot read after the server has them misses nothing.
  await confirmSubscriptions(bus, 5000).catch(() => {});
  const feeds = [...hub.feeds()];
  logger.info({ subscriptions: feeds.length }, 're-snapshotting after nats reconnect');
  let next = 0;
  const worker = async () => {
    while (next < feeds.length) {
      const feed = feeds[next++] as SubjectFeed;
      await resnapshotFeed(feed, snapshots, token, since, logger);
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENT_CALLS, feeds.length) }, worker));
}

async function resnapshotFeed(
  feed: SubjectFeed,
  snapshots: SnapshotClient,
  token: string,
  since: number,
  logger: ResnapshotLogger,
): Promise<void> {
  for (let attempt = 1; attempt <= ATTEMPTS && feed.connections.size > 0; attempt++) {
    try {
      feed.offer(await snapshots.recent(token, feed.route, since, RECENT_SESSIONS));
      return;
    } catch (error) {
      logger.warn({ subject: feed.subject, attempt, error: (error as Error).message }, 're-snapshot failed');
      await new Promise((resolve) => setTimeout(resolve, FIRST_RETRY_MS * 2 ** (attempt - 1)));
    }
  }
}
