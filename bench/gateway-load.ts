import { type CollectedReport, FANOUT_VERSION_BASE } from './gateway-client.js';
import { ClientPool, connectWave, sourceAddresses, type WaveResult } from './load-pool.js';
import { cpuTicks, sleep, sumOver, TICKS_PER_SECOND, vmRssKiB } from './proc-stats.js';
import { histogramPercentiles, round } from './stats.js';

/**
 * The fan-out load driver shared by the gateway, nchan and Pushpin runs: the same client processes, the
 * same connect waves, the same idle-memory reading and the same rising publish rates, so the columns of
 * the result compare like with like. The target only says where to connect and how to publish.
 *
 * Waves: the clients connect (wave 1), idle memory is read, the first rate runs; then every stream is
 * closed and the clients connect again into the same server process (wave 2) for the next rate, and so
 * on. A later wave meets whatever the earlier ones left behind: in the server (caches, heap, timers) and
 * in the kernel (the clients' TIME_WAIT ports), which is why each wave reports the kernel's counters.
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
  /** Server-side counters (e.g. snapshot calls) whose change over each connect wave is reported. */
  serverCounters?(): Promise<Record<string, number>>;
  /** Ends a phase of the server's own probe and returns what it saw (see bench/process-probe.ts). */
  probe?(): Promise<unknown>;
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
  /** Connect waves into the same server process; rate i runs in wave min(i, waves - 1). */
  waves: number;
  /** Quiet time between closing one wave's streams and opening the next. */
  waveGapMs: number;
  /** Loopback source addresses per client process (1 reproduces a client that binds one address). */
  sourceAddressesPerProcess: number;
}

export interface RateResult {
  /** The connect wave whose streams received this step. */
  wave: number;
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
  /** The server process's own view of the step (event-loop delay, GC, CPU profile), where it has a probe. */
  serverProbe?: unknown;
}

export interface FanoutResult {
  target: string;
  clients: number;
  /** The first wave, as earlier results reported it. */
  connect: { opened: number; failed: number; seconds: number; perSecond: number; errors: string[] };
  waves: WaveResult[];
  memory: { idleKiB: number; withClientsKiB: number; perConnectionKiB: number };
  rates: RateResult[];
}

async function readMemory(target: FanoutTarget, quietMs: number): Promise<number> {
  await sleep(quietMs);
  await target.settle?.();
  await sleep(500);
  return sumOver(target.pids(), vmRssKiB);
}

type Collected = CollectedReport;

/** Publishes at one rate for stepMs, waits for the deliveries (bounded), and summarises their latency. */
async function runRate(
  target: FanoutTarget,
  pool: ClientPool,
  clients: number,
  rate: number,
  stepMs: number,
  firstVersion: number,
  wave: number,
): Promise<{ result: RateResult; nextVersion: number }> {
  pool.tell({ type: 'reset' });
  await target.probe?.();
  const sentAt: [number, number][] = [];
  const ticksBefore = await sumOver(target.pids(), cpuTicks);
  const intervalMs = 1000 / rate;
  const total = Math.max(1, Math.round((rate * stepMs) / 1000));
  const startedAt = Date.now();
  // Every system is offered the same schedule: a publish is not held back until the previous one was
  // answered (nchan answers its HTTP publish once it has handed the message to its subscribers, which
  // held its publisher to 7 of 10 updates/s and flattered its latency).
  const publishes: Promise<void>[] = [];
  for (let index = 0; index < total; index++) {
    const due = startedAt + index * intervalMs;
    const wait = due - Date.now();
    if (wait > 0) await sleep(wait);
    const version = firstVersion + index;
    const now = Date.now();
    sentAt.push([version, now]);
    publishes.push(Promise.resolve(target.publish(version, now)));
  }
  const publishingMs = Date.now() - startedAt;
  await Promise.all(publishes);
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
  const serverProbe = await target.probe?.();

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
    wave,
    updatesPerSecond: rate,
    achievedUpdatesPerSecond: total > 1 ? round(((total - 1) * 1000) / publishingMs, 1) : rate,
    offeredDeliveriesPerSecond: rate * clients,
    published: total,
    expected,
    received,
    deliveriesPerSecond: round(received / (activeMs / 1000), 0),
    ...histogramPercentiles(histogram),
    serverCpuPercent: round(((ticksAfter - ticksBefore) / TICKS_PER_SECOND / (elapsedMs / 1000)) * 100, 0),
    ...(serverProbe !== undefined && { serverProbe }),
  };
  return { result, nextVersion: firstVersion + total };
}

