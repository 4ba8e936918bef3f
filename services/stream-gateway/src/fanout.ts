import type { StreamConnection } from './connection.js';
import type { SessionFrame } from './frame.js';
import type { StreamRoute } from './stream-subject.js';

/**
 * The fan-out: the connections of one subject. Live updates and re-snapshots alike are offered here, and
 * every connection gets the same frame bytes; each drops what is not newer than what it has.
 */
export class SubjectFeed {
  readonly connections = new Set<StreamConnection>();
  /** Resolves once NATS has the subscription feeding it, so a snapshot taken after it misses nothing. */
  ready: Promise<void> = Promise.resolve();

  constructor(
    readonly subject: string,
    readonly route: StreamRoute,
  ) {}

  /** Offers the frames, oldest first, to every connection; never blocks. */
  offer(frames: readonly SessionFrame[]): void {
    const now = Date.now();
    for (const frame of frames) for (const connection of this.connections) connection.offer(frame, now);
  }
}
