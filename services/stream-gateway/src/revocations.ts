import type { BusConnection } from '@wizard-stream/bus';
import { parseRevocation, REVOCATIONS_SUBJECT } from '@wizard-stream/contracts';
import type { StreamRegistry } from './stream-registry.js';

type Subscription = ReturnType<Awaited<ReturnType<BusConnection['ready']>>['subscribe']>;

interface RevocationLogger {
  info(object: object, message: string): void;
  warn(object: object, message: string): void;
}

/**
 * Ends the streams of revoked keys and removed members as write-api announces them on
 * REVOCATIONS_SUBJECT (contracts/revocations.ts), instead of every gateway polling the database. The
 * client re-sends the subscription after a reconnect; a revocation published during an outage is not
 * replayed, and such a stream ends at its rotation (STREAM_MAX_DURATION_MS).
 */
export function subscribeRevocations(
  bus: BusConnection,
  registry: StreamRegistry,
  logger: RevocationLogger,
): () => void {
  let subscription: Subscription | undefined;
  let stopped = false;
  void bus.ready().then(
    (connection) => {
      if (stopped) return;
      subscription = connection.subscribe(REVOCATIONS_SUBJECT, {
        callback: (error, message) => {
          if (error) {
            logger.warn({ err: error }, 'revocation subscription failed');
            return;
          }
          const revocation = parseRevocation(message.string());
          if (!revocation) {
            logger.warn({ subject: message.subject }, 'ignored a malformed revocation');
            return;
          }
          const ended = registry.revoke(revocation);
          logger.info({ revocation, ended }, 'revocation: ended the streams it names');
        },
      });
    },
    () => {},
  );
  return () => {
    stopped = true;
    subscription?.unsubscribe();
  };
}
