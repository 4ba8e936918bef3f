import { BusConnection, publishSession } from '@wizard-stream/bus';
import { sessionSubject, streamUrl } from '@wizard-stream/contracts';
import type { ServiceProcess } from '@wizard-stream/testkit';
import { type FanoutOptions, type FanoutResult, type FanoutTarget, runFanout } from './gateway-load.js';
import { benchNchan } from './gateway-nchan.js';
import { benchPushpin, type PushpinRun } from './gateway-pushpin.js';
import type { WaveResult } from './load-pool.js';
import { loadAverage, type Machine, machine } from './machine.js';
import { metricSum, scrape } from './proc-stats.js';
import { probePhase } from './process-probe.js';
import { sessionBody, upsert, withVersion } from './sessions.js';
import { startStack } from './stack.js';
import { round } from './stats.js';

/**
 * The fan-out benchmark (issues 3 and 12): one stream-gateway process, fed by its own nats-server and a
 * real write-api on a PostgreSQL bench database, against N raw SSE clients on one workflow; then
 * nginx + nchan and Pushpin with the same clients, waves and rates, one after the other in the same run.
 * Updates are published straight on NATS (docs/wire-format.md#nats headers, Wizard-Committed-At = send time) for
 * controlled rates; a few upserts through write-api check the whole path.
 */

export interface GatewayBenchOptions extends FanoutOptions {
  endToEndUpserts: number;
}

export interface EndToEndResult {
  upserts: number;
  /** Per upsert: clients that received it, and the latest receipt after the POST was sent (ms). */
  delivered: { version: number; clients: number; lastClientMs: number }[];
  allDelivered: boolean;
}

export interface GatewayBenchResult {
  kind: 'gateway-fanout';
  date: string;
  machine: Machine;
  options: GatewayBenchOptions;
  gateway: FanoutResult & { endToEnd: EndToEndResult };
  nchan: (FanoutResult & { workerProcesses: number; nginxVersion: string }) | { error: string };
  pushpin?: PushpinRun | { error: string };
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
): Promise<{ result: GatewayBenchResult['gateway']; dto: string }> {
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
  const { result: gateway, dto } = await benchGateway(options);
  const nchan = await peer('nchan', () => benchNchan(options, (version) => withVersion(dto, version)));
  const pushpin = await peer('pushpin', () => benchPushpin(options, (version) => withVersion(dto, version)));
  return {
    kind: 'gateway-fanout',
    date: new Date().toISOString(),
    machine: machine(loadAverageAtStart),
    options,
    gateway,
    nchan,
    pushpin,
  };
}

interface Column {
  name: string;
  run: FanoutResult | undefined;
  error?: string;
}

function columns(result: GatewayBenchResult): Column[] {
  const of = (name: string, run: FanoutResult | { error: string } | undefined): Column =>
    run === undefined
      ? { name, run: undefined, error: 'not run' }
      : 'error' in run
        ? { name, run: undefined, error: run.error }
        : { name, run };
  return [
    { name: 'stream-gateway', run: result.gateway },
    of('nginx + nchan', result.nchan),
    of('Pushpin', result.pushpin),
  ];
}

const waveCell = (wave: WaveResult | undefined) =>
  wave
    ? `${wave.seconds} s${wave.failed > 0 ? ` (${wave.failed} failed)` : ''}${wave.slowTcpConnects > 0 ? `, ${wave.slowTcpConnects} SYN-retried` : ''}`
    : '–';

/** Results stored before connect waves existed hold one connect phase: it reads as wave 1. */
function withWaves<T extends FanoutResult>(run: T): T {
  if (run.waves) return run;
  const empty = { count: 0, p50: Number.NaN, p99: Number.NaN, max: Number.NaN };
  const wave: WaveResult = {
    wave: 1,
    ...run.connect,
    errorCodes: {},
    tcpConnectMs: empty,
    firstFrameMs: empty,
    slowTcpConnects: 0,
    timeWaitAtStart: Number.NaN,
    tcp: {},
  };
  return { ...run, waves: [wave], rates: run.rates.map((rate) => ({ ...rate, wave: rate.wave ?? 1 })) };
}

