import { BusConnection, publishSession } from '@wizard-stream/bus';
import { sessionSubject, streamUrl } from '@wizard-stream/contracts';
import type { ServiceProcess } from '@wizard-stream/testkit';
import { type FanoutOptions, type FanoutResult, type FanoutTarget, runFanout } from './gateway-load.js';
import { benchNchan } from './gateway-nchan.js';
import { benchPushpin, type PushpinRun } from './gateway-pushpin.js';
import { loadAverage, type Machine, machine } from './machine.js';
import { metricSum, scrape } from './proc-stats.js';
import { probePhase } from './process-probe.js';
import { sessionBody, upsert, withVersion } from './sessions.js';
import { startStack } from './stack.js';
import { figure, round } from './stats.js';

/**
 * The fan-out benchmark (issues 3 and 12): one stream-gateway process, fed by its own nats-server and a
 * real write-api on a PostgreSQL bench database, against N raw SSE clients on one workflow; then
 * nginx + nchan and Pushpin with the same clients, waves and rates, one after the other in the same run.
 * Updates are published straight on NATS (docs/wire-format.md#nats headers, Wizard-Committed-At = send time) for
 * controlled rates; a few upserts through write-api check the whole path.
 */

export interface GatewayBenchOptions extends FanoutOptions {
  endToEndUpserts: number;
  /** Rounds of every system, one after the other: gateway, nchan, Pushpin, gateway, nchan, … */
  runs: number;
  /** Rounds that include Pushpin (the first ones): at 10,000 clients each costs minutes of timeouts. */
  pushpinRuns: number;
  /** false (`--gateway-only`): no peers, for profiling the gateway; not for the published tables. */
  peers: boolean;
}

export interface EndToEndResult {
  upserts: number;
  /** Per upsert: clients that received it, and the latest receipt after the POST was sent (ms). */
  delivered: { version: number; clients: number; lastClientMs: number }[];
  allDelivered: boolean;
}

export type NchanRun = FanoutResult & { workerProcesses: number; nginxVersion: string };

/** One round: each system measured once, with the same clients, waves and rates. */
export interface GatewayRound {
  loadAverageAtStart: number[];
  gateway: FanoutResult & { endToEnd: EndToEndResult };
  nchan: NchanRun | { error: string };
  pushpin?: PushpinRun | { error: string };
}

export interface GatewayBenchResult {
  kind: 'gateway-fanout';
  date: string;
  machine: Machine;
  options: GatewayBenchOptions;
  rounds: GatewayRound[];
}

const WORKFLOW = 'bench-fanout';

async function endToEnd(
  session: Awaited<ReturnType<typeof runFanout>>,
  writeApiUrl: string,
  teamId: number,
  apiKey: string,
  clients: number,
  upserts: number,
): Promise<EndToEndResult> {
  const postedAt = new Map<number, number>();
  for (let step = 1; step <= upserts; step++) {
    const sentAt = Date.now();
    const dto = JSON.parse(
      await upsert(writeApiUrl, teamId, apiKey, sessionBody('bench-e2e', WORKFLOW, 'e2e', step)),
    ) as {
      version: number;
    };
    postedAt.set(dto.version, sentAt);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const deadline = Date.now() + 10_000;
  let seen = await session.endToEnd();
  while (
    [...postedAt.keys()].some((version) => (seen.get(version)?.count ?? 0) < clients) &&
    Date.now() < deadline
  ) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    seen = await session.endToEnd();
  }
  const delivered = [...postedAt].map(([version, sentAt]) => {
    const entry = seen.get(version);
    return {
      version,
      clients: entry?.count ?? 0,
      lastClientMs: entry ? entry.latestAt - sentAt : Number.NaN,
    };
  });
  return { upserts, delivered, allDelivered: delivered.every((entry) => entry.clients === clients) };
}

