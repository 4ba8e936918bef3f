import { streamUrl } from '@wizard-stream/contracts';
import type { StormReport } from './gateway-client.js';
import {
  ClientPool,
  connectWave,
  SOURCE_ADDRESSES_PER_PROCESS,
  sourceAddresses,
  type WaveResult,
} from './load-pool.js';
import { loadAverage, type Machine, machine } from './machine.js';
import { metricSum, scrape, sleep } from './proc-stats.js';
import { dtoVersion, sessionBody, upsert } from './sessions.js';
import { startStack } from './stack.js';
import { cellsOf, round } from './stats.js';

/**
 * The reconnect storm (issue 12, item 7): two stream-gateway processes hold `streams` streams between
 * them on `sessions` sessions; one gets SIGTERM and drains (`event: end` spread over DRAIN_MS), and its
 * clients come back on the survivor with the SDK's timing (within 250 ms after `event: end`, full-jitter
 * backoff after a failure; the load balancer's part is played by the client going to the other gateway).
 * Meanwhile every session is pushed through write-api in turn, so the final check is that every stream
 * ends on its session's last version: nothing was missed across the move.
 */

export interface StormOptions {
  streams: number;
  sessions: number;
  drainMs: number;
  /** Pushes per second through write-api during the storm, spread over the sessions. */
  pushesPerSecond: number;
  clientProcesses: number;
}

export interface StormResult {
  kind: 'storm';
  date: string;
  machine: Machine;
  options: StormOptions;
  connect: WaveResult;
  /** From SIGTERM to the drained gateway's exit. */
  drainSeconds: number;
  /** From SIGTERM to the last stream back on the survivor with its first frame. */
  allBackAfterSigtermSeconds: number;
  /** The same, from the end of the drain (negative: every stream was back before the drain ended). */
  allBackAfterDrainSeconds: number;
  streamsBack: number;
  streamsNotBack: number;
  reconnectAttempts: number;
  failedAttempts: Record<string, number>;
  /** /latest/ reads write-api served during the storm, and the survivor's snapshot calls. */
  writeApiSnapshotReads: number;
  survivorSnapshotCalls: number;
  pushes: number;
  /** Streams whose last version is below their session's last pushed version. */
  streamsBehind: number;
  sessionsBehind: number;
  target: { allBackAfterDrainSeconds: number };
}

const WORKFLOW = 'bench-storm';

const latestReads = (metrics: string) =>
  metrics
    .split('\n')
    .filter((line) => line.startsWith('wizard_http_requests_total{') && line.includes('latest'))
    .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);

