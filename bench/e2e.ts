import { streamUrl } from '@wizard-stream/contracts';
import { addTeamMember, createApiKey, createUser } from '@wizard-stream/db';
import { type Cli, CliFleet } from './cli-fleet.js';
import { type CollectedReport, receiptKey } from './gateway-client.js';
import {
  ClientPool,
  connectWave,
  SOURCE_ADDRESSES_PER_PROCESS,
  sourceAddresses,
  type WaveResult,
} from './load-pool.js';
import { loadAverage, type Machine, machine } from './machine.js';
import { cpuTicks, sleep, sumOver, TICKS_PER_SECOND } from './proc-stats.js';
import { startStack } from './stack.js';
import { cellsOf, figure, histogramPercentiles, mergeHistogram, round } from './stats.js';

/**
 * The realistic end-to-end benchmark (issue 12, item 6): `sessions` wizard CLIs, each pushing its own
 * session through write-api every `pushIntervalMs` with its own API key over a keep-alive connection;
 * every session watched by `streamsPerSession` SSE streams (with the CLI user's key, as the dashboard of
 * that user would) spread over two stream-gateway processes. Latency is POST sent → frame received, per
 * push and stream, on the same clock. Default write-api settings, including its rate limit.
 */

export interface E2eOptions {
  sessions: number;
  streamsPerSession: number;
  pushIntervalMs: number;
  durationMs: number;
  clientProcesses: number;
}

export interface E2eResult {
  kind: 'e2e';
  date: string;
  machine: Machine;
  options: E2eOptions;
  connect: WaveResult;
  pushes: number;
  pushesPerSecond: number;
  expectedDeliveries: number;
  deliveries: number;
  latencyMs: { p50: number; p99: number; p999: number; max: number };
  /** CPU milliseconds per 1,000 deliveries, over the measured phase. */
  cpuMsPer1000Deliveries: { writeApi: number; gateways: number };
  cpuPercent: { writeApi: number; gateways: number };
  errors: {
    pushes: number;
    pushSamples: string[];
    connects: number;
    missingDeliveries: number;
    skippedPushes: number;
  };
  target: { p99Ms: number };
}

const WORKFLOW = 'bench-e2e';

export async function benchEndToEnd(options: E2eOptions): Promise<E2eResult> {
  const loadAverageAtStart = loadAverage();
  const stack = await startStack({
    gateways: 2,
    email: 'bench-e2e@example.com',
    gatewayEnv: { MAX_STREAMS: String(options.sessions * options.streamsPerSession * 2) },
  });
  let pool: ClientPool | undefined;
  let fleet: CliFleet | undefined;
  try {
    const { database, member, writeApi, gateways } = stack;
    const clis: Cli[] = [];
    for (let index = 0; index < options.sessions; index++) {
      const userId = await createUser(database.db, `cli-${index}@example.com`, `CLI ${index}`);
      await addTeamMember(database.db, member.teamId, userId);
      const { key } = await createApiKey(database.db, userId, [
        'wizard_session:read',
        'wizard_session:write',
      ]);
      clis.push({ apiKey: key, sessionId: `e2e-${index}`, workflowId: WORKFLOW, skillId: `skill-${index}` });
    }
    fleet = new CliFleet(writeApi.url, member.teamId, clis);
    await fleet.seed();

    pool = ClientPool.start(options.clientProcesses);
    const streams = options.sessions * options.streamsPerSession;
    const perProcess = Math.ceil(streams / options.clientProcesses);
    const paths = clis.map((cli) => {
      const url = new URL(streamUrl(gateways[0]?.url as string, member.teamId, WORKFLOW, cli.skillId));
      return `${url.pathname}${url.search}`;
    });
    console.log(`e2e: opening ${streams} streams on ${gateways.length} gateways`);
    const connect = await connectWave(pool, {
      wave: 1,
      command: (index) => ({
        type: 'connect',
        targets: gateways.map((gateway) => ({ host: '127.0.0.1', port: gateway.port })),
        paths,
        headers: { accept: 'text/event-stream' },
        pathHeaders: clis.map((cli) => ({ authorization: `Bearer ${cli.apiKey}` })),
        firstIndex: index * perProcess,
        count: Math.max(0, Math.min(perProcess, streams - index * perProcess)),
        localAddresses: sourceAddresses(index, SOURCE_ADDRESSES_PER_PROCESS),
        concurrency: 128,
        timeoutMs: 60_000,
      }),
    });
    console.log(`e2e: ${JSON.stringify(connect)}`);
    pool.tell({ type: 'reset' });

    const gatewayPids = gateways.map((gateway) => gateway.pid);
    const before = { writeApi: await cpuTicks(writeApi.pid), gateways: await sumOver(gatewayPids, cpuTicks) };
    const startedAt = Date.now();
    console.log(
      `e2e: ${options.sessions} CLIs pushing every ${options.pushIntervalMs} ms for ${options.durationMs} ms`,
    );
    const pushed = await fleet.run(options.pushIntervalMs, options.durationMs);
    const sentAt: [number, number][] = pushed.pushes.map((push) => [
      receiptKey(push.cli, push.version),
      push.sentAt,
    ]);
    const expectedDeliveries = pushed.pushes.length * options.streamsPerSession;
    let reports: CollectedReport[] = [];
    const deadline = Date.now() + 10_000;
    for (;;) {
      reports = await pool.ask<CollectedReport>(() => ({ type: 'collect', sentAt }));
      const received = reports.reduce((sum, report) => sum + report.received, 0);
      if (received >= expectedDeliveries || Date.now() > deadline) break;
      await sleep(250);
    }
    const elapsedSeconds = (Date.now() - startedAt) / 1000;
    const after = { writeApi: await cpuTicks(writeApi.pid), gateways: await sumOver(gatewayPids, cpuTicks) };

    const histogram = new Map<number, number>();
    for (const report of reports) mergeHistogram(histogram, report.histogram);
    const deliveries = reports.reduce((sum, report) => sum + report.received, 0);
    const latency = histogramPercentiles(histogram);
    const cpuMs = (ticks: number) => (ticks * 1000) / TICKS_PER_SECOND;
    const per1000 = (ticks: number) => round(cpuMs(ticks) / Math.max(1, deliveries / 1000), 1);
    const percent = (ticks: number) => round((cpuMs(ticks) / 1000 / elapsedSeconds) * 100, 0);
    return {
      kind: 'e2e',
      date: new Date().toISOString(),
      machine: machine(loadAverageAtStart),
      options,
      connect,
      pushes: pushed.pushes.length,
      pushesPerSecond: round(pushed.pushes.length / (options.durationMs / 1000), 0),
      expectedDeliveries,
      deliveries,
      latencyMs: { p50: latency.p50Ms, p99: latency.p99Ms, p999: latency.p999Ms, max: latency.maxMs },
      cpuMsPer1000Deliveries: {
        writeApi: per1000(after.writeApi - before.writeApi),
        gateways: per1000(after.gateways - before.gateways),
      },
      cpuPercent: {
        writeApi: percent(after.writeApi - before.writeApi),
        gateways: percent(after.gateways - before.gateways),
      },
      errors: {
        pushes: pushed.errors,
        pushSamples: pushed.errorSamples,
        connects: connect.failed,
        missingDeliveries: Math.max(0, expectedDeliveries - deliveries),
        skippedPushes: pushed.skipped,
      },
      target: { p99Ms: 100 },
    };
  } finally {
    fleet?.close();
    await pool?.close();
    await stack.close();
  }
}