/** The docs tables: every system side by side, one row per rate, then connect waves, then memory. */
export function gatewayMarkdown(stored: GatewayBenchResult): string {
  const result: GatewayBenchResult = {
    ...stored,
    gateway: withWaves(stored.gateway),
    nchan: 'error' in stored.nchan ? stored.nchan : withWaves(stored.nchan),
  };
  const systems = columns(result);
  const { gateway } = result;
  const rateRows = gateway.rates.map((rate, index) => {
    const cells = systems.map(({ run }) => {
      const other = run?.rates[index];
      return other
        ? `${other.p50Ms} / ${other.p99Ms} / ${other.p999Ms} | ${other.received === other.expected ? 'all' : `${other.received} of ${other.expected}`}${other.achievedUpdatesPerSecond < other.updatesPerSecond ? ` (published ${other.achievedUpdatesPerSecond}/s)` : ''} | ${other.serverCpuPercent} %`
        : '– | – | –';
    });
    return `| ${rate.updatesPerSecond} (wave ${rate.wave}) | ${rate.offeredDeliveriesPerSecond} | ${cells.join(' | ')} |`;
  });
  const header = systems.map(({ name }) => `${name} p50 / p99 / p999 ms | delivered | CPU`).join(' | ');
  const waveRows = gateway.waves.map(
    (wave, index) =>
      `| ${wave.wave} | ${systems.map(({ run }) => waveCell(run?.waves[index])).join(' | ')} | ${wave.server ? `${wave.server.gatewaySnapshotCalls} / ${wave.server.writeApiLatestReads}` : '–'} |`,
  );
  const harness = gateway.waves
    .filter((wave) => wave.tcp['TcpExt.TCPSynRetrans'] !== undefined)
    .map(
      (wave) =>
        `wave ${wave.wave}: TIME_WAIT at start ${wave.timeWaitAtStart}, SYN retransmits ${wave.tcp['TcpExt.TCPSynRetrans']}, listen overflows ${wave.tcp['TcpExt.ListenOverflows']}, ` +
        `connect errors ${JSON.stringify(wave.errorCodes)}, TCP connect p99 ${wave.tcpConnectMs.p99} ms, first frame after connect p50 / p99 ${wave.firstFrameMs.p50} / ${wave.firstFrameMs.p99} ms`,
    );
  const memory = (run: FanoutResult | undefined) =>
    run
      ? `${round(run.memory.idleKiB / 1024, 1)} → ${round(run.memory.withClientsKiB / 1024, 1)} MiB (${run.memory.perConnectionKiB} KiB each)`
      : '–';
  const e2e = gateway.endToEnd;
  const pushpin = result.pushpin && !('error' in result.pushpin) ? result.pushpin.setup : undefined;
  return [
    `| updates/s | offered deliveries/s | ${header} |`,
    `|---:|---:|${systems.map(() => '---:|---:|---:|').join('')}`,
    ...rateRows,
    '',
    `| connect wave (all ${result.options.clients} streams open with their first frame) | ${systems.map(({ name }) => name).join(' | ')} | gateway snapshot calls / write-api reads |`,
    `|---:|${systems.map(() => '---:|').join('')}---:|`,
    ...waveRows,
    '',
    `| | ${systems.map(({ name }) => name).join(' | ')} | target |`,
    `|---|${systems.map(() => '---:|').join('')}---:|`,
    `| server RSS idle → with all streams idle | ${systems.map(({ run }) => memory(run)).join(' | ')} | ≤ 16 KiB each |`,
    '',
    ...(harness.length > 0
      ? [
          `Harness check for the gateway's waves (kernel counters of the whole machine): ${harness.join('; ')}.`,
          '',
        ]
      : []),
    `End to end through write-api (${e2e.upserts} upserts on another session of the same workflow): ` +
      (e2e.allDelivered
        ? `every upsert reached all ${gateway.waves.at(-1)?.opened} streams; the last stream had it ${e2e.delivered.map((entry) => entry.lastClientMs).join(', ')} ms after the POST was sent.`
        : `NOT every upsert reached every stream: ${e2e.delivered.map((entry) => `v${entry.version} ${entry.clients}`).join(', ')}.`),
    ...(pushpin
      ? [
          '',
          `Pushpin: ${pushpin.version}, ${pushpin.config}, changed lines: ${pushpin.changedConfigLines.length === 0 ? 'none' : pushpin.changedConfigLines.join('; ')}; ` +
            `started as \`${pushpin.commandLine.join(' ')}\` with \`${pushpin.zurlCommandLine.join(' ')}\`. ` +
            `Defaults that bound it here: ${Object.entries(pushpin.defaults)
              .map(([name, value]) => `${name}=${value}`)
              .join(', ')}.`,
        ]
      : []),
    ...systems.filter(({ error }) => error).map(({ name, error }) => `\n${name} run failed: ${error}`),
  ].join('\n');
}
