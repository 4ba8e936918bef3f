import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { benchEndToEnd, type E2eResult, e2eMarkdown } from './e2e.js';
import { benchFanout, type GatewayBenchResult, gatewayMarkdown } from './gateway.js';
import { SOURCE_ADDRESSES_PER_PROCESS } from './load-pool.js';
import { benchStorm, type StormResult, stormMarkdown } from './storm.js';
import { benchWriteApi, type UpsertBenchResult, upsertMarkdown } from './write-api.js';

/**
 * `npm run bench [-- --only write-api|gateway|e2e|storm] [-- --quick]`: runs the benchmarks on this
 * machine, writes each result to bench/results/<name>.json and regenerates docs/benchmarks.md from every
 * stored result. `--quick` runs each at a reduced scale, to check the harness rather than to measure.
 * Loopback traffic only; every load loop is bounded in time and stops the processes it started.
 * The gateway bench runs `--runs N` rounds (3; 1 with --quick) of gateway, nchan and Pushpin (Pushpin in
 * the first `--pushpin-runs N`); `--gateway-only` skips the peers (profiling, not for the docs tables).
 * BENCH_CPU_PROFILE_DIR=<dir> writes a CPU profile of write-api / the gateways per measured phase.
 * BENCH_GATEWAY_NODE_OPTIONS=<flags> adds V8 flags to the gateways (e.g. --max-semi-space-size=32).
 */
const { values } = parseArgs({
  options: {
    only: { type: 'string' },
    quick: { type: 'boolean', default: false },
    runs: { type: 'string' },
    'pushpin-runs': { type: 'string' },
    'gateway-only': { type: 'boolean', default: false },
  },
});
const selected = (name: string) => values.only === undefined || values.only === name;
const RESULTS = 'bench/results';

async function saved<T>(name: string): Promise<T | undefined> {
  const path = `${RESULTS}/${name}.json`;
  return existsSync(path) ? (JSON.parse(await readFile(path, 'utf8')) as T) : undefined;
}

/** Several runs of a benchmark, each on a fresh stack, so its figures are medians with a range. */
const repeatRuns = Number(values.runs ?? (values.quick ? 1 : 3));
async function repeated<T>(name: string, run: () => Promise<T>): Promise<T[]> {
  const results: T[] = [];
  for (let index = 1; index <= repeatRuns; index++) {
    console.log(`${name}: run ${index} of ${repeatRuns}`);
    results.push(await run());
  }
  return results;
}

if (selected('write-api')) {
  const result = await benchWriteApi({
    concurrencies: [1, 16, 64],
    durationMs: values.quick ? 3000 : 10_000,
    warmupMs: values.quick ? 1000 : 2000,
    runs: values.quick ? 2 : 3,
  });
  await writeFile(`${RESULTS}/write-api.json`, `${JSON.stringify(result, null, 2)}\n`);
}

if (selected('gateway')) {
  const rounds = {
    runs: repeatRuns,
    pushpinRuns: Number(values['pushpin-runs'] ?? repeatRuns),
    peers: !values['gateway-only'],
  };
  const result = await benchFanout(
    values.quick
      ? {
          clients: 2000,
          clientProcesses: 4,
          rates: [1, 5, 10],
          stepMs: 3000,
          warmupMs: 1000,
          quietMs: 1500,
          connectConcurrency: 256,
          waves: 3,
          waveGapMs: 1000,
          sourceAddressesPerProcess: SOURCE_ADDRESSES_PER_PROCESS,
          endToEndUpserts: 2,
          ...rounds,
        }
      : {
          clients: 10_000,
          clientProcesses: 4,
          rates: [1, 5, 10],
          stepMs: 10_000,
          warmupMs: 3000,
          quietMs: 5000,
          connectConcurrency: 512,
          waves: 3,
          waveGapMs: 2000,
          sourceAddressesPerProcess: SOURCE_ADDRESSES_PER_PROCESS,
          endToEndUpserts: 3,
          ...rounds,
        },
  );
  // A profiling run without the peers is kept beside, never in place of, the published result.
  const name = rounds.peers ? 'gateway' : 'gateway-only';
  await writeFile(`${RESULTS}/${name}.json`, `${JSON.stringify(result, null, 2)}\n`);
}

