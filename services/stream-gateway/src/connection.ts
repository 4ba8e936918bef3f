import { parseSessionEventId, SSE_END_FRAME, SSE_PING } from '@wizard-stream/contracts';
import type { SessionFrame } from './frame.js';
import type { DeliveryEvents } from './metrics.js';

const PING_BYTES = Buffer.from(SSE_PING);
const END_BYTES = Buffer.from(SSE_END_FRAME);

/** Where a connection writes: an http.ServerResponse in production, any Writable in unit tests. */
export interface SseSink {
  write(chunk: Buffer): boolean;
  end(): unknown;
  destroy(): unknown;
  once(event: 'drain', listener: () => void): unknown;
  readonly socket?: { end(): unknown } | null;
  readonly writableLength?: number;
  /** Where write() starts returning false; absent means no limit. */
  readonly writableHighWaterMark?: number;
  /** A destroyed socket still reports the length it had; its buffer is gone. */
  readonly destroyed?: boolean;
}

export interface ConnectionLimits {
  heartbeatMs: number;
  slowClientMs: number;
}

const PENDING = 0;
const OPEN = 1;
const CLOSED = 2;

/**
 * One SSE client. Kept small (the gateway holds tens of thousands): no timers of its own — the
 * registry's shared sweep calls sweep() — and no queue: at most the newest unsent frame per session.
 *
 * Before open() (while the snapshot is fetched) and while the socket is not draining, frames wait in
 * `pending`, conflated to the newest version per session. Per session, versions written only increase.
 *
 * Conflation bounds the frames per session, not the bytes: a client of a workflow with many changing
 * sessions could still hold one large frame per session. So held plus unsent bytes are bounded too
 * (MAX_CLIENT_BUFFER_BYTES): a frame that would take them past the budget closes the client as slow.
 */
export class StreamConnection {
  private state = PENDING;
  /**
   * The version last written per session. Nearly every stream follows one session, so the first one
   * lives in two fields and a Map is only created for a second (an empty Map costs more than a stream's
   * whole state here, times tens of thousands of connections).
   */
  private firstSessionId: string | undefined;
  private firstVersion = 0;
  private otherSessions: Map<string, number> | undefined;
  private pending: Map<string, SessionFrame> | undefined;
  /** The bytes of the frames in `pending`, kept as they change so the budget check costs no walk. */
  private heldBytes = 0;
  private sink: SseSink | undefined;
  /** 0 while the socket drains; otherwise when it stopped. */
  private blockedSince = 0;
  private lastWriteAt = 0;
  /** The frame the client says it has (Last-Event-ID): only a snapshot equal to it is skipped. */
  private resumedFrom: { version: number; sessionId: string } | undefined;

  constructor(
    private readonly events: DeliveryEvents,
    /** When the stream is rotated with `event: end` (max duration with jitter, or the drain). */
    public deadline: number,
    lastEventId: string | undefined,
    /** MAX_CLIENT_BUFFER_BYTES: held plus unsent bytes this client may have waiting. */
    private readonly maxBufferBytes: number,
  ) {
    this.resumedFrom = parseSessionEventId(lastEventId);
  }

  get isClosed(): boolean {
    return this.state === CLOSED;
  }

  get isBlocked(): boolean {
    return this.blockedSince !== 0;
  }

  /** The version last written for a session, if any. */
  private lastSentVersion(sessionId: string): number | undefined {
    if (sessionId === this.firstSessionId) return this.firstVersion;
    return this.otherSessions?.get(sessionId);
  }

  private setLastSent(sessionId: string, version: number): void {
    if (this.firstSessionId === undefined || this.firstSessionId === sessionId) {
      this.firstSessionId = sessionId;
      this.firstVersion = version;
      return;
    }
    if (!this.otherSessions) this.otherSessions = new Map();
    this.otherSessions.set(sessionId, version);
  }

  /** The version of a session waiting to be written (held before open, or while blocked), if any. */
  pendingVersion(sessionId: string): number | undefined {
    return this.pending?.get(sessionId)?.version;
  }

  /** Bytes waiting for this client: in the socket's write buffer plus frames held back. */
  bufferedBytes(): number {
    const sink = this.sink;
    // Also after end(): the `event: end` and what preceded it wait in the socket until it drains or is closed.
    const unsent = sink && !sink.destroyed ? (sink.writableLength ?? 0) : 0;
    return unsent + this.heldBytes;
  }

