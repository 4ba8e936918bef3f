import { connect, type Socket } from 'node:net';

/**
 * One load-client process of the stream benchmarks (forked by bench/load-pool.ts, driven over IPC).
 * Each client is a raw TCP connection speaking just enough HTTP/1.1 and SSE to find the session
 * version at the end of every `data:` line (the DTO's last field), so that a client costs a few
 * hundred bytes and a Buffer search per frame rather than a fetch/EventSource stack.
 *
 * Client g (firstIndex + its index in the command) watches paths[g % paths.length] on
 * targets[⌊g / paths.length⌋ % targets.length] (so the streams of one path are spread over the targets)
 * from localAddresses[g % localAddresses.length]: one process spreads its source ports over several
 * loopback addresses, so that TIME_WAIT ports of earlier waves never crowd a later wave's binds.
 */

export interface Target {
  host: string;
  port: number;
}

export interface ConnectCommand {
  type: 'connect';
  targets: Target[];
  /** Request paths with query strings; a frame's receipt is recorded under its client's path index. */
  paths: string[];
  headers: Record<string, string>;
  /** Headers of one path (its own credential), added to `headers`. */
  pathHeaders?: Record<string, string>[];
  /** The global index of this process's first client. */
  firstIndex: number;
  count: number;
  localAddresses: string[];
  /** Streams being opened at once (not yet answered with their first frame). */
  concurrency: number;
  timeoutMs: number;
  /**
   * Reconnect after a close the client did not ask for, as the SDK's subscribe client does: after
   * `event: end` within [0, endDelayMs], after a failure with full-jitter backoff over
   * min(maxDelayMs, baseDelayMs·2^attempt). Each reconnect goes to the next target, as a load balancer
   * would send it to a gateway that is not draining.
   */
  reconnect?: { endDelayMs: number; baseDelayMs: number; maxDelayMs: number };
}

export type ClientCommand =
  | ConnectCommand
  | { type: 'reset' }
  /** sentAt: [receipt key, send time]; see receiptKey. */
  | { type: 'collect'; sentAt: [number, number][] }
  /** finalVersions: [path index, last pushed version]; the report then counts streams behind them. */
  | { type: 'storm'; finalVersions?: [number, number][] }
  /** Closes every stream (the client's own close: no reconnect) and keeps the process for the next wave. */
  | { type: 'disconnect' }
  | { type: 'close' };

