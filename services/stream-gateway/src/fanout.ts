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

  /**
   * Offers the frames, oldest first, to every connection; never blocks. Several frames reach each
   * connection's socket as one write, not one write each.
   */
  offer(frames: readonly SessionFrame[]): void {
    const now = Date.now();
    if (frames.length === 1) {
      const frame = frames[0] as SessionFrame;
      for (const connection of this.connections) connection.offer(frame, now);
      return;
    }
    let joined: Buffer | undefined;
    const join = () => {
      joined ??= Buffer.concat(frames.map((frame) => frame.bytes));
      return joined;
    };
    for (const connection of this.connections) connection.offerAll(frames, now, join);
  }
}
