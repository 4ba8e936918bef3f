import {
  CONNECTS_HEADER,
  CONNECTS_SIGNATURE_HEADER,
  type CredentialOwner,
  latestSessionUrl,
  listSessionsUrl,
  PRINCIPAL_HEADER,
  parsePrincipalHeader,
} from '@wizard-stream/contracts';
import { signConnects } from '@wizard-stream/http';
import { Agent, request } from 'undici';
import { type SessionFrame, sessionFrame } from './frame.js';
import type { SnapshotEvents, SnapshotPurpose } from './metrics.js';
import type { StreamRoute } from './stream-subject.js';

/** `owner`: whose credential write-api found (PRINCIPAL_HEADER), which the stream keeps for revocations. */
export type SnapshotResult =
  | { kind: 'session'; frame: SessionFrame; owner: CredentialOwner | undefined }
  | { kind: 'empty'; owner: CredentialOwner | undefined }
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
    | {
        promise: Promise<SnapshotResult>;
        resolve: (result: Promise<SnapshotResult>) => void;
        /** Connects waiting for this call: each is charged to the key's rate limit (CONNECTS_HEADER). */
        connects: number;
      }
    | undefined;
}

/**
 * The write-api client for snapshots: `…/latest/` for a connect (fetch), the session list after a NATS
 * outage (recent). Identical connects (same credential and route) share a call, but
 * only a call that starts after the request joined it: a call already in flight may have read the
 * database before the joiner subscribed, so joiners queue for the next call, issued when the running
 * one settles. A connect storm therefore costs at most two calls in flight per key, and no update is lost;
 * each call tells write-api how many connects it carries, so that all of them count toward the key's
 * rate limit. Re-snapshots read from write-api's internal listener with the gateway's own credential.
 */
export class SnapshotClient {
  private readonly slots = new Map<string, FlightSlot>();
  /**
   * undici's request API on keep-alive connections, not fetch(): in a connect wave, fetch's WHATWG
   * Request/Response/stream objects cost about 0.8 ms of the gateway's CPU per call (profiled).
   */
  private readonly dispatcher = new Agent({ keepAliveTimeout: 30_000 });

  constructor(
    private readonly writeApiUrl: string,
    private readonly internalUrl: string | undefined,
    private readonly timeoutMs: number,
    private readonly events: SnapshotEvents,
    /** INTERNAL_API_TOKEN: signs the connect count (CONNECTS_SIGNATURE_HEADER); unset, each call counts once. */
    private readonly connectsSecret: string | undefined,
  ) {}

  /** Whether re-snapshots have somewhere to read from. */
  get hasInternalListener(): boolean {
    return this.internalUrl !== undefined;
  }

  /**
   * The route's latest session for a connecting client, with that client's credential and address
   * (X-Forwarded-For, so that write-api throttles failed authentications per client, not per gateway).
   */
  fetch(credential: string, route: StreamRoute, clientAddress: string): Promise<SnapshotResult> {
    const key = `${credential}\n${route.teamId}\n${route.workflowId}\n${route.skillId ?? ''}`;
    let slot = this.slots.get(key);
    if (!slot) {
      slot = { running: undefined, queued: undefined };
      this.slots.set(key, slot);
    }
    const request = (connects: number) => this.latest(credential, route, connects, clientAddress);
    if (!slot.running) return this.start(key, slot, request, 1);
    if (!slot.queued) {
      let resolve!: (result: Promise<SnapshotResult>) => void;
      const promise = new Promise<SnapshotResult>((settle) => {
        resolve = settle;
      });
      slot.queued = { promise, resolve, connects: 0 };
    }
    slot.queued.connects += 1;
    return slot.queued.promise;
  }

  private start(
    key: string,
    slot: FlightSlot,
    request: (connects: number) => Promise<SnapshotResult>,
    connects: number,
  ): Promise<SnapshotResult> {
    const flight = request(connects);
    slot.running = flight;
    const settle = () => {
      const queued = slot.queued;
      slot.queued = undefined;
      if (queued) {
        queued.resolve(this.start(key, slot, request, queued.connects));
      } else {
        slot.running = undefined;
        this.slots.delete(key);
      }
    };
    flight.then(settle, settle);
    return flight;
  }

  private async latest(
    credential: string,
    route: StreamRoute,
    connects: number,
    clientAddress: string,
  ): Promise<SnapshotResult> {
    const url = latestSessionUrl(this.writeApiUrl, route.teamId, route.workflowId, route.skillId);
    const { response, body } = await this.get(url, credential, 'connect', {
      [CONNECTS_HEADER]: String(connects),
      ...(this.connectsSecret && {
        [CONNECTS_SIGNATURE_HEADER]: signConnects(this.connectsSecret, connects, credential),
      }),
      'x-forwarded-for': clientAddress,
    });
    const owner = parsePrincipalHeader(response.header(PRINCIPAL_HEADER));
    if (response.status === 204) {
      this.events.onSnapshotCall('empty', 'connect');
      return { kind: 'empty', owner };
    }
    if (response.status === 200) {
      const frame = frameFromDto(body);
      if (!frame) {
        this.events.onSnapshotCall('unavailable', 'connect');
        throw new SnapshotUnavailableError(url, 'the response is not a session DTO');
      }
      this.events.onSnapshotCall('ok', 'connect');
      return { kind: 'session', frame, owner };
    }
    if (response.status >= 400 && response.status < 500) {
      this.events.onSnapshotCall('refused', 'connect');
      return {
        kind: 'refused',
        status: response.status,
        body,
        contentType: response.header('content-type') ?? 'application/json; charset=utf-8',
        retryAfter: response.header('retry-after'),
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
    if (!this.internalUrl) throw new SnapshotUnavailableError('(none)', 'WRITE_API_INTERNAL_URL is unset');
    const url = listSessionsUrl(this.internalUrl, route.teamId, {
      workflowId: route.workflowId,
      skillId: route.skillId,
      limit,
    });
    const { response, body } = await this.get(url, credential, 'resnapshot', {});
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
    extraHeaders: Record<string, string>,
  ): Promise<{ response: SnapshotResponse; body: string }> {
    try {
      const answer = await request(url, {
        dispatcher: this.dispatcher,
        headers: { ...extraHeaders, authorization: `Bearer ${credential}`, accept: 'application/json' },
        // One deadline for the whole call, body included: a call that trickles would otherwise hold its
        // coalescing slot (and the connects queued behind it) for as long as write-api keeps sending.
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      const body = await answer.body.text();
      const { headers } = answer;
      return {
        response: {
          status: answer.statusCode,
          header: (name) => {
            const value = headers[name];
            return Array.isArray(value) ? value.join(', ') : value;
          },
        },
        body,
      };
    } catch (error) {
      this.events.onSnapshotCall('unavailable', purpose);
      throw new SnapshotUnavailableError(url, (error as Error).message);
    }
  }

  /** Closes the connections to write-api; calls still in flight fail (their streams answer 503). */
  close(): Promise<void> {
    return this.dispatcher.destroy();
  }
}

/** What the snapshot client reads of a write-api answer; header names are lower case. */
interface SnapshotResponse {
  status: number;
  header(name: string): string | undefined;
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
