import type { BusConnection } from '@wizard-stream/bus';
import { formatRevocation, REVOCATIONS_SUBJECT, type Revocation } from '@wizard-stream/contracts';

/**
 * Tells every gateway to end the streams a revoked key (or a removed member) opened
 * (contracts/revocations.ts). Fire and forget on the bus's buffered connection: the database already
 * refuses the credential, so a lost message only leaves a stream open until its rotation
 * (STREAM_MAX_DURATION_MS). False when there is no NATS connection to hand it to.
 */
export function publishRevocation(
  bus: BusConnection,
  revocation: Omit<Revocation, 'revoked_at'>,
  revokedAt: Date,
): boolean {
  const connection = bus.nats;
  if (!connection || connection.isClosed()) return false;
  connection.publish(REVOCATIONS_SUBJECT, formatRevocation(revocation, revokedAt));
  return true;
}
