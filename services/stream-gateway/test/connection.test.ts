import { Writable } from 'node:stream';
import { formatSessionFrame, SSE_END_FRAME, SSE_PING } from '@wizard-stream/contracts';
import { describe, expect, it } from 'vitest';
import { StreamConnection } from '../src/connection.js';
import { type SessionFrame, sessionFrame } from '../src/frame.js';
import { DeliveryCounts } from '../src/metrics.js';

const PREAMBLE = Buffer.from('retry: 3000\n\n');
const LIMITS = { heartbeatMs: 1000, slowClientMs: 5000 };
/** Far above what these tests buffer, except where a test sets its own budget. */
const NO_BUDGET = 1 << 30;

/** A real Writable standing in for the socket; `holding` keeps writes unacknowledged (a client not reading). */
class TestSink extends Writable {
  readonly written: string[] = [];
  holding = false;
  private readonly held: Array<() => void> = [];

  constructor(highWaterMark = 64) {
    super({ highWaterMark });
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    this.written.push(chunk.toString());
    if (this.holding) this.held.push(callback);
    else callback();
  }

  release(): void {
    this.holding = false;
    for (const callback of this.held.splice(0)) callback();
  }

  /** The session frames written, as `<version>:<session>` ids. */
  get ids(): string[] {
    return this.written.flatMap((chunk) =>
      [...chunk.matchAll(/^id: (.*)$/gm)].map((match) => match[1] as string),
    );
  }
}

const frame = (sessionId: string, version: number, size = 8): SessionFrame =>
  sessionFrame(version, sessionId, `{"v":${version},"pad":"${'x'.repeat(size)}"}`);

function setup(lastEventId?: string, maxBufferBytes = NO_BUDGET) {
  const stats = new DeliveryCounts();
  const connection = new StreamConnection(stats, 1_000_000, lastEventId, maxBufferBytes);
  const sink = new TestSink();
  return { stats, connection, sink };
}

const nextTick = () => new Promise((resolve) => setImmediate(resolve));

