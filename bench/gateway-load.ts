import { type ChildProcess, fork } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { type ClientCommand, type ClientReport, FANOUT_VERSION_BASE } from './gateway-client.js';
import { round } from './stats.js';

/**
 * The fan-out load driver shared by the gateway and nchan runs: the same client processes, the same
 * connect phase, the same idle-memory reading and the same rising publish rates, so the two columns of
 * the result compare like with like. The target only says where to connect and how to publish.
 */

export interface FanoutTarget {
  name: string;
  host: string;
  port: number;
  /** Request path and query of one subscriber stream. */
  path: string;
  headers: Record<string, string>;
  /** Processes whose memory and CPU are the server's (the gateway; nginx's workers). */
  pids(): number[];
  /** Publishes one update; `sentAt` (ms epoch) is what the latency is measured from. */
  publish(version: number, sentAt: number): void | Promise<void>;
  /** Lets the server return what it can before memory is read (a forced GC where one exists). */
  settle?(): Promise<void>;
}

export interface FanoutOptions {
  clients: number;
  clientProcesses: number;
  /** Updates per second, each delivered to every client. */
  rates: number[];
  stepMs: number;
  /** Updates at the first rate before the measured steps, for both servers alike: JIT and caches warm. */
  warmupMs: number;
  /** Quiet time before memory is read. */
  quietMs: number;
  connectConcurrency: number;
}

export interface RateResult {
  updatesPerSecond: number;
  /** Updates actually published per second: below updatesPerSecond when the publisher fell behind. */
  achievedUpdatesPerSecond: number;
  offeredDeliveriesPerSecond: number;
  published: number;
  expected: number;
  received: number;
  /** Frames received over the time from the first publish to the last receipt (or the step, if longer). */
  deliveriesPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  /** Server CPU over the step, in % of one core. */
  serverCpuPercent: number;
}

export interface FanoutResult {
  target: string;
  clients: number;
  connect: { opened: number; failed: number; seconds: number; perSecond: number; errors: string[] };
  memory: { idleKiB: number; withClientsKiB: number; perConnectionKiB: number };
  rates: RateResult[];
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function vmRssKiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const match = status.match(/^VmRSS:\s+(\d+) kB/m);
  if (!match) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(match[1]);
}

/** utime + stime of a process in clock ticks (100 per second on Linux). */
async function cpuTicks(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

const sumOver = async (pids: number[], read: (pid: number) => Promise<number>) =>
  (await Promise.all(pids.map(read))).reduce((total, value) => total + value, 0);

class ClientPool {
  private readonly waiting = new Map<ChildProcess, (report: ClientReport) => void>();

  private constructor(readonly workers: ChildProcess[]) {
    for (const worker of workers) {
      worker.on('message', (report: ClientReport) => {
        const resolve = this.waiting.get(worker);
        this.waiting.delete(worker);
        resolve?.(report);
      });
    }
  }

  static start(count: number): ClientPool {
    const entry = new URL('./gateway-client.ts', import.meta.url).pathname;
    return new ClientPool(
      Array.from({ length: count }, () =>
        fork(entry, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }),
      ),
    );
  }

  /** Sends one command to each worker and resolves with each worker's answer. */
  ask<T extends ClientReport>(command: (index: number) => ClientCommand): Promise<T[]> {
    return Promise.all(
      this.workers.map(
        (worker, index) =>
          new Promise<T>((resolve, reject) => {
            const exited = (code: number | null) =>
              reject(new Error(`load client ${index} exited with ${code}`));
            worker.once('exit', exited);
            this.waiting.set(worker, (report: ClientReport) => {
              worker.off('exit', exited);
              resolve(report as T);
            });
            worker.send(command(index));
          }),
      ),
    );
  }

  tell(command: ClientCommand): void {
    for (const worker of this.workers) worker.send(command);
  }

  async close(): Promise<void> {
    await Promise.all(
      this.workers.map(
        (worker) =>
          new Promise<void>((resolve) => {
            if (worker.exitCode !== null || worker.signalCode !== null) return resolve();
            const timer = setTimeout(() => worker.kill('SIGKILL'), 5000);
            worker.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            if (worker.connected) worker.send({ type: 'close' } satisfies ClientCommand);
            else worker.kill('SIGKILL');
          }),
      ),
    );
  }
}