async function benchGateway(
  options: GatewayBenchOptions,
): Promise<{ result: GatewayRound['gateway']; dto: string }> {
  const stack = await startStack({
    gateways: 1,
    email: 'bench-gateway@example.com',
    writeApiEnv: { RATE_LIMIT_PER_MIN: '1000000000' },
    gatewayEnv: {
      MAX_STREAMS: String(options.clients * 2),
      // Every bench client streams with the one member key: one tenant's wave, not the per-key cap.
      MAX_STREAMS_PER_KEY: String(options.clients * 2),
      ...(process.env.BENCH_HEAP_SNAPSHOT_DIR && {
        BENCH_HEAP_SNAPSHOT_DIR: process.env.BENCH_HEAP_SNAPSHOT_DIR,
      }),
      ...(process.env.BENCH_CPU_PROFILE_DIR && { BENCH_CPU_PROFILE_DIR: process.env.BENCH_CPU_PROFILE_DIR }),
    },
  });
  const { member, writeApi } = stack;
  const gateway = stack.gateways[0] as ServiceProcess;
  const bus = new BusConnection({ url: stack.nats.url, name: 'bench-publisher' });
  try {
    await bus.ready();

    // The session every client receives as its snapshot; live versions are published above it.
    const dto = await upsert(
      writeApi.url,
      member.teamId,
      member.apiKey,
      sessionBody('bench-fanout', WORKFLOW, 'load', 0),
    );
    const subject = sessionSubject(member.teamId, WORKFLOW, 'load');
    const url = new URL(streamUrl(gateway.url, member.teamId, WORKFLOW));
    const target: FanoutTarget = {
      name: 'stream-gateway',
      host: url.hostname,
      port: Number(url.port),
      path: `${url.pathname}${url.search}`,
      headers: { accept: 'text/event-stream', authorization: `Bearer ${member.apiKey}` },
      pids: () => [gateway.pid],
      // Per wave: the gateway's snapshot calls and the /latest/ reads write-api served for them.
      serverCounters: async () => {
        const [gatewayMetrics, writeApiMetrics] = await Promise.all([
          scrape(`${gateway.url}/metrics`),
          scrape(`${writeApi.url}/metrics`),
        ]);
        return {
          gatewaySnapshotCalls: metricSum(gatewayMetrics, 'wizard_gateway_snapshot_calls_total', {
            purpose: 'connect',
          }),
          writeApiLatestReads: writeApiMetrics
            .split('\n')
            .filter((line) => line.startsWith('wizard_http_requests_total{') && line.includes('latest'))
            .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0),
        };
      },
      probe: () => probePhase(gateway),
      publish: (version, sentAt) =>
        publishSession(bus, {
          subject,
          payload: withVersion(dto, version),
          sessionId: 'bench-fanout',
          version,
          committedAtMs: sentAt,
        }),
      settle: async () => {
        process.kill(gateway.pid, 'SIGUSR2');
      },
    };
    const session = await runFanout(target, options);
    try {
      const e2e = await endToEnd(
        session,
        writeApi.url,
        member.teamId,
        member.apiKey,
        session.result.connect.opened,
        options.endToEndUpserts,
      );
      console.log(`stream-gateway: end to end ${JSON.stringify(e2e)}`);
      if (process.env.BENCH_HEAP_SNAPSHOT_DIR)
        console.log(
          gateway
            .output()
            .split('\n')
            .filter((line) => line.startsWith('BENCH_MEMORY'))
            .join('\n'),
        );
      return { result: { ...session.result, endToEnd: e2e }, dto };
    } finally {
      await session.close();
    }
  } finally {
    await bus.close();
    await stack.close();
  }
}

async function peer<T>(name: string, run: () => Promise<T>): Promise<T | { error: string }> {
  try {
    return await run();
  } catch (error) {
    console.error(`${name} run failed: ${(error as Error).message}`);
    return { error: (error as Error).message };
  }
}

