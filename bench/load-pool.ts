import { type ChildProcess, fork } from 'node:child_process';
import type {
  ClientCommand,
  ClientReport,
  ConnectCommand,
  ConnectedReport,
  MsSummary,
} from './gateway-client.js';
import { round } from './stats.js';
import { counterDelta, readTcpCounters, type TcpCounters, timeWaitSockets } from './tcp-counters.js';

/** The load-client processes (bench/gateway-client.ts) and the connect waves they run together. */
export class ClientPool {
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

/**
 * Load client p binds to 127.0.(10+p).1 … 127.0.(10+p).n (every 127.x address is loopback on Linux).
 * With one address per process, connects of a third wave of 10,000 (20,000 of the earlier waves' ports in
 * TIME_WAIT on 4 addresses) took ≥ 900 ms a thousand times over, up to 6 s, with no SYN retransmit or
 * listen overflow: the client's port allocation, not the server. 8 addresses per process still showed a
 * few such connects with 20,000 sockets in TIME_WAIT; 32 keeps a wave's share far below that.
 */
export const SOURCE_ADDRESSES_PER_PROCESS = 32;

export const sourceAddresses = (process: number, perProcess: number) =>
  Array.from({ length: perProcess }, (_, index) => `127.0.${10 + process}.${1 + index}`);

/** The load clients' source addresses (127.0.10.x and up); 127.0.0.1 is everyone else's on this machine. */
const isLoadClientAddress = (octets: number[]) =>
  octets[0] === 127 && octets[1] === 0 && (octets[2] ?? 0) >= 10;

export interface WaveResult {
  wave: number;
  opened: number;
  failed: number;
  /** From the first connect() to the last stream's first frame (or failure). */
  seconds: number;
  perSecond: number;
  errors: string[];
  errorCodes: Record<string, number>;
  /** Worst client process's figures (the wave is as slow as its slowest process). */
  tcpConnectMs: MsSummary;
  firstFrameMs: MsSummary;
  slowTcpConnects: number;
  /** Load-client sockets in TIME_WAIT when the wave started (earlier waves' closed streams). */
  timeWaitAtStart: number;
  /** Kernel TCP counters over the wave (whole network namespace: an upper bound for this wave's share). */
  tcp: TcpCounters;
  /** Server-side counters over the wave, where the target exposes them (snapshot calls, …). */
  server?: Record<string, number>;
  /** The server process's own view of the wave (event-loop delay, GC), where the target has a probe. */
  serverProbe?: unknown;
}

export interface WaveSpec {
  wave: number;
  command: (index: number) => ConnectCommand;
  /** Server-side counters read before and after the wave; the result holds their difference. */
  serverCounters?: () => Promise<Record<string, number>>;
  /** Ends a phase of the server's probe: called before the wave (discarded) and after it. */
  serverProbe?: () => Promise<unknown>;
}

const maxOf = (values: number[]) => {
  const finite = values.filter(Number.isFinite);
  return finite.length === 0 ? Number.NaN : Math.max(...finite);
};

const worst = (summaries: MsSummary[]): MsSummary => ({
  count: summaries.reduce((sum, summary) => sum + summary.count, 0),
  p50: maxOf(summaries.map((summary) => summary.p50)),
  p99: maxOf(summaries.map((summary) => summary.p99)),
  max: maxOf(summaries.map((summary) => summary.max)),
});

export async function connectWave(pool: ClientPool, spec: WaveSpec): Promise<WaveResult> {
  const timeWaitAtStart = await timeWaitSockets(isLoadClientAddress);
  await spec.serverProbe?.();
  const serverBefore = await spec.serverCounters?.();
  const tcpBefore = await readTcpCounters();
  const reports = await pool.ask<ConnectedReport>(spec.command);
  const tcp = counterDelta(tcpBefore, await readTcpCounters());
  const serverAfter = serverBefore && (await spec.serverCounters?.());
  const serverProbe = await spec.serverProbe?.();
  const opened = reports.reduce((sum, report) => sum + report.opened, 0);
  const seconds =
    (Math.max(...reports.map((report) => report.doneAt)) -
      Math.min(...reports.map((report) => report.startedAt))) /
    1000;
  const errorCodes: Record<string, number> = {};
  for (const report of reports)
    for (const [code, count] of Object.entries(report.errorCodes))
      errorCodes[code] = (errorCodes[code] ?? 0) + count;
  return {
    wave: spec.wave,
    opened,
    failed: reports.reduce((sum, report) => sum + report.failed, 0),
    seconds: round(seconds, 2),
    perSecond: round(opened / seconds, 0),
    errors: reports.flatMap((report) => report.errors).slice(0, 5),
    errorCodes,
    tcpConnectMs: worst(reports.map((report) => report.tcpConnectMs)),
    firstFrameMs: worst(reports.map((report) => report.firstFrameMs)),
    slowTcpConnects: reports.reduce((sum, report) => sum + report.slowTcpConnects, 0),
    timeWaitAtStart,
    tcp,
    ...(serverProbe !== undefined && { serverProbe }),
    ...(serverBefore &&
      serverAfter && {
        server: Object.fromEntries(
          Object.entries(serverAfter).map(([name, value]) => [name, value - (serverBefore[name] ?? 0)]),
        ),
      }),
  };
}