export interface FanoutSession {
  result: FanoutResult;
  /** Frames of write-api's own versions seen since the last reset, summed over the client processes. */
  endToEnd(): Promise<Map<number, { count: number; latestAt: number }>>;
  close(): Promise<void>;
}

/**
 * Runs the connect waves and the rates, and leaves the last wave connected so the caller can check
 * end-to-end deliveries; close() disconnects them.
 */
export async function runFanout(target: FanoutTarget, options: FanoutOptions): Promise<FanoutSession> {
  const pool = ClientPool.start(options.clientProcesses);
  try {
    const idleKiB = await readMemory(target, options.quietMs);
    const perProcess = Math.ceil(options.clients / options.clientProcesses);
    const waveCount = Math.max(1, options.waves);
    const waves: WaveResult[] = [];
    const rates: RateResult[] = [];
    let memory: FanoutResult['memory'] | undefined;
    let version = FANOUT_VERSION_BASE + 1;
    for (let wave = 1; wave <= waveCount; wave++) {
      if (wave > 1) {
        await pool.ask(() => ({ type: 'disconnect' }));
        await sleep(options.waveGapMs);
      }
      console.log(`${target.name}: wave ${wave}: opening ${options.clients} streams`);
      const result = await connectWave(pool, {
        wave,
        serverCounters: target.serverCounters?.bind(target),
        serverProbe: target.probe?.bind(target),
        command: (index) => ({
          type: 'connect',
          targets: [{ host: target.host, port: target.port }],
          paths: [target.path],
          headers: target.headers,
          firstIndex: index * perProcess,
          count: Math.max(0, Math.min(perProcess, options.clients - index * perProcess)),
          localAddresses: sourceAddresses(index, options.sourceAddressesPerProcess),
          concurrency: Math.ceil(options.connectConcurrency / options.clientProcesses),
          timeoutMs: 60_000,
        }),
      });
      console.log(`${target.name}: ${JSON.stringify(result)}`);
      waves.push(result);
      if (wave === 1) {
        const withClientsKiB = await readMemory(target, options.quietMs);
        memory = {
          idleKiB,
          withClientsKiB,
          perConnectionKiB: round((withClientsKiB - idleKiB) / Math.max(1, result.opened), 2),
        };
        console.log(`${target.name}: memory ${JSON.stringify(memory)}`);
        if (options.warmupMs > 0) {
          const warmup = await runRate(
            target,
            pool,
            result.opened,
            options.rates[0] ?? 1,
            options.warmupMs,
            version,
            wave,
          );
          version = warmup.nextVersion;
          console.log(`${target.name}: warm-up ${JSON.stringify(warmup.result)}`);
        }
      }
      const waveRates = options.rates.filter((_, index) => Math.min(index, waveCount - 1) === wave - 1);
      for (const rate of waveRates) {
        const step = await runRate(target, pool, result.opened, rate, options.stepMs, version, wave);
        version = step.nextVersion;
        console.log(`${target.name}: ${JSON.stringify(step.result)}`);
        rates.push(step.result);
      }
    }
    pool.tell({ type: 'reset' });
    const first = waves[0] as WaveResult;
    return {
      result: {
        target: target.name,
        clients: options.clients,
        connect: {
          opened: first.opened,
          failed: first.failed,
          seconds: first.seconds,
          perSecond: first.perSecond,
          errors: first.errors,
        },
        waves,
        memory: memory as FanoutResult['memory'],
        rates,
      },
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