  /**
   * A live update (or a re-snapshot): written now, held, or dropped when it is not newer. A frame that
   * would take what waits for the client past the budget closes it instead; a frame alone is always
   * taken, so a client that keeps up is never closed for one frame larger than the budget.
   */
  offer(frame: SessionFrame, now: number): void {
    if (this.state === CLOSED) return;
    const sent = this.lastSentVersion(frame.sessionId);
    if (sent !== undefined && frame.version <= sent) return;
    const held = this.pending?.get(frame.sessionId);
    if (held !== undefined && held.version >= frame.version) return;
    const waiting = this.bufferedBytes() - (held?.bytes.length ?? 0);
    if (waiting > 0 && waiting + frame.bytes.length > this.maxBufferBytes) {
      this.closeAsSlow();
      return;
    }
    if (this.state === PENDING || this.blockedSince !== 0) {
      this.hold(frame);
      return;
    }
    this.write(frame, now);
  }

  /**
   * Several frames, oldest first, with the same rules as offer() frame by frame, but what is written of
   * them goes out as one write of bytes shared by every connection: `joined` (all frames, built once per
   * batch) or a slice of it when the connection takes a contiguous run of them, which is the common case.
   * The run ends where a single write would have blocked (the socket's high-water mark) or where the
   * budget needs the socket's real state after the write; the frames after it go through offer().
   */
  offerAll(frames: readonly SessionFrame[], now: number, joined: () => Buffer): void {
    if (this.state !== OPEN || this.blockedSince !== 0 || (this.pending?.size ?? 0) > 0) {
      for (const frame of frames) this.offer(frame, now);
      return;
    }
    const sink = this.sink as SseSink;
    const highWaterMark = sink.writableHighWaterMark ?? Number.POSITIVE_INFINITY;
    let waiting = this.bufferedBytes();
    let inRun = false;
    let runStartByte = 0;
    let runEndByte = 0;
    let offset = 0;
    let next = 0;
    for (; next < frames.length && waiting < highWaterMark; next++) {
      const frame = frames[next] as SessionFrame;
      const frameStart = offset;
      offset += frame.bytes.length;
      const sent = this.lastSentVersion(frame.sessionId);
      if (sent !== undefined && frame.version <= sent) {
        // A gap ends the run: what follows is offered on its own.
        if (inRun) {
          next++;
          break;
        }
        continue;
      }
      if (waiting > 0 && waiting + frame.bytes.length > this.maxBufferBytes) break;
      if (!inRun) {
        inRun = true;
        runStartByte = frameStart;
      }
      runEndByte = offset;
      waiting += frame.bytes.length;
      this.setLastSent(frame.sessionId, frame.version);
      this.events.onDelivered();
    }
    if (inRun) {
      this.lastWriteAt = now;
      const all = runStartByte === 0 && runEndByte === offset && next === frames.length;
      const bytes = all ? joined() : joined().subarray(runStartByte, runEndByte);
      if (!sink.write(bytes)) this.blocked(now);
    }
    // After the run: held while the socket is blocked, otherwise written one by one, as offer() does.
    for (; next < frames.length; next++) this.offer(frames[next] as SessionFrame, now);
  }

  /**
   * Takes the snapshot before the stream opens: skipped when the client has it (Last-Event-ID), held with
   * the live frames otherwise (dropped if a newer version arrived meanwhile). Held frames count toward
   * the budget, so the snapshot can close the connection as slow; the caller checks isClosed after.
   */
  takeSnapshot(snapshot: SessionFrame, now: number): void {
    if (this.state !== PENDING) return;
    const resumed = this.resumedFrom;
    this.resumedFrom = undefined;
    if (resumed?.sessionId === snapshot.sessionId && resumed.version === snapshot.version) {
      // The client has it: counted as sent, so copies of it (the subscribe overlap) are dropped too.
      this.setLastSent(snapshot.sessionId, snapshot.version);
    } else {
      this.offer(snapshot, now);
    }
  }