if (selected('e2e')) {
  const results = await repeated('e2e', () =>
    benchEndToEnd(
      values.quick
        ? {
            sessions: 100,
            streamsPerSession: 5,
            pushIntervalMs: 2000,
            durationMs: 10_000,
            clientProcesses: 2,
          }
        : {
            sessions: 1000,
            streamsPerSession: 5,
            pushIntervalMs: 2000,
            durationMs: 60_000,
            clientProcesses: 2,
          },
    ),
  );
  await writeFile(`${RESULTS}/e2e.json`, `${JSON.stringify(results, null, 2)}\n`);
}

if (selected('storm')) {
  const results = await repeated('storm', () =>
    benchStorm(
      values.quick
        ? { streams: 2000, sessions: 10, drainMs: 3000, pushesPerSecond: 20, clientProcesses: 2 }
        : { streams: 10_000, sessions: 10, drainMs: 10_000, pushesPerSecond: 20, clientProcesses: 4 },
    ),
  );
  await writeFile(`${RESULTS}/storm.json`, `${JSON.stringify(results, null, 2)}\n`);
}

const upserts = await saved<UpsertBenchResult>('write-api');
/** Results stored before runs were repeated hold one run. */
const asRuns = <T>(stored: T | T[] | undefined): T[] | undefined =>
  stored === undefined ? undefined : Array.isArray(stored) ? stored : [stored];
