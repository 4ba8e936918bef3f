import { type SessionRecord, serializeSession } from '@wizard-stream/contracts';

/**
 * The DTO bytes of a stored session, `is_stale` computed against `staleAfterMs` at the moment of the
 * call (docs/wire-format.md#the-session-dto). The reads and the publisher share one, so every copy of a
 * version that leaves write-api is serialized the same way.
 */
export type SessionSerializer = (record: SessionRecord) => string;

export function sessionSerializer(staleAfterMs: number): SessionSerializer {
  return (record) => serializeSession(record, { now: new Date(), staleAfterMs });
}