  /**
   * Starts streaming on a sink whose headers are written: `retry:`, then the snapshot (see takeSnapshot)
   * and the held frames by version. A connection the snapshot closed as slow destroys the sink instead.
   */
  open(sink: SseSink, preamble: Buffer, now: number): void {
    if (this.state === CLOSED) {
      sink.destroy();
      return;
    }
    if (this.state !== PENDING) return;
    this.resumedFrom = undefined;
    this.sink = sink;
    this.state = OPEN;
    this.lastWriteAt = now;
    if (!sink.write(preamble)) this.blocked(now);
    if (this.blockedSince === 0) this.flushPending(now);
  }

  /** Called by the registry's shared timer: slow-client close, rotation, heartbeat. */
  sweep(now: number, limits: ConnectionLimits): void {
    if (!this.sink) return;
    // Also after end(): a client that does not read would otherwise hold its ended socket open for ever.
    if (this.blockedSince !== 0 && now - this.blockedSince >= limits.slowClientMs) {
      this.closeAsSlow();
      return;
    }
    if (this.state !== OPEN) return;
    if (now >= this.deadline) {
      this.end();
      return;
    }
    if (this.blockedSince === 0 && now - this.lastWriteAt >= limits.heartbeatMs) {
      this.lastWriteAt = now;
      if (!this.sink.write(PING_BYTES)) this.blocked(now);
    }
  }

  /** `event: end` / `data: reconnect`, then the socket closes so the client reconnects elsewhere. */
  end(): void {
    const sink = this.sink;
    if (this.state === CLOSED) return;
    this.state = CLOSED;
    this.dropPending();
    if (!sink) return;
    if (!sink.write(END_BYTES)) this.blocked(Date.now());
    sink.end();
    sink.socket?.end();
  }

  destroy(): void {
    this.state = CLOSED;
    this.blockedSince = 0;
    this.dropPending();
    this.sink?.destroy();
  }

  /** The client went away (or the stream ended): stop writing. */
  markClosed(): void {
    this.state = CLOSED;
    this.dropPending();
  }

  /**
   * A client that does not keep up: its socket stayed blocked past SLOW_CLIENT_MS, or what waits for it
   * would pass MAX_CLIENT_BUFFER_BYTES. Closed, not ended: it would not read an `event: end` either.
   * Before open() there is no socket yet; the stream route then answers 503 instead of streaming.
   */
  private closeAsSlow(): void {
    this.events.onSlowClose();
    this.destroy();
  }

  private dropPending(): void {
    this.pending = undefined;
    this.heldBytes = 0;
  }

  /** Called by offer() once the frame is known to be newer than any held for its session. */
  private hold(frame: SessionFrame): void {
    if (!this.pending) this.pending = new Map();
    const held = this.pending.get(frame.sessionId);
    if (held !== undefined) {
      this.events.onConflated();
      this.heldBytes -= held.bytes.length;
    }
    this.pending.set(frame.sessionId, frame);
    this.heldBytes += frame.bytes.length;
  }

  private write(frame: SessionFrame, now: number): void {
    this.setLastSent(frame.sessionId, frame.version);
    this.lastWriteAt = now;
    this.events.onDelivered();
    if (!(this.sink as SseSink).write(frame.bytes)) this.blocked(now);
  }

  private flushPending(now: number): void {
    const pending = this.pending;
    if (!pending || pending.size === 0) return;
    const frames = pending.size === 1 ? [...pending.values()] : [...pending.values()].sort(byVersion);
    for (const frame of frames) {
      if (this.blockedSince !== 0 || this.state !== OPEN) return;
      pending.delete(frame.sessionId);
      this.heldBytes -= frame.bytes.length;
      const sent = this.lastSentVersion(frame.sessionId);
      if (sent === undefined || frame.version > sent) this.write(frame, now);
    }
  }

  /**
   * The socket took a write past its high-water mark: frames are held until it drains. The listener is
   * added only then, so that the tens of thousands of streams that keep up carry none.
   */
  private blocked(now: number): void {
    if (this.blockedSince !== 0) return;
    this.blockedSince = now;
    this.sink?.once('drain', () => this.drained());
  }

  private drained(): void {
    this.blockedSince = 0;
    if (this.state === OPEN) this.flushPending(Date.now());
  }
}

function byVersion(a: SessionFrame, b: SessionFrame): number {
  return a.version - b.version;
}