export async function benchStorm(options: StormOptions): Promise<StormResult> {
  const loadAverageAtStart = loadAverage();
  const stack = await startStack({
    gateways: 2,
    email: 'bench-storm@example.com',
    writeApiEnv: { RATE_LIMIT_PER_MIN: '1000000000' },
    // Every stream uses the one member key: the storm of one tenant, not the per-key cap.
    gatewayEnv: {
      MAX_STREAMS: String(options.streams * 2),
      MAX_STREAMS_PER_KEY: String(options.streams * 2),
      DRAIN_MS: String(options.drainMs),
    },
  });
  let pool: ClientPool | undefined;
  try {
    const { member, writeApi, gateways } = stack;
    const [draining, survivor] = gateways as [(typeof gateways)[0], (typeof gateways)[0]];
    const skills = Array.from({ length: options.sessions }, (_, index) => `skill-${index}`);
    const lastVersion = new Map<number, number>();
    for (const [index, skill] of skills.entries()) {
      const dto = await upsert(
        writeApi.url,
        member.teamId,
        member.apiKey,
        sessionBody(`storm-${index}`, WORKFLOW, skill, 0),
      );
      lastVersion.set(index, dtoVersion(dto));
    }
    pool = ClientPool.start(options.clientProcesses);
    const perProcess = Math.ceil(options.streams / options.clientProcesses);
    const paths = skills.map((skill) => {
      const url = new URL(streamUrl(draining.url, member.teamId, WORKFLOW, skill));
      return `${url.pathname}${url.search}`;
    });
    const connect = await connectWave(pool, {
      wave: 1,
      command: (index) => ({
        type: 'connect',
        targets: gateways.map((gateway) => ({ host: '127.0.0.1', port: gateway.port })),
        paths,
        headers: { accept: 'text/event-stream', authorization: `Bearer ${member.apiKey}` },
        firstIndex: index * perProcess,
        count: Math.max(0, Math.min(perProcess, options.streams - index * perProcess)),
        localAddresses: sourceAddresses(index, SOURCE_ADDRESSES_PER_PROCESS),
        concurrency: 128,
        timeoutMs: 60_000,
        reconnect: { endDelayMs: 250, baseDelayMs: 500, maxDelayMs: 30_000 },
      }),
    });
    console.log(`storm: ${JSON.stringify(connect)}`);

    // Pushes through write-api for the whole storm: each session in turn.
    let pushing = true;
    let pushes = 0;
    const pusher = (async () => {
      let step = 1;
      while (pushing) {
        const index = step % options.sessions;
        const dto = await upsert(
          writeApi.url,
          member.teamId,
          member.apiKey,
          sessionBody(`storm-${index}`, WORKFLOW, skills[index] as string, step),
        );
        lastVersion.set(index, dtoVersion(dto));
        pushes++;
        step++;
        await sleep(1000 / options.pushesPerSecond);
      }
    })();
    await sleep(1000);
    const readsBefore = latestReads(await scrape(`${writeApi.url}/metrics`));
    const callsBefore = metricSum(
      await scrape(`${survivor.url}/metrics`),
      'wizard_gateway_snapshot_calls_total',
    );
    const sigtermAt = Date.now();
    console.log(`storm: SIGTERM to the gateway holding ${connect.opened / 2} streams`);
    process.kill(draining.pid, 'SIGTERM');
    let drainedAt = 0;
    void draining.exited.then(() => {
      drainedAt = Date.now();
    });
    let report: StormReport | undefined;
    const deadline = sigtermAt + options.drainMs + 30_000;
    for (;;) {
      await sleep(100);
      const reports = await pool.ask<StormReport>(() => ({ type: 'storm' }));
      report = {
        type: 'storm',
        open: reports.reduce((sum, part) => sum + part.open, 0),
        away: reports.reduce((sum, part) => sum + part.away, 0),
        reconnectAttempts: reports.reduce((sum, part) => sum + part.reconnectAttempts, 0),
        failedAttempts: {},
        lastBackAt: Math.max(...reports.map((part) => part.lastBackAt)),
        cameBack: reports.reduce((sum, part) => sum + part.cameBack, 0),
        openPerTarget: [0, 1].map((target) =>
          reports.reduce((sum, part) => sum + (part.openPerTarget[target] ?? 0), 0),
        ),
        versions: reports.flatMap((part) => part.versions),
        behind: 0,
      };
      for (const part of reports)
        for (const [code, count] of Object.entries(part.failedAttempts))
          report.failedAttempts[code] = (report.failedAttempts[code] ?? 0) + count;
      const allOnSurvivor = report.openPerTarget[1] === connect.opened && report.away === 0;
      if ((allOnSurvivor && drainedAt > 0) || Date.now() > deadline) break;
    }
    const readsAfter = latestReads(await scrape(`${writeApi.url}/metrics`));
    const callsAfter = metricSum(
      await scrape(`${survivor.url}/metrics`),
      'wizard_gateway_snapshot_calls_total',
    );
    pushing = false;
    await pusher;
    // The last pushes reach the streams within milliseconds; a second is plenty on this machine.
    await sleep(1000);
    const finalVersions = [...lastVersion];
    const final = await pool.ask<StormReport>(() => ({ type: 'storm', finalVersions }));
    const streamsBehind = final.reduce((sum, part) => sum + part.behind, 0);
    const behind = new Set<number>();
    for (const part of final)
      for (const [pathIndex, lowest] of part.versions)
        if (lowest < (lastVersion.get(pathIndex) ?? 0)) behind.add(pathIndex);
    const lastBackAt = report?.lastBackAt ?? 0;
    return {
      kind: 'storm',
      date: new Date().toISOString(),
      machine: machine(loadAverageAtStart),
      options,
      connect,
      drainSeconds: round(((drainedAt || Date.now()) - sigtermAt) / 1000, 2),
      allBackAfterSigtermSeconds: round((lastBackAt - sigtermAt) / 1000, 2),
      allBackAfterDrainSeconds: round((lastBackAt - (drainedAt || Date.now())) / 1000, 2),
      streamsBack: report?.cameBack ?? 0,
      streamsNotBack:
        (report?.away ?? 0) +
        Math.max(0, connect.opened - (report?.openPerTarget[1] ?? 0) - (report?.away ?? 0)),
      reconnectAttempts: report?.reconnectAttempts ?? 0,
      failedAttempts: report?.failedAttempts ?? {},
      writeApiSnapshotReads: readsAfter - readsBefore,
      survivorSnapshotCalls: callsAfter - callsBefore,
      pushes,
      streamsBehind,
      sessionsBehind: behind.size,
      target: { allBackAfterDrainSeconds: 5 },
    };
  } finally {
    await pool?.close();
    await stack.close();
  }
}

/** One row per run, then the median and range of every figure over the runs. */
export function stormMarkdown(results: StormResult[]): string {
  const first = results[0] as StormResult;
  const figures = (result: StormResult) => [
    result.drainSeconds,
    result.allBackAfterSigtermSeconds,
    result.allBackAfterDrainSeconds,
    result.streamsNotBack,
    result.reconnectAttempts,
    result.writeApiSnapshotReads,
    result.survivorSnapshotCalls,
    result.streamsBehind,
  ];
  const row = (label: string, runs: StormResult[], extra: string) => {
    const [drain, afterSigterm, afterDrain, notBack, attempts, reads, calls, behind] = cellsOf(
      runs.map(figures),
    );
    return `| ${label} | ${drain} s | ${afterSigterm} s | ${afterDrain} s | ${notBack} | ${attempts}${extra} | ${reads} (survivor's calls ${calls}) | ${behind} |`;
  };
  return [
    `${first.options.streams} streams on ${first.options.sessions} sessions, 2 gateways, DRAIN_MS ${first.options.drainMs}, ${first.options.pushesPerSecond} pushes/s during the storm; ${results.length} run${results.length === 1 ? '' : 's'}, each a fresh stack. Target: every stream back ≤ ${first.target.allBackAfterDrainSeconds} s after the drain ended, none missing an update.`,
    '',
    '| run | drain | all back after SIGTERM | after the drain ended | not back | reconnect attempts | snapshot reads write-api served | streams missing an update |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    ...results.map((result, index) =>
      row(
        `${index + 1} (load ${result.machine.loadAverageAtStart[0]})`,
        [result],
        Object.keys(result.failedAttempts).length > 0
          ? ` (failed ${JSON.stringify(result.failedAttempts)})`
          : '',
      ),
    ),
    ...(results.length > 1 ? [row('median (range)', results, '')] : []),
  ].join('\n');
}