/** Milliseconds, as nearest-rank percentiles over a whole-millisecond histogram. */
export interface MsSummary {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

export interface ConnectedReport {
  type: 'connected';
  opened: number;
  failed: number;
  errors: string[];
  /** Failures by error code (ECONNREFUSED, EADDRINUSE, EADDRNOTAVAIL, ETIMEDOUT, HTTP_503, …). */
  errorCodes: Record<string, number>;
  startedAt: number;
  doneAt: number;
  /** connect() → TCP established: the kernel's and the accept queue's share of a connect. */
  tcpConnectMs: MsSummary;
  /** Connects that took ≥ 900 ms to establish: the signature of a dropped SYN retried after 1 s. */
  slowTcpConnects: number;
  /** TCP established → first frame: the server's share (request parsing, auth, snapshot). */
  firstFrameMs: MsSummary;
}

export interface CollectedReport {
  type: 'collected';
  /** Sparse latency histogram in whole milliseconds: [latencyMs, count]. */
  histogram: [number, number][];
  received: number;
  unknown: number;
  lastReceivedAt: number;
  /** Receipts not in sentAt whose version is below FANOUT_VERSION_BASE: [key, count, latest receipt]. */
  endToEnd: [number, number, number][];
  open: number;
}

export interface StormReport {
  type: 'storm';
  open: number;
  /** Streams closed by the server and not yet back with a first frame. */
  away: number;
  reconnectAttempts: number;
  /** Attempts that failed, by code. */
  failedAttempts: Record<string, number>;
  /** Latest time a stream came back with its first frame (0 if none did). */
  lastBackAt: number;
  /** Streams that came back at least once. */
  cameBack: number;
  /** Open streams per target index. */
  openPerTarget: number[];
  /** Per path index: the lowest and highest last version among its streams. */
  versions: [number, number, number][];
  /** Streams whose last version is below their path's final version (when finalVersions were given). */
  behind: number;
}

export type ClientReport =
  | ConnectedReport
  | CollectedReport
  | StormReport
  | { type: 'disconnected'; closed: number }
  | { type: 'closed' };

/** Versions published directly on NATS (or to nchan, Pushpin) start here; below are write-api's own. */
export const FANOUT_VERSION_BASE = 1_000_000;
const KEY_STRIDE = 10_000_000;

/** A receipt is counted per (path index, version): the e2e run watches 1,000 sessions on their own paths. */
export const receiptKey = (pathIndex: number, version: number) => pathIndex * KEY_STRIDE + version;

const VERSION_MARKER = Buffer.from('"version":');
const FRAME_END = Buffer.from('\n\n');
const HEADER_END = Buffer.from('\r\n\r\n');
const END_EVENT = Buffer.from('event: end');

interface Client {
  socket: Socket;
  pathIndex: number;
  targetIndex: number;
  headersDone: boolean;
  gotFirstFrame: boolean;
  carry: Buffer | undefined;
  /** Closed by this process (disconnect, close): never reconnected. */
  dropped: boolean;
  /** The server sent `event: end` on this connection. */
  ended: boolean;
  lastVersion: number;
  attempt: number;
  /** Closed by the server at this time and not back yet (0 when connected). */
  awaySince: number;
  cameBack: boolean;
}

/** receipts.get(key).get(receivedAtMs) = frames; a few hundred distinct milliseconds per key. */
let receipts = new Map<number, Map<number, number>>();
let lastReceivedAt = 0;
const clients = new Set<Client>();
const storm = {
  attempts: 0,
  failed: {} as Record<string, number>,
  lastBackAt: 0,
};

function record(key: number, now: number): void {
  let byTime = receipts.get(key);
  if (!byTime) {
    byTime = new Map();
    receipts.set(key, byTime);
  }
  byTime.set(now, (byTime.get(now) ?? 0) + 1);
  lastReceivedAt = now;
}

class HttpStatusError extends Error {
  constructor(readonly status: string) {
    super(`stream answered ${status}`);
  }
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
    if (status !== '200') throw new HttpStatusError(status);
    client.headersDone = true;
    data = data.subarray(end + 4);
  }
  const lastEnd = data.lastIndexOf(FRAME_END);
  if (lastEnd === -1) {
    if (data.length > 0) client.carry = Buffer.from(data);
    return 0;
  }
  if (lastEnd + 2 < data.length) client.carry = Buffer.from(data.subarray(lastEnd + 2));
  if (data.indexOf(END_EVENT) !== -1) client.ended = true;
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
    record(receiptKey(client.pathIndex, version), now);
    if (version > client.lastVersion) client.lastVersion = version;
    frames++;
    at = data.indexOf(VERSION_MARKER, position);
  }
  // Chunked transfer-encoding lines (nchan) carry no marker and are skipped by the search.
  return frames;
}

function errorCode(error: Error): string {
  if (error instanceof HttpStatusError) return `HTTP_${error.status}`;
  return (error as NodeJS.ErrnoException).code ?? error.message;
}

class MsHistogram {
  private readonly counts = new Map<number, number>();
  private total = 0;

  add(ms: number): void {
    const bucket = Math.max(0, Math.round(ms));
    this.counts.set(bucket, (this.counts.get(bucket) ?? 0) + 1);
    this.total++;
  }

  summary(): MsSummary {
    const entries = [...this.counts].sort((a, b) => a[0] - b[0]);
    const at = (p: number) => {
      const rank = Math.ceil((p / 100) * this.total);
      let seen = 0;
      for (const [ms, count] of entries) {
        seen += count;
        if (seen >= rank) return ms;
      }
      return Number.NaN;
    };
    return {
      count: this.total,
      p50: at(50),
      p99: at(99),
      max: entries[entries.length - 1]?.[0] ?? Number.NaN,
    };
  }
}

function requestBytes(command: ConnectCommand, pathIndex: number, target: Target): Buffer {
  const path = command.paths[pathIndex] as string;
  const headers = Object.entries({ ...command.headers, ...command.pathHeaders?.[pathIndex] })
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');
  return Buffer.from(`GET ${path} HTTP/1.1\r\nHost: ${target.host}:${target.port}\r\n${headers}\r\n`);
}

