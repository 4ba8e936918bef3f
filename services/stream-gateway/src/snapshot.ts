import { latestSessionUrl, listSessionsUrl } from '@wizard-stream/contracts';
import { type SessionFrame, sessionFrame } from './frame.js';
import type { SnapshotEvents, SnapshotPurpose } from './metrics.js';
import type { StreamRoute } from './stream-subject.js';

export type SnapshotResult =
  | { kind: 'session'; frame: SessionFrame }
  | { kind: 'empty' }
  /** write-api refused the caller (401/403/404/429...): returned to the caller as it is. */
  | { kind: 'refused'; status: number; body: string; contentType: string; retryAfter: string | undefined };

/** write-api could not answer (down, 5xx, timeout): the caller gets 503 and retries. */
export class SnapshotUnavailableError extends Error {
  constructor(url: string, reason: string) {
    super(`snapshot from ${url} failed: ${reason}`);
    this.name = 'SnapshotUnavailableError';
  }
}

interface FlightSlot {
  running: Promise<SnapshotResult> | undefined;
  queued:
    | { promise: Promise<SnapshotResult>; resolve: (result: Promise<SnapshotResult>) => void }
    | undefined;
}

/**
 * The write-api client for snapshots: `…/latest/` for a connect (fetch), the session list after a NATS
 * outage (recent). Identical connects (same credential and route) share a call, but
 * only a call that starts after the request joined it: a call already in flight may have read the
 * database before the joiner subscribed, so joiners queue for the next call, issued when the running
 * one settles. A connect storm therefore costs at most two calls in flight per key, and no update is lost.
 */
export class SnapshotClient {
  private readonly slots = new Map<string, FlightSlot>();

  constructor(
    private readonly writeApiUrl: string,
    private readonly timeoutMs: number,
    private readonly events: SnapshotEvents,
  ) {}

  /** The route's latest session for a connecting client, with that client's credential. */
  fetch(credential: string, route: StreamRoute): Promise<SnapshotResult> {
    const key = `${credential}\n${route.teamId}\n${route.workflowId}\n${route.skillId ?? ''}`;
    let slot = this.slots.get(key);
    if (!slot) {
      slot = { running: undefined, queued: undefined };
      this.slots.set(key, slot);
    }
    const request = () => this.latest(credential, route);
    if (!slot.running) return this.start(key, slot, request);
    if (!slot.queued) {
      let resolve!: (result: Promise<SnapshotResult>) => void;
      const promise = new Promise<SnapshotResult>((settle) => {
        resolve = settle;
      });
      slot.queued = { promise, resolve };
    }
    return slot.queued.promise;
  }

  private start(
    key: string,
    slot: FlightSlot,
    request: () => Promise<SnapshotResult>,
  ): Promise<SnapshotResult> {
    const flight = request();
    slot.running = flight;
    const settle = () => {
      const queued = slot.queued;
      slot.queued = undefined;
      if (queued) {
        queued.resolve(this.start(key, slot, request));
      } else {
        slot.running = undefined;
        this.slots.delete(key);
      }
    };
    flight.then(settle, settle);
    return flight;
  }

  private async latest(credential: string, route: StreamRoute): Promise<SnapshotResult> {
    const url = latestSessionUrl(this.writeApiUrl, route.teamId, route.workflowId, route.skillId);
    const { response, body } = await this.get(url, credential, 'connect');
    if (response.status === 204) {
      this.events.onSnapshotCall('empty', 'connect');
      return { kind: 'empty' };
    }
    if (response.status === 200) {
      const frame = frameFromDto(body);
      if (!frame) {
        this.events.onSnapshotCall('unavailable', 'connect');
        throw new SnapshotUnavailableError(url, 'the response is not a session DTO');
      }
      this.events.onSnapshotCall('ok', 'connect');
      return { kind: 'session', frame };
    }
    if (response.status >= 400 && response.status < 500) {
      this.events.onSnapshotCall('refused', 'connect');
      return {
        kind: 'refused',
        status: response.status,
        body,
        contentType: response.headers.get('content-type') ?? 'application/json; charset=utf-8',
        retryAfter: response.headers.get('retry-after') ?? undefined,
      };
    }
    this.events.onSnapshotCall('unavailable', 'connect');
    throw new SnapshotUnavailableError(url, `status ${response.status}`);
  }

  /**
   * After a NATS outage: the frames of the route's sessions that may have changed since `since` (ms
   * epoch), from the list call (newest `started_at` first, `limit` at most): the latest session always,
   * and every other one updated since then. `…/latest/` alone would restore only the newest session of a
   * route that several sessions share (every skill of a workflow, or several runs of one skill).
   */
  async recent(
    credential: string,
    route: StreamRoute,
    since: number,
    limit: number,
  ): Promise<SessionFrame[]> {
    const url = listSessionsUrl(this.writeApiUrl, route.teamId, {
      workflowId: route.workflowId,
      skillId: route.skillId,
      limit,
    });
    const { response, body } = await this.get(url, credential, 'resnapshot');
    if (response.status !== 200) {
      this.events.onSnapshotCall(
        response.status >= 400 && response.status < 500 ? 'refused' : 'unavailable',
        'resnapshot',
      );
      throw new SnapshotUnavailableError(url, `status ${response.status}`);
    }
    const results = (JSON.parse(body) as { results?: unknown }).results;
    if (!Array.isArray(results)) {
      this.events.onSnapshotCall('unavailable', 'resnapshot');
      throw new SnapshotUnavailableError(url, 'the response is not a session list');
    }
    this.events.onSnapshotCall(results.length === 0 ? 'empty' : 'ok', 'resnapshot');
    const frames: SessionFrame[] = [];
    results.forEach((dto: { updated_at?: unknown }, index) => {
      const updatedAt = typeof dto.updated_at === 'string' ? Date.parse(dto.updated_at) : Number.NaN;
      if (index > 0 && !(updatedAt >= since)) return;
      // The list's entries are the serializer's DTOs; re-stringifying a parsed DTO keeps its field order.
      const frame = frameFromDto(JSON.stringify(dto));
      if (frame) frames.push(frame);
    });
    // Oldest first: a client that shows whatever arrived last ends on the latest session.
    return frames.reverse();
  }

  /** One write-api read with the caller's credential; a call that gets no answer counts as unavailable. */
  private async get(
    url: string,
    credential: string,
    purpose: SnapshotPurpose,
  ): Promise<{ response: Response; body: string }> {
    try {
      const response = await fetch(url, {
        headers: { authorization: `Bearer ${credential}`, accept: 'application/json' },
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      return { response, body: await response.text() };
    } catch (error) {
      this.events.onSnapshotCall('unavailable', purpose);
      throw new SnapshotUnavailableError(url, (error as Error).message);
    }
  }
}

/** The snapshot's frame carries write-api's bytes unchanged; only its id needs session_id and version. */
function frameFromDto(body: string): SessionFrame | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return undefined;
  }
  const { session_id: sessionId, version } = (parsed ?? {}) as { session_id?: unknown; version?: unknown };
  if (typeof sessionId !== 'string' || typeof version !== 'number' || !Number.isSafeInteger(version)) {
    return undefined;
  }
  return sessionFrame(version, sessionId, body);
}
