import { headers as natsHeaders } from '@nats-io/transport-node';
import { NATS_HEADERS } from '@wizard-stream/contracts';
import type { BusConnection } from './connection.js';

export interface SessionPublication {
  subject: string;
  /** The serialized DTO: the payload is exactly these bytes. */
  payload: string;
  sessionId: string;
  version: number;
  committedAtMs: number;
  traceparent?: string | undefined;
  tracestate?: string | undefined;
}

/**
 * Room left for publishSession's headers inside the server's `max_payload`: the session id (up to 255
 * characters, ≤ 1020 bytes of UTF-8), version, commit time, traceparent and tracestate (≤ 512), with
 * their names and the header block's framing, rounded up.
 */
export const SESSION_HEADERS_MAX_BYTES = 4096;

/** The largest session payload (DTO bytes) the connected server accepts with its headers. */
export function sessionPayloadLimit(bus: BusConnection): number {
  return bus.maxPayload - SESSION_HEADERS_MAX_BYTES;
}

/** Thrown by every call that needs a live connection when there is none (never connected, or closed). */
export class NotConnectedError extends Error {
  /** `action` names what could not be done, e.g. "publish on wizard.1.a.b". */
  constructor(action: string) {
    super(`cannot ${action}: not connected to NATS`);
    this.name = 'NotConnectedError';
  }
}

/**
 * Publishes one session with the headers of docs/wire-format.md#nats. Throws when there is no connection at all; while
 * reconnecting the client buffers, which is why confirmPublished() exists.
 */
export function publishSession(bus: BusConnection, publication: SessionPublication): void {
  const connection = bus.nats;
  if (!connection || connection.isClosed()) throw new NotConnectedError(`publish on ${publication.subject}`);
  const headers = natsHeaders();
  headers.set(NATS_HEADERS.sessionId, publication.sessionId);
  headers.set(NATS_HEADERS.version, String(publication.version));
  headers.set(NATS_HEADERS.committedAt, String(publication.committedAtMs));
  if (publication.traceparent) headers.set(NATS_HEADERS.traceparent, publication.traceparent);
  if (publication.tracestate) headers.set(NATS_HEADERS.tracestate, publication.tracestate);
  connection.publish(publication.subject, publication.payload, { headers });
}

/**
 * Resolves once the server has acknowledged everything published before the call (a PING/PONG round
 * trip). Until then a publish may sit in the client's reconnect buffer and die with the process.
 */
export async function confirmPublished(bus: BusConnection, timeoutMs: number): Promise<void> {
  const connection = bus.nats;
  if (!connection || connection.isClosed()) throw new NotConnectedError('confirm publishes');
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      connection.flush(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`NATS did not confirm publishes within ${timeoutMs} ms`)),
          timeoutMs,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
