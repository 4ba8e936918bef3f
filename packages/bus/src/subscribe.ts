import type { Msg, Subscription } from '@nats-io/transport-node';
import { NATS_HEADERS } from '@wizard-stream/contracts';
import type { BusConnection } from './connection.js';

/** What a subscriber learns of one published session without parsing its payload. */
export interface SessionMessage {
  subject: string;
  sessionId: string;
  version: number;
  committedAtMs: number | undefined;
  traceparent: string | undefined;
  tracestate: string | undefined;
  /** The DTO bytes as published. */
  payload: Uint8Array;
}

/** Reads the headers of docs/wire-format.md#nats; undefined for a message that does not carry them. */
export function readSessionMessage(msg: Msg): SessionMessage | undefined {
  const headers = msg.headers;
  if (!headers) return undefined;
  const sessionId = headers.get(NATS_HEADERS.sessionId);
  const version = Number(headers.get(NATS_HEADERS.version));
  if (!sessionId || !Number.isSafeInteger(version) || version < 1) return undefined;
  const committedAt = Number(headers.get(NATS_HEADERS.committedAt));
  return {
    subject: msg.subject,
    sessionId,
    version,
    committedAtMs: Number.isFinite(committedAt) && committedAt > 0 ? committedAt : undefined,
    traceparent: headers.get(NATS_HEADERS.traceparent) || undefined,
    tracestate: headers.get(NATS_HEADERS.tracestate) || undefined,
    payload: msg.data,
  };
}

/**
 * Subscribes with a callback (no async iterator: the callback runs synchronously for each message,
 * which keeps fan-out latency low). Messages without session headers are passed to onInvalid.
 */
export async function subscribeSessions(
  bus: BusConnection,
  subject: string,
  onMessage: (message: SessionMessage) => void,
  onInvalid: (subject: string) => void = () => {},
): Promise<Subscription> {
  const connection = await bus.ready();
  return connection.subscribe(subject, {
    callback: (error, msg) => {
      if (error) return;
      const message = readSessionMessage(msg);
      if (message) onMessage(message);
      else onInvalid(msg.subject);
    },
  });
}
