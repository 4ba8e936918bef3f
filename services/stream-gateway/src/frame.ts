import { formatSessionFrame } from '@wizard-stream/contracts';

/** One session update as it goes to clients: serialized once, the same bytes for every connection. */
export interface SessionFrame {
  readonly sessionId: string;
  readonly version: number;
  readonly bytes: Buffer;
}

export function sessionFrame(version: number, sessionId: string, serializedSession: string): SessionFrame {
  return {
    sessionId,
    version,
    bytes: Buffer.from(formatSessionFrame(version, sessionId, serializedSession)),
  };
}