function connectAll(command: ConnectCommand): void {
  const startedAt = Date.now();
  const errors: string[] = [];
  const errorCodes: Record<string, number> = {};
  const tcpConnect = new MsHistogram();
  const firstFrame = new MsHistogram();
  let slowTcpConnects = 0;
  let started = 0;
  let opened = 0;
  let failed = 0;
  const requests = new Map<string, Buffer>();
  const requestFor = (pathIndex: number, targetIndex: number) => {
    const key = `${pathIndex}:${targetIndex}`;
    let bytes = requests.get(key);
    if (!bytes) {
      bytes = requestBytes(command, pathIndex, command.targets[targetIndex] as Target);
      requests.set(key, bytes);
    }
    return bytes;
  };
  let finished = false;
  const finish = () => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    send({
      type: 'connected',
      opened,
      failed,
      errors: errors.slice(0, 5),
      errorCodes,
      startedAt,
      doneAt: Date.now(),
      tcpConnectMs: tcpConnect.summary(),
      slowTcpConnects,
      firstFrameMs: firstFrame.summary(),
    });
  };
  const timer = setTimeout(finish, command.timeoutMs);
  const settleOne = (error?: Error) => {
    if (finished) return;
    if (!error) opened++;
    else {
      failed++;
      const code = errorCode(error);
      errorCodes[code] = (errorCodes[code] ?? 0) + 1;
      if (errors.length < 5) errors.push(error.message);
    }
    if (opened + failed === command.count) finish();
    else if (started < command.count) openNext();
  };

  /** Opens (or re-opens) one client's connection; onSettled runs once, at its first frame or failure. */
  const open = (client: Client, localAddress: string, onSettled: (error?: Error) => void) => {
    const target = command.targets[client.targetIndex] as Target;
    const connectStartedAt = Date.now();
    let connectedAt = 0;
    let settled = false;
    const settle = (error?: Error) => {
      if (settled) return;
      settled = true;
      onSettled(error);
    };
    client.headersDone = false;
    client.gotFirstFrame = false;
    client.carry = undefined;
    client.ended = false;
    const socket = connect({ host: target.host, port: target.port, localAddress });
    client.socket = socket;
    socket.setNoDelay(true);
    socket.on('connect', () => {
      connectedAt = Date.now();
      const tookMs = connectedAt - connectStartedAt;
      tcpConnect.add(tookMs);
      if (tookMs >= 900) slowTcpConnects++;
      socket.write(requestFor(client.pathIndex, client.targetIndex));
    });
    socket.on('data', (chunk: Buffer) => {
      const now = Date.now();
      let frames: number;
      try {
        frames = consume(client, chunk, now);
      } catch (error) {
        socket.destroy();
        settle(error as Error);
        return;
      }
      if (!client.gotFirstFrame && frames > 0) {
        client.gotFirstFrame = true;
        firstFrame.add(now - connectedAt);
        settle();
      }
    });
    socket.on('error', (error) => settle(error));
    socket.on('close', () => {
      settle(new Error('closed before the first frame'));
      if (client.dropped) {
        clients.delete(client);
        return;
      }
      if (command.reconnect && client.gotFirstFrame) {
        client.awaySince = Date.now();
        scheduleReconnect(client, localAddress, client.ended ? 'end' : 'failure');
      } else if (!command.reconnect || !client.awaySince) {
        clients.delete(client);
      }
    });
  };

  const scheduleReconnect = (client: Client, localAddress: string, reason: 'end' | 'failure') => {
    const options = command.reconnect;
    if (!options || client.dropped) return;
    const delay =
      reason === 'end'
        ? Math.random() * options.endDelayMs
        : Math.random() * Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** client.attempt);
    client.attempt = reason === 'end' ? 0 : client.attempt + 1;
    setTimeout(() => {
      if (client.dropped) return;
      client.targetIndex = (client.targetIndex + 1) % command.targets.length;
      storm.attempts++;
      open(client, localAddress, (error) => {
        if (error) {
          const code = errorCode(error);
          storm.failed[code] = (storm.failed[code] ?? 0) + 1;
          if (!client.socket.destroyed) client.socket.destroy();
          // 'close' of a connection without a first frame schedules nothing: retry from here.
          scheduleReconnect(client, localAddress, 'failure');
          return;
        }
        client.attempt = 0;
        client.awaySince = 0;
        client.cameBack = true;
        storm.lastBackAt = Date.now();
      });
    }, delay).unref();
  };

  const openNext = () => {
    const index = command.firstIndex + started++;
    const client: Client = {
      socket: undefined as unknown as Socket,
      pathIndex: index % command.paths.length,
      targetIndex: Math.floor(index / command.paths.length) % command.targets.length,
      headersDone: false,
      gotFirstFrame: false,
      carry: undefined,
      dropped: false,
      ended: false,
      lastVersion: 0,
      attempt: 0,
      awaySince: 0,
      cameBack: false,
    };
    clients.add(client);
    open(client, command.localAddresses[index % command.localAddresses.length] as string, settleOne);
  };
  for (let index = 0; index < Math.min(command.concurrency, command.count); index++) openNext();
}