/** One row per run, then the median and range of every figure over the runs. */
export function e2eMarkdown(results: E2eResult[]): string {
  const errorsOf = ({ errors }: E2eResult) => errors.pushes + errors.connects + errors.missingDeliveries;
  const row = (label: string, runs: E2eResult[], errors: string) => {
    const [pushes, deliveries, p50, p99, p999, max, writeApi, gateways, connectSeconds] = cellsOf(
      runs.map(figures),
    );
    return `| ${label} | ${pushes} | ${deliveries} | ${p50} / ${p99} / ${p999} / ${max} | ${writeApi} | ${gateways} | ${connectSeconds} | ${errors} |`;
  };
  const figures = (result: E2eResult) => [
    result.pushesPerSecond,
    result.deliveries,
    result.latencyMs.p50,
    result.latencyMs.p99,
    result.latencyMs.p999,
    result.latencyMs.max,
    result.cpuMsPer1000Deliveries.writeApi,
    result.cpuMsPer1000Deliveries.gateways,
    result.connect.seconds,
  ];
  const first = results[0] as E2eResult;
  return [
    `${first.options.sessions} sessions × ${first.options.streamsPerSession} streams on 2 gateways; ${results.length} run${results.length === 1 ? '' : 's'}, each a fresh stack. Target: p99 < ${first.target.p99Ms} ms, no errors.`,
    '',
    '| run | pushes/s | deliveries | POST → frame p50 / p99 / p999 / max ms | write-api CPU ms per 1,000 deliveries | gateways CPU ms per 1,000 deliveries | all streams opened in (s) | errors |',
    '|---|---:|---:|---:|---:|---:|---:|---|',
    ...results.map((result, index) => {
      const errors = errorsOf(result);
      const detail =
        errors > 0
          ? ` (pushes ${result.errors.pushes}, connects ${result.errors.connects}, missing ${result.errors.missingDeliveries})`
          : '';
      return row(
        `${index + 1} (load ${result.machine.loadAverageAtStart[0]})`,
        [result],
        `${errors} of ${result.expectedDeliveries} expected deliveries${detail}`,
      );
    }),
    ...(results.length > 1 ? [row('median (range)', results, figure(results.map(errorsOf)))] : []),
  ].join('\n');
}
