/**
 * Per session, versions only increase (docs/delivery.md#guarantee, b). A resumed or re-snapshotted stream repeats what the
 * client already has; this drops it.
 */
export class SessionVersions {
  private readonly latest = new Map<string, number>();

  /** Records the version and returns true when it is newer than anything seen for the session. */
  accept(sessionId: string, version: number): boolean {
    const seen = this.latest.get(sessionId);
    if (seen !== undefined && version <= seen) return false;
    this.latest.set(sessionId, version);
    return true;
  }
}