describe('StreamConnection', () => {
  it('writes the preamble, then the snapshot, then live frames; drops versions not newer than the last sent', () => {
    const { connection, sink, stats } = setup();
    connection.takeSnapshot(frame('s', 2), 0);
    connection.open(sink, PREAMBLE, 0);
    for (const version of [1, 2, 3, 3, 2, 5, 4]) connection.offer(frame('s', version), 0);
    expect(sink.written[0]).toBe('retry: 3000\n\n');
    expect(sink.ids).toEqual(['2:s', '3:s', '5:s']);
    expect(sink.written[1]).toBe(formatSessionFrame(2, 's', '{"v":2,"pad":"xxxxxxxx"}'));
    expect(stats.delivered).toBe(3);
  });

  it('tracks versions per session independently', () => {
    const { connection, sink } = setup();
    connection.open(sink, PREAMBLE, 0);
    for (const [session, version] of [
      ['a', 3],
      ['b', 1],
      ['a', 2],
      ['b', 2],
      ['a', 4],
    ] as const) {
      connection.offer(frame(session, version), 0);
    }
    expect(sink.ids).toEqual(['3:a', '1:b', '2:b', '4:a']);
  });

  it('skips a snapshot whose id equals Last-Event-ID, and sends a newer one', () => {
    const resumed = setup('7:s');
    resumed.connection.takeSnapshot(frame('s', 7), 0);
    resumed.connection.open(resumed.sink, PREAMBLE, 0);
    expect(resumed.sink.ids).toEqual([]);
    resumed.connection.offer(frame('s', 8), 0);
    expect(resumed.sink.ids).toEqual(['8:s']);

    const behind = setup('6:s');
    behind.connection.takeSnapshot(frame('s', 7), 0);
    behind.connection.open(behind.sink, PREAMBLE, 0);
    expect(behind.sink.ids).toEqual(['7:s']);

    const garbage = setup('not-an-id');
    garbage.connection.takeSnapshot(frame('s', 7), 0);
    garbage.connection.open(garbage.sink, PREAMBLE, 0);
    expect(garbage.sink.ids).toEqual(['7:s']);
  });

  it('sends the snapshot and live frames when Last-Event-ID names a version the snapshot is not (only equality skips)', () => {
    // The client claims a newer version than the store holds (its id came from elsewhere): it gets the snapshot.
    const ahead = setup('9:s');
    ahead.connection.offer(frame('s', 8), 0); // committed while the snapshot was in flight
    ahead.connection.takeSnapshot(frame('s', 7), 0);
    ahead.connection.open(ahead.sink, PREAMBLE, 0);
    expect(ahead.sink.ids).toEqual(['8:s']);
    ahead.connection.offer(frame('s', 9), 0);
    expect(ahead.sink.ids).toEqual(['8:s', '9:s']);

    const noSnapshotChange = setup('9:s');
    noSnapshotChange.connection.takeSnapshot(frame('s', 7), 0);
    noSnapshotChange.connection.open(noSnapshotChange.sink, PREAMBLE, 0);
    expect(noSnapshotChange.sink.ids).toEqual(['7:s']);

    // Equal: skipped, and a copy of it arriving live (the subscribe overlap) is not sent either.
    const equal = setup('7:s');
    equal.connection.offer(frame('s', 7), 0);
    equal.connection.takeSnapshot(frame('s', 7), 0);
    equal.connection.open(equal.sink, PREAMBLE, 0);
    expect(equal.sink.ids).toEqual([]);
    equal.connection.offer(frame('s', 7), 0);
    expect(equal.sink.ids).toEqual([]);
  });

  it('holds live frames while the snapshot is fetched: a newer one replaces the snapshot, all by version order', () => {
    const { connection, sink, stats } = setup();
    connection.offer(frame('a', 4), 0);
    connection.offer(frame('a', 5), 0);
    connection.offer(frame('b', 2), 0);
    expect(sink.written).toEqual([]);
    expect(connection.pendingVersion('a')).toBe(5);
    // The snapshot (a v3) was read before a v4 and v5 were committed: it must not be sent after them.
    connection.takeSnapshot(frame('a', 3), 0);
    connection.open(sink, PREAMBLE, 0);
    expect(sink.ids).toEqual(['2:b', '5:a']);
    expect(stats.conflated).toBe(1);
  });

  it('conflates to the newest pending frame per session while the socket does not drain, then flushes on drain', async () => {
    const { connection, sink, stats } = setup();
    connection.open(sink, PREAMBLE, 0);
    sink.holding = true;
    connection.offer(frame('a', 1, 200), 10); // larger than the high-water mark: the socket is now blocked
    expect(connection.isBlocked).toBe(true);
    for (let version = 2; version <= 50; version++) connection.offer(frame('a', version, 200), 11);
    connection.offer(frame('b', 9), 11);
    expect(sink.ids).toEqual(['1:a']);
    expect(connection.pendingVersion('a')).toBe(50);
    expect(stats.conflated).toBe(48);
    expect(connection.bufferedBytes()).toBeLessThan(3 * 300);

    sink.release();
    await nextTick();
    expect(connection.isBlocked).toBe(false);
    expect(sink.ids).toEqual(['1:a', '9:b', '50:a']);
  });

  it('closes a connection blocked for slowClientMs, and not before', () => {
    const { connection, sink, stats } = setup();
    connection.open(sink, PREAMBLE, 0);
    sink.holding = true;
    connection.offer(frame('a', 1, 200), 1000);
    connection.sweep(1000 + LIMITS.slowClientMs - 1, LIMITS);
    expect(sink.destroyed).toBe(false);
    connection.sweep(1000 + LIMITS.slowClientMs, LIMITS);
    expect(sink.destroyed).toBe(true);
    expect(connection.isClosed).toBe(true);
    expect(stats.slowClientCloses).toBe(1);
    connection.offer(frame('a', 2), 7000);
    expect(sink.ids).toEqual(['1:a']);
  });

  it('still closes a connection that was ended (rotation or drain) while blocked, after slowClientMs', () => {
    const stats = new DeliveryCounts();
    const connection = new StreamConnection(stats, 2000, undefined, NO_BUDGET);
    const sink = new TestSink();
    connection.open(sink, PREAMBLE, 0);
    sink.holding = true;
    connection.offer(frame('a', 1, 200), 1000);
    expect(connection.isBlocked).toBe(true);
    connection.sweep(2000, LIMITS); // the deadline: `event: end` queued behind what the client does not read
    expect(sink.writableEnded).toBe(true);
    expect(sink.destroyed).toBe(false);
    connection.sweep(1000 + LIMITS.slowClientMs - 1, LIMITS);
    expect(sink.destroyed).toBe(false);
    connection.sweep(1000 + LIMITS.slowClientMs, LIMITS);
    expect(sink.destroyed).toBe(true);
    expect(stats.slowClientCloses).toBe(1);
    connection.sweep(1000 + 2 * LIMITS.slowClientMs, LIMITS);
    expect(stats.slowClientCloses).toBe(1);
  });

  it('closes a client as slow when a frame would take its held plus unsent bytes past the budget', () => {
    const { connection, sink, stats } = setup(undefined, 1000);
    connection.open(sink, PREAMBLE, 10);
    sink.holding = true;
    const size = (session: string) => frame(session, 1, 280).bytes.length;
    connection.offer(frame('a', 1, 280), 10); // written: the socket is now blocked
    connection.offer(frame('b', 1, 280), 10); // held
    connection.offer(frame('c', 1, 280), 10); // held
    expect(connection.bufferedBytes()).toBe(size('a') + size('b') + size('c'));
    // Conflation replaces a held frame: its bytes are counted once.
    connection.offer(frame('b', 2, 280), 10);
    expect(connection.bufferedBytes()).toBe(size('a') + size('b') + size('c'));
    expect(stats.slowClientCloses).toBe(0);
    expect(connection.bufferedBytes() + size('d')).toBeGreaterThan(1000);
    connection.offer(frame('d', 1, 280), 10);
    expect(stats.slowClientCloses).toBe(1);
    expect(connection.isClosed).toBe(true);
    expect(sink.destroyed).toBe(true);
    expect(connection.bufferedBytes()).toBe(0);
    connection.offer(frame('e', 1), 10);
    expect(sink.ids).toEqual(['1:a']);
  });

  it('bounds the frames held before open() by the budget too, and always takes a frame alone', () => {
    const waiting = setup(undefined, 1000);
    waiting.connection.offer(frame('a', 1, 600), 10);
    expect(waiting.stats.slowClientCloses).toBe(0);
    waiting.connection.offer(frame('b', 1, 600), 10);
    expect(waiting.stats.slowClientCloses).toBe(1);
    expect(waiting.connection.isClosed).toBe(true);

    // A client that keeps up gets a frame larger than the whole budget.
    const reading = setup(undefined, 1000);
    reading.connection.open(reading.sink, PREAMBLE, 10);
    reading.connection.offer(frame('a', 1, 2000), 10);
    reading.connection.offer(frame('a', 2, 2000), 10);
    expect(reading.sink.ids).toEqual(['1:a', '2:a']);
    expect(reading.stats.slowClientCloses).toBe(0);
  });

  it('pings after heartbeatMs without a frame, and a frame resets the heartbeat', () => {
    const { connection, sink } = setup();
    connection.open(sink, PREAMBLE, 0);
    connection.sweep(999, LIMITS);
    expect(sink.written).not.toContain(SSE_PING);
    connection.offer(frame('a', 1), 900);
    connection.sweep(1500, LIMITS);
    expect(sink.written).not.toContain(SSE_PING);
    connection.sweep(1900, LIMITS);
    expect(sink.written.at(-1)).toBe(SSE_PING);
  });

  it('ends with `event: end` at its deadline and writes nothing after', () => {
    const stats = new DeliveryCounts();
    const connection = new StreamConnection(stats, 500, undefined, NO_BUDGET);
    const sink = new TestSink();
    connection.open(sink, PREAMBLE, 0);
    connection.sweep(499, LIMITS);
    expect(sink.written).not.toContain(SSE_END_FRAME);
    connection.sweep(500, LIMITS);
    expect(sink.written.at(-1)).toBe(SSE_END_FRAME);
    expect(sink.writableEnded).toBe(true);
    connection.offer(frame('a', 1), 600);
    expect(sink.ids).toEqual([]);
  });
  it('sends frames offered together in one write, still dropping those not newer than the last sent', () => {
    const { connection } = setup();
    const { connection: second } = setup();
    const sink = new TestSink(1 << 20);
    const secondSink = new TestSink(1 << 20);
    connection.takeSnapshot(frame('s', 3), 0);
    connection.open(sink, PREAMBLE, 0);
    second.open(secondSink, PREAMBLE, 0);
    const writesBefore = [sink.written.length, secondSink.written.length];
    const batch = [frame('s', 3), frame('t', 1), frame('s', 4)];
    // As the feed does: the batch's bytes are joined once, for every connection.
    const joinedBytes = Buffer.concat(batch.map((entry) => entry.bytes));
    connection.offerAll(batch, 0, () => joinedBytes);
    second.offerAll(batch, 0, () => joinedBytes);
    // The first already has s@3, so it takes two of the three, in one write.
    expect(sink.written.length - (writesBefore[0] as number)).toBe(1);
    expect(sink.ids).toEqual(['3:s', '1:t', '4:s']);
    // The second takes all three, in order, in one write.
    expect(secondSink.written.length - (writesBefore[1] as number)).toBe(1);
    expect(secondSink.ids).toEqual(['3:s', '1:t', '4:s']);
    // Still frame by frame: an older version after them is dropped, a newer one written.
    const later = [frame('s', 2), frame('s', 5)];
    connection.offerAll(later, 0, () => Buffer.concat(later.map((entry) => entry.bytes)));
    expect(sink.ids.at(-1)).toBe('5:s');
    expect(sink.ids).not.toContain('2:s');
  });
  it('writes a batch only up to the socket high-water mark; the rest waits, conflated, for the drain', () => {
    const { connection, sink, stats } = setup();
    connection.open(sink, PREAMBLE, 0);
    sink.holding = true;
    // TestSink's high-water mark is 64 bytes: the first frame reaches it, so the others are held.
    const batch = [frame('s', 1, 40), frame('s', 2, 40), frame('s', 3, 40)];
    connection.offerAll(batch, 1000, () => Buffer.concat(batch.map((entry) => entry.bytes)));
    expect(sink.ids).toEqual(['1:s']);
    expect(connection.isBlocked).toBe(true);
    expect(connection.pendingVersion('s')).toBe(3);
    expect(stats.conflated).toBe(1);
    sink.release();
    expect(sink.ids).toEqual(['1:s', '3:s']);
  });
  it('writes a partial batch as a slice of the shared bytes, not a copy per connection', () => {
    const { connection } = setup();
    const chunks: Buffer[] = [];
    const sink = new Writable({
      highWaterMark: 1 << 20,
      write(chunk, _encoding, callback) {
        chunks.push(chunk as Buffer);
        callback();
      },
    });
    connection.takeSnapshot(frame('s', 3), 0);
    connection.open(sink, PREAMBLE, 0);
    const batch = [frame('s', 3), frame('s', 4), frame('s', 5), frame('s', 2), frame('s', 6)];
    const joined = Buffer.concat(batch.map((entry) => entry.bytes));
    const before = chunks.length;
    connection.offerAll(batch, 0, () => joined);
    const written = chunks.slice(before);
    // s@3 is skipped, s@4 and s@5 are one slice of the batch's bytes; s@2 is dropped, s@6 is its own frame.
    expect(written.map((chunk) => chunk.toString().match(/^id: (.*)$/gm))).toEqual([
      ['id: 4:s', 'id: 5:s'],
      ['id: 6:s'],
    ]);
    expect(written[0]?.buffer).toBe(joined.buffer);
    expect(written[1]?.buffer).toBe((batch[4] as SessionFrame).bytes.buffer);
  });

  it('applies the budget to a batch as to single frames: a client whose socket drains is never closed for it', () => {
    const { connection, stats } = setup(undefined, 1000);
    const sink = new TestSink(1 << 20);
    connection.open(sink, PREAMBLE, 0);
    const batch = [frame('a', 1, 100), frame('b', 1, 950)];
    connection.offerAll(batch, 0, () => Buffer.concat(batch.map((entry) => entry.bytes)));
    expect(stats.slowClientCloses).toBe(0);
    expect(sink.ids).toEqual(['1:a', '1:b']);
  });

  it('does not open a connection its own snapshot closed as slow', () => {
    const { connection, sink, stats } = setup(undefined, 1000);
    connection.offer(frame('b', 5, 600), 0);
    connection.takeSnapshot(frame('a', 3, 600), 0);
    expect(connection.isClosed).toBe(true);
    expect(stats.slowClientCloses).toBe(1);
    connection.open(sink, PREAMBLE, 0);
    expect(sink.written).toEqual([]);
    expect(sink.destroyed).toBe(true);
  });
});