function collect(sentAt: [number, number][]): CollectedReport {
  const sent = new Map(sentAt);
  const histogram = new Map<number, number>();
  const endToEnd: [number, number, number][] = [];
  let received = 0;
  let unknown = 0;
  for (const [key, byTime] of receipts) {
    const publishedAt = sent.get(key);
    if (publishedAt === undefined) {
      if (key % KEY_STRIDE < FANOUT_VERSION_BASE) {
        let count = 0;
        let latest = 0;
        for (const [time, frames] of byTime) {
          count += frames;
          latest = Math.max(latest, time);
        }
        endToEnd.push([key, count, latest]);
      } else {
        for (const frames of byTime.values()) unknown += frames;
      }
      continue;
    }
    for (const [time, frames] of byTime) {
      const latency = Math.max(0, time - publishedAt);
      histogram.set(latency, (histogram.get(latency) ?? 0) + frames);
      received += frames;
    }
  }
  let open = 0;
  for (const client of clients) if (!client.awaySince && !client.socket.destroyed) open++;
  return { type: 'collected', histogram: [...histogram], received, unknown, lastReceivedAt, endToEnd, open };
}

function stormReport(finalVersions: [number, number][] = []): StormReport {
  const finals = new Map(finalVersions);
  let behind = 0;
  const versions = new Map<number, [number, number]>();
  const openPerTarget: number[] = [];
  let open = 0;
  let away = 0;
  let cameBack = 0;
  for (const client of clients) {
    if (client.awaySince) away++;
    else if (!client.socket.destroyed && client.gotFirstFrame) {
      open++;
      openPerTarget[client.targetIndex] = (openPerTarget[client.targetIndex] ?? 0) + 1;
    }
    if (client.cameBack) cameBack++;
    if (client.lastVersion < (finals.get(client.pathIndex) ?? 0)) behind++;
    const range = versions.get(client.pathIndex);
    if (!range) versions.set(client.pathIndex, [client.lastVersion, client.lastVersion]);
    else {
      range[0] = Math.min(range[0], client.lastVersion);
      range[1] = Math.max(range[1], client.lastVersion);
    }
  }
  return {
    type: 'storm',
    open,
    away,
    reconnectAttempts: storm.attempts,
    failedAttempts: storm.failed,
    lastBackAt: storm.lastBackAt,
    cameBack,
    openPerTarget: Array.from(openPerTarget, (count) => count ?? 0),
    versions: [...versions].map(([pathIndex, [low, high]]) => [pathIndex, low, high]),
    behind,
  };
}

function dropAll(): number {
  let closed = 0;
  for (const client of clients) {
    client.dropped = true;
    if (!client.socket.destroyed) closed++;
    client.socket.destroy();
  }
  clients.clear();
  return closed;
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
      lastReceivedAt = 0;
      break;
    case 'collect':
      send(collect(command.sentAt));
      break;
    case 'storm':
      send(stormReport(command.finalVersions));
      break;
    case 'disconnect':
      send({ type: 'disconnected', closed: dropAll() });
      break;
    case 'close':
      dropAll();
      send({ type: 'closed' });
      process.disconnect?.();
      process.exit(0);
  }
});