export async function benchFanout(options: GatewayBenchOptions): Promise<GatewayBenchResult> {
  const loadAverageAtStart = loadAverage();
  const rounds: GatewayRound[] = [];
  for (let round = 1; round <= options.runs; round++) {
    console.log(`gateway bench: round ${round} of ${options.runs}`);
    const roundLoad = loadAverage();
    const { result: gateway, dto } = await benchGateway(options);
    const dtoWithVersion = (version: number) => withVersion(dto, version);
    const nchan = options.peers
      ? await peer('nchan', () => benchNchan(options, dtoWithVersion))
      : { error: 'not run (--gateway-only)' };
    const pushpin =
      options.peers && round <= options.pushpinRuns
        ? await peer('pushpin', () => benchPushpin(options, dtoWithVersion))
        : undefined;
    rounds.push({ loadAverageAtStart: roundLoad, gateway, nchan, ...(pushpin && { pushpin }) });
  }
  return {
    kind: 'gateway-fanout',
    date: new Date().toISOString(),
    machine: machine(loadAverageAtStart),
    options,
    rounds,
  };
}

/** Each system's name and its run in a round. */
const SYSTEMS: [string, (round: GatewayRound) => FanoutResult | { error: string } | undefined][] = [
  ['stream-gateway', (round) => round.gateway],
  ['nginx + nchan', (round) => round.nchan],
  ['Pushpin', (round) => round.pushpin],
];

/** The runs of each system over the rounds (a failed run is left out and its error kept). */
function runsOf(result: GatewayBenchResult): { name: string; runs: FanoutResult[]; errors: string[] }[] {
  return SYSTEMS.map(([name, pick]) => {
    const runs: FanoutResult[] = [];
    const errors: string[] = [];
    for (const round of result.rounds) {
      const run = pick(round);
      if (run === undefined) continue;
      if ('error' in run) errors.push(run.error);
      else runs.push(run);
    }
    return { name, runs, errors };
  });
}