const e2eRuns = asRuns(await saved<E2eResult | E2eResult[]>('e2e'));
const stormRuns = asRuns(await saved<StormResult | StormResult[]>('storm'));
const e2e = e2eRuns?.[0];
const storm = stormRuns?.[0];
const fanout = await saved<GatewayBenchResult>('gateway');
const sections: string[] = [
  '# Benchmarks',
  '',
  'Produced by `npm run bench` (all) or `npm run bench -- --only <name>`; raw results are in `bench/results/*.json`.',
  'Everything runs on one 2-core machine: the load client, the services, PostgreSQL and nats-server share the cores,',
  'so these figures are a floor for a real deployment, not a ceiling.',
  '',
  '## write-api upserts',
  '',
  upserts
    ? [
        `Measured ${upserts.date} (Node ${upserts.machine.node}, ${upserts.machine.cores} cores${upserts.machine.loadAverageAtStart ? `, load average ${upserts.machine.loadAverageAtStart.join(' / ')} at the start` : ''}), ${upserts.durationMs / 1000} s per level after a warm-up,`,
        `${upserts.runs ?? 1} independent run${(upserts.runs ?? 1) === 1 ? '' : 's'} (a fresh database and write-api process each).`,
        '`npm run bench -- --only write-api`: wrk (C, 1–2 threads) runs closed-loop clients that re-push sessions through HTTP',
        '(auth, validation, the upsert, publish to NATS, batched publish confirmation) over 4096 sessions per wrk thread;',
        'write-api commits the pushes that arrive together in one multi-row statement (group commit). pgbench runs the same',
        'upsert, one row per transaction, with prepared statements, over as many distinct sessions, as the ceiling: what',
        'PostgreSQL does on this machine with no HTTP, JSON or NATS in the way. write-api and PostgreSQL share the two cores.',
        'Target: at least 60 % of the pgbench ceiling, p99 under 50 ms at 16 clients.',
        '',
        upsertMarkdown(upserts),
      ].join('\n')
    : '_not measured yet_',
  '',
  '## stream-gateway fan-out',
  '',
  fanout
    ? [
        `Measured ${fanout.date} (Node ${fanout.machine.node}, ${fanout.machine.cores} cores, load average ${fanout.machine.loadAverageAtStart.join(' / ')} at the start) with`,
        `\`npm run bench -- --only gateway${fanout.options.clients < 10_000 ? ' --quick' : ''}\`: ${fanout.options.clients} SSE clients (raw TCP, ${fanout.options.clientProcesses} client processes, each`,
        `spreading its source ports over ${fanout.options.sourceAddressesPerProcess ?? 1} loopback addresses of its own) on one workflow of ONE stream-gateway process (its own nats-server,`,
        'a real write-api on PostgreSQL for the snapshots: every connect is authenticated with its API key); updates of one',
        'session are published straight on NATS with `Wizard-Committed-At` = send time. Then nginx + nchan (one worker',
        'process, as the gateway is one Node process) and Pushpin (Debian package, default configuration, GRIP origin in',
        'bench/pushpin/) get the same clients, waves and rates in the same run, one system at a time; a round is one run',
        'of each, and the rounds repeat (`--runs`, default 3) so that every figure below is a median with its range.',
        'Every system is offered the same publish schedule: a publish is sent when it is due, not when the previous',
        'one was answered (nchan answers its HTTP publish once it has handed the message to its subscribers).',
        `Each system gets ${fanout.options.waves ?? 1} connect waves into the same process: all streams connect, a rate runs for ${fanout.options.stepMs / 1000} s, every`,
        'stream is closed, the next wave connects. Latency = client receive time − send time (same clock); every delivery',
        'is counted ("all" = every client got every update). Server CPU is in % of one core.',
        'Targets: each wave no slower than nchan’s in the same run, p99 at most nchan’s at every rate, ≤ 16 KiB RSS per idle',
        'connection.',
        '',
        gatewayMarkdown(fanout),
      ].join('\n')
    : '_not measured yet_',
];
sections.push(
  '',
  '## End to end: CLIs → write-api → two gateways → streams',
  '',
  e2e
    ? [
        `Measured ${e2e.date} (Node ${e2e.machine.node}, ${e2e.machine.cores} cores, load average ${e2e.machine.loadAverageAtStart.join(' / ')} at the start) with`,
        `\`npm run bench -- --only e2e${e2e.options.sessions < 1000 ? ' --quick' : ''}\`: ${e2e.options.sessions} CLI-like clients, each with its own API key and keep-alive connection,`,
        `push their own session through write-api every ${e2e.options.pushIntervalMs / 1000} s for ${e2e.options.durationMs / 1000} s; each session is watched by ${e2e.options.streamsPerSession} SSE streams (with`,
        'its user’s key) spread over two stream-gateway processes. Latency = POST sent → frame received; CPU from',
        '/proc/<pid>/stat over the pushing phase. Default write-api settings, rate limit included.',
        '',
        e2eMarkdown(e2eRuns as E2eResult[]),
      ].join('\n')
    : '_not measured yet_',
  '',
  '## Reconnect storm',
  '',
  storm
    ? [
        `Measured ${storm.date} (Node ${storm.machine.node}, ${storm.machine.cores} cores, load average ${storm.machine.loadAverageAtStart.join(' / ')} at the start) with`,
        `\`npm run bench -- --only storm${storm.options.streams < 10_000 ? ' --quick' : ''}\`: two gateways hold ${storm.options.streams} streams on ${storm.options.sessions} sessions; one gets SIGTERM`,
        'and drains; its clients reconnect to the other with the SDK’s timing (within 250 ms of `event: end`, full-jitter',
        `backoff from 500 ms after a failure) while write-api takes ${storm.options.pushesPerSecond} pushes/s on those sessions. "Back" = open again`,
        'with its first frame (the snapshot). Missing an update = a stream whose last version is below its session’s last push.',
        '',
        stormMarkdown(stormRuns as StormResult[]),
      ].join('\n')
    : '_not measured yet_',
);
// The hand-written analysis of the latest runs (what stands in the way of a target), kept beside the results.
if (existsSync('bench/notes.md')) sections.push('', (await readFile('bench/notes.md', 'utf8')).trimEnd());
await writeFile('docs/benchmarks.md', `${sections.join('\n')}\n`);
// Formatted as `npm run lint` checks it (tables aligned), so a regenerated page never fails the lint.
execFileSync('node_modules/.bin/biome', ['format', '--write', 'docs/benchmarks.md'], { stdio: 'ignore' });
console.log('wrote docs/benchmarks.md');
