import { connect, type Socket } from 'node:net';

/**
 * One load-client process of the fan-out benchmark (forked by bench/gateway.ts, driven over IPC).
 * Each client is a raw TCP connection speaking just enough HTTP/1.1 and SSE to find the session
 * version at the end of every `data:` line (the DTO's last field), so that a client costs a few
 * hundred bytes and a Buffer search per frame rather than a fetch/EventSource stack.
 */

export type ClientCommand =
  | {
      type: 'connect';
      host: string;
      port: number;
      /** Request path with query string. */
      path: string;
      headers: Record<string, string>;
      count: number;
      localAddress: string;
      /** Streams being opened at once (not yet answered with their first frame). */
      concurrency: number;
      timeoutMs: number;
    }
  | { type: 'reset' }
  | { type: 'collect'; sentAt: [number, number][] }
  | { type: 'close' };

export type ClientReport =
  | { type: 'connected'; opened: number; failed: number; errors: string[]; startedAt: number; doneAt: number }
  | {
      type: 'collected';
      /** Sparse latency histogram in whole milliseconds: [latencyMs, count]. */
      histogram: [number, number][];
      received: number;
      unknown: number;
      lastReceivedAt: number;
      /** Frames of versions below FANOUT_VERSION_BASE (end-to-end upserts): version → [count, latest receipt]. */
      endToEnd: [number, number, number][];
      open: number;
    }
  | { type: 'closed' };

/** Versions published directly on NATS (or to nchan) start here; below it are write-api's own versions. */
export const FANOUT_VERSION_BASE = 1_000_000;

const VERSION_MARKER = Buffer.from('"version":');
const FRAME_END = Buffer.from('\n\n');
const HEADER_END = Buffer.from('\r\n\r\n');

interface Client {
  socket: Socket;
  headersDone: boolean;
  gotFirstFrame: boolean;
  carry: Buffer | undefined;
}

/** receipts.get(version).get(receivedAtMs) = frames; a few hundred distinct milliseconds per version. */
let receipts = new Map<number, Map<number, number>>();
let unknownFrames = 0;
let lastReceivedAt = 0;
const clients = new Set<Client>();

function record(version: number, now: number): void {
  let byTime = receipts.get(version);
  if (!byTime) {
    byTime = new Map();
    receipts.set(version, byTime);
  }
  byTime.set(now, (byTime.get(now) ?? 0) + 1);
  lastReceivedAt = now;
}

/** Finds every `"version":N` in complete frames of the chunk; what follows the last frame end is carried. */
function consume(client: Client, chunk: Buffer, now: number): number {
  let data = client.carry ? Buffer.concat([client.carry, chunk]) : chunk;
  client.carry = undefined;
  if (!client.headersDone) {
    const end = data.indexOf(HEADER_END);
    if (end === -1) {
      client.carry = data;
      return 0;
    }
    const status = data.subarray(9, 12).toString('latin1');
    if (status !== '200') throw new Error(`stream answered ${data.subarray(0, end).toString('latin1')}`);
    client.headersDone = true;
    data = data.subarray(end + 4);
  }
  const lastEnd = data.lastIndexOf(FRAME_END);
  if (lastEnd === -1) {
    if (data.length > 0) client.carry = Buffer.from(data);
    return 0;
  }
  if (lastEnd + 2 < data.length) client.carry = Buffer.from(data.subarray(lastEnd + 2));
  let frames = 0;
  let at = data.indexOf(VERSION_MARKER);
  while (at !== -1 && at < lastEnd) {
    let position = at + VERSION_MARKER.length;
    let version = 0;
    for (;;) {
      const digit = data[position] as number;
      if (digit < 48 || digit > 57) break;
      version = version * 10 + (digit - 48);
      position++;
    }
    record(version, now);
    frames++;
    at = data.indexOf(VERSION_MARKER, position);
  }
  // Chunked transfer-encoding lines (nchan) carry no marker and are skipped by the search.
  return frames;
}