/** The docs tables: every system side by side, each figure the median and range over the rounds. */
export function gatewayMarkdown(result: GatewayBenchResult): string {
  if (!Array.isArray(result.rounds))
    return '_stored in an older format: run `npm run bench -- --only gateway`_';
  const systems = runsOf(result);
  const gateway = systems[0]?.runs[0];
  if (!gateway) return '_no gateway run stored_';
  const runCount = (runs: FanoutResult[]) => `${runs.length} run${runs.length === 1 ? '' : 's'}`;
  const rateRows = gateway.rates.flatMap((rate, index) =>
    systems
      .filter(({ runs }) => runs.length > 0)
      .map(({ name, runs }) => {
        const steps = runs.map((run) => run.rates[index]).filter((step) => step !== undefined);
        const short = steps.filter((step) => step.received < step.expected);
        const delivered =
          short.length === 0
            ? 'all'
            : `${figure(
                steps.map((step) => round((step.received / step.expected) * 100, 1)),
                ' %',
              )} (short in ${short.length} of ${steps.length})`;
        return `| ${rate.updatesPerSecond} (wave ${rate.wave}) | ${rate.offeredDeliveriesPerSecond} | ${name} (${runCount(runs)}) | ${figure(steps.map((step) => step.p50Ms))} | ${figure(steps.map((step) => step.p99Ms))} | ${figure(steps.map((step) => step.maxMs))} | ${delivered} | ${figure(
          steps.map((step) => step.serverCpuPercent),
          ' %',
        )} |`;
      }),
  );
  const waveRows = gateway.waves.map((wave, index) => {
    const cells = systems.map(({ runs }) => {
      const waves = runs.map((run) => run.waves[index]).filter((entry) => entry !== undefined);
      const failed = waves.reduce((sum, entry) => sum + entry.failed, 0);
      return waves.length === 0
        ? '–'
        : `${figure(
            waves.map((entry) => entry.seconds),
            ' s',
          )}${failed > 0 ? `, ${failed} failed in all` : ''}`;
    });
    const gatewayWaves = (systems[0]?.runs ?? []).map((run) => run.waves[index]);
    const calls = figure(gatewayWaves.map((entry) => entry?.server?.gatewaySnapshotCalls ?? Number.NaN));
    return `| ${wave.wave} | ${cells.join(' | ')} | ${calls} |`;
  });
  const memory = systems.map(({ runs }) =>
    figure(
      runs.map((run) => run.memory.perConnectionKiB),
      ' KiB',
    ),
  );
  const gatewayRuns = systems[0]?.runs ?? [];
  const allWaves = gatewayRuns.flatMap((run) => run.waves);
  const total = (counter: string) => allWaves.reduce((sum, wave) => sum + (wave.tcp[counter] ?? 0), 0);
  const errorCodes: Record<string, number> = {};
  for (const wave of allWaves)
    for (const [code, count] of Object.entries(wave.errorCodes))
      errorCodes[code] = (errorCodes[code] ?? 0) + count;
  const e2eRounds = result.rounds.map((entry) => entry.gateway.endToEnd);
  const pushpinSetup = result.rounds
    .map((entry) => entry.pushpin)
    .find((run): run is PushpinRun => run !== undefined && !('error' in run))?.setup;
  return [
    `Rounds: ${result.rounds.length} (load average at each round's start: ${result.rounds.map((entry) => entry.loadAverageAtStart[0]).join(', ')}). Each figure is the median over the rounds, with the range in brackets.`,
    '',
    '| updates/s | offered deliveries/s | system | p50 ms | p99 ms | max ms | delivered | server CPU |',
    '|---:|---:|---|---:|---:|---:|---:|---:|',
    ...rateRows,
    '',
    `| connect wave (all ${result.options.clients} streams open with their first frame) | ${systems.map(({ name }) => name).join(' | ')} | gateway snapshot calls |`,
    `|---:|${systems.map(() => '---:|').join('')}---:|`,
    ...waveRows,
    '',
    `| | ${systems.map(({ name }) => name).join(' | ')} | target |`,
    `|---|${systems.map(() => '---:|').join('')}---:|`,
    `| server RSS per idle connection | ${memory.join(' | ')} | ≤ 16 KiB |`,
    '',
    `Harness check over the gateway's ${allWaves.length} waves (kernel counters of the whole machine): TIME_WAIT at a wave's start up to ${Math.max(...allWaves.map((wave) => wave.timeWaitAtStart))}, ` +
      `SYN retransmits ${total('TcpExt.TCPSynRetrans')}, listen overflows ${total('TcpExt.ListenOverflows')}, connect errors ${JSON.stringify(errorCodes)}, ` +
      `TCP connect p99 ${figure(
        allWaves.map((wave) => wave.tcpConnectMs.p99),
        ' ms',
      )}, first frame after connect p50 ${figure(
        allWaves.map((wave) => wave.firstFrameMs.p50),
        ' ms',
      )}, p99 ${figure(
        allWaves.map((wave) => wave.firstFrameMs.p99),
        ' ms',
      )}.`,
    '',
    `End to end through write-api (${result.options.endToEndUpserts} upserts per round on another session of the same workflow): ` +
      (e2eRounds.every((entry) => entry.allDelivered)
        ? `in every round every upsert reached all ${gateway.waves.at(-1)?.opened} streams; the last stream had it ${figure(
            e2eRounds.flatMap((entry) => entry.delivered.map((item) => item.lastClientMs)),
            ' ms',
          )} after the POST was sent.`
        : `NOT every upsert reached every stream: ${e2eRounds.map((entry) => entry.delivered.map((item) => `v${item.version} ${item.clients}`).join(', ')).join('; ')}.`),
    ...(pushpinSetup
      ? [
          '',
          `Pushpin: ${pushpinSetup.version}, ${pushpinSetup.config}, changed lines: ${pushpinSetup.changedConfigLines.length === 0 ? 'none' : pushpinSetup.changedConfigLines.join('; ')}; ` +
            `started as \`${pushpinSetup.commandLine.join(' ')}\` with \`${pushpinSetup.zurlCommandLine.join(' ')}\`. ` +
            `Defaults that bound it here: ${Object.entries(pushpinSetup.defaults)
              .map(([name, value]) => `${name}=${value}`)
              .join(', ')}.`,
        ]
      : []),
    ...systems.flatMap(({ name, errors }) => errors.map((error) => `\n${name} run failed: ${error}`)),
  ].join('\n');
}