async function readMemory(target: FanoutTarget, quietMs: number): Promise<number> {
  await sleep(quietMs);
  await target.settle?.();
  await sleep(500);
  return sumOver(target.pids(), vmRssKiB);
}

type Collected = Extract<ClientReport, { type: 'collected' }>;

/** Publishes at one rate for stepMs, waits for the deliveries (bounded), and summarises their latency. */
async function runRate(
  target: FanoutTarget,
  pool: ClientPool,
  clients: number,
  rate: number,
  stepMs: number,
  firstVersion: number,
): Promise<{ result: RateResult; nextVersion: number }> {
  pool.tell({ type: 'reset' });
  const sentAt: [number, number][] = [];
  const ticksBefore = await sumOver(target.pids(), cpuTicks);
  const intervalMs = 1000 / rate;
  const total = Math.max(1, Math.round((rate * stepMs) / 1000));
  const startedAt = Date.now();
  for (let index = 0; index < total; index++) {
    const due = startedAt + index * intervalMs;
    const wait = due - Date.now();
    if (wait > 0) await sleep(wait);
    const version = firstVersion + index;
    const now = Date.now();
    sentAt.push([version, now]);
    await target.publish(version, now);
  }
  // A publisher that waits for its server (nchan's HTTP publish) can fall behind the schedule.
  const publishingMs = Date.now() - startedAt;
  const expected = total * clients;
  // Deliveries still in flight: wait until all arrived, at most 10 s more.
  let collected: Collected[] = [];
  const deadline = Date.now() + 10_000;
  for (;;) {
    await sleep(Date.now() - startedAt < stepMs ? 250 : 500);
    collected = await pool.ask<Collected>(() => ({ type: 'collect', sentAt }));
    const received = collected.reduce((sum, report) => sum + report.received, 0);
    if (received >= expected || Date.now() > deadline) break;
  }
  const ticksAfter = await sumOver(target.pids(), cpuTicks);
  const elapsedMs = Date.now() - startedAt;

  const histogram = new Map<number, number>();
  let received = 0;
  let lastReceivedAt = 0;
  for (const report of collected) {
    received += report.received;
    lastReceivedAt = Math.max(lastReceivedAt, report.lastReceivedAt);
    for (const [latency, count] of report.histogram)
      histogram.set(latency, (histogram.get(latency) ?? 0) + count);
  }
  const activeMs = Math.max(stepMs, lastReceivedAt - startedAt);
  const result: RateResult = {
    updatesPerSecond: rate,
    achievedUpdatesPerSecond: total > 1 ? round(((total - 1) * 1000) / publishingMs, 1) : rate,
    offeredDeliveriesPerSecond: rate * clients,
    published: total,
    expected,
    received,
    deliveriesPerSecond: round(received / (activeMs / 1000), 0),
    ...latencyPercentiles(histogram),
    serverCpuPercent: round(((ticksAfter - ticksBefore) / 100 / (elapsedMs / 1000)) * 100, 0),
  };
  return { result, nextVersion: firstVersion + total };
}

function latencyPercentiles(histogram: Map<number, number>) {
  const entries = [...histogram].sort((a, b) => a[0] - b[0]);
  const total = entries.reduce((sum, [, count]) => sum + count, 0);
  const at = (p: number) => {
    if (total === 0) return Number.NaN;
    const rank = Math.ceil((p / 100) * total);
    let seen = 0;
    for (const [latency, count] of entries) {
      seen += count;
      if (seen >= rank) return latency;
    }
    return entries[entries.length - 1]?.[0] ?? Number.NaN;
  };
  return {
    p50Ms: at(50),
    p99Ms: at(99),
    p999Ms: at(99.9),
    maxMs: entries[entries.length - 1]?.[0] ?? Number.NaN,
  };
}