function connectAll(command: Extract<ClientCommand, { type: 'connect' }>): void {
  const startedAt = Date.now();
  const errors: string[] = [];
  let started = 0;
  let opened = 0;
  let failed = 0;
  const request = Buffer.from(
    `GET ${command.path} HTTP/1.1\r\nHost: ${command.host}:${command.port}\r\n${Object.entries(
      command.headers,
    )
      .map(([name, value]) => `${name}: ${value}\r\n`)
      .join('')}\r\n`,
  );
  let finished = false;
  const finish = () => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    send({ type: 'connected', opened, failed, errors: errors.slice(0, 5), startedAt, doneAt: Date.now() });
  };
  const timer = setTimeout(finish, command.timeoutMs);
  const settleOne = (ok: boolean, error?: string) => {
    if (ok) opened++;
    else {
      failed++;
      if (error) errors.push(error);
    }
    if (opened + failed === command.count) finish();
    else if (started < command.count) openOne();
  };
  const openOne = () => {
    started++;
    const socket = connect({ host: command.host, port: command.port, localAddress: command.localAddress });
    const client: Client = { socket, headersDone: false, gotFirstFrame: false, carry: undefined };
    let settled = false;
    socket.setNoDelay(true);
    socket.on('connect', () => socket.write(request));
    socket.on('data', (chunk: Buffer) => {
      const now = Date.now();
      let frames: number;
      try {
        frames = consume(client, chunk, now);
      } catch (error) {
        socket.destroy();
        if (!settled) {
          settled = true;
          settleOne(false, (error as Error).message);
        }
        return;
      }
      if (!client.gotFirstFrame && frames > 0) {
        client.gotFirstFrame = true;
        if (!settled) {
          settled = true;
          settleOne(true);
        }
      }
    });
    socket.on('error', (error) => {
      if (!settled) {
        settled = true;
        settleOne(false, error.message);
      }
    });
    socket.on('close', () => {
      clients.delete(client);
      if (!settled) {
        settled = true;
        settleOne(false, 'closed before the first frame');
      }
    });
    clients.add(client);
  };
  for (let index = 0; index < Math.min(command.concurrency, command.count); index++) openOne();
}

function collect(sentAt: [number, number][]): Extract<ClientReport, { type: 'collected' }> {
  const sent = new Map(sentAt);
  const histogram = new Map<number, number>();
  const endToEnd: [number, number, number][] = [];
  let received = 0;
  let unknown = unknownFrames;
  for (const [version, byTime] of receipts) {
    if (version < FANOUT_VERSION_BASE) {
      let count = 0;
      let latest = 0;
      for (const [time, frames] of byTime) {
        count += frames;
        latest = Math.max(latest, time);
      }
      endToEnd.push([version, count, latest]);
      continue;
    }
    const publishedAt = sent.get(version);
    for (const [time, frames] of byTime) {
      if (publishedAt === undefined) {
        unknown += frames;
        continue;
      }
      const latency = Math.max(0, time - publishedAt);
      histogram.set(latency, (histogram.get(latency) ?? 0) + frames);
      received += frames;
    }
  }
  return {
    type: 'collected',
    histogram: [...histogram],
    received,
    unknown,
    lastReceivedAt,
    endToEnd,
    open: clients.size,
  };
}

function send(report: ClientReport): void {
  process.send?.(report);
}

process.on('message', (command: ClientCommand) => {
  switch (command.type) {
    case 'connect':
      connectAll(command);
      break;
    case 'reset':
      receipts = new Map();
      unknownFrames = 0;
      lastReceivedAt = 0;
      break;
    case 'collect':
      send(collect(command.sentAt));
      break;
    case 'close':
      for (const client of clients) client.socket.destroy();
      clients.clear();
      send({ type: 'closed' });
      process.disconnect?.();
      process.exit(0);
  }
});