export interface FanoutSession {
  result: FanoutResult;
  /** Frames of write-api's own versions seen since the last reset, summed over the client processes. */
  endToEnd(): Promise<Map<number, { count: number; latestAt: number }>>;
  close(): Promise<void>;
}

/**
 * Connects the clients, reads idle memory, runs every rate, and leaves the clients connected so the
 * caller can check end-to-end deliveries; close() disconnects them.
 */
export async function runFanout(target: FanoutTarget, options: FanoutOptions): Promise<FanoutSession> {
  const pool = ClientPool.start(options.clientProcesses);
  try {
    const idleKiB = await readMemory(target, options.quietMs);
    const perProcess = Math.ceil(options.clients / options.clientProcesses);
    console.log(`${target.name}: opening ${options.clients} streams`);
    const connected = await pool.ask<Extract<ClientReport, { type: 'connected' }>>((index) => ({
      type: 'connect',
      host: target.host,
      port: target.port,
      path: target.path,
      headers: target.headers,
      count: Math.min(perProcess, options.clients - index * perProcess),
      localAddress: `127.0.0.${10 + index}`,
      concurrency: Math.ceil(options.connectConcurrency / options.clientProcesses),
      timeoutMs: 60_000,
    }));
    const opened = connected.reduce((sum, report) => sum + report.opened, 0);
    const failed = connected.reduce((sum, report) => sum + report.failed, 0);
    const seconds =
      (Math.max(...connected.map((report) => report.doneAt)) -
        Math.min(...connected.map((report) => report.startedAt))) /
      1000;
    const connect = {
      opened,
      failed,
      seconds: round(seconds, 2),
      perSecond: round(opened / seconds, 0),
      errors: connected.flatMap((report) => report.errors).slice(0, 5),
    };
    console.log(`${target.name}: ${JSON.stringify(connect)}`);
    const withClientsKiB = await readMemory(target, options.quietMs);
    const memory = {
      idleKiB,
      withClientsKiB,
      perConnectionKiB: round((withClientsKiB - idleKiB) / Math.max(1, opened), 2),
    };
    console.log(`${target.name}: memory ${JSON.stringify(memory)}`);

    const rates: RateResult[] = [];
    let version = FANOUT_VERSION_BASE + 1;
    if (options.warmupMs > 0) {
      const warmup = await runRate(target, pool, opened, options.rates[0] ?? 1, options.warmupMs, version);
      version = warmup.nextVersion;
      console.log(`${target.name}: warm-up ${JSON.stringify(warmup.result)}`);
    }
    for (const rate of options.rates) {
      const step = await runRate(target, pool, opened, rate, options.stepMs, version);
      version = step.nextVersion;
      console.log(`${target.name}: ${JSON.stringify(step.result)}`);
      rates.push(step.result);
    }
    pool.tell({ type: 'reset' });
    return {
      result: { target: target.name, clients: options.clients, connect, memory, rates },
      endToEnd: async () => {
        const reports = await pool.ask<Collected>(() => ({ type: 'collect', sentAt: [] }));
        const merged = new Map<number, { count: number; latestAt: number }>();
        for (const report of reports) {
          for (const [version, count, latestAt] of report.endToEnd) {
            const entry = merged.get(version) ?? { count: 0, latestAt: 0 };
            entry.count += count;
            entry.latestAt = Math.max(entry.latestAt, latestAt);
            merged.set(version, entry);
          }
        }
        return merged;
      },
      close: () => pool.close(),
    };
  } catch (error) {
    await pool.close();
    throw error;
  }
}
