import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';

/**
 * Loaded by the benchmark's service entries (bench/*-entry.ts), never by services/: event-loop delay,
 * GC pauses and (when BENCH_CPU_PROFILE_DIR is set) a CPU profile, per phase of a benchmark. SIGHUP
 * ends a phase: the process prints `BENCH_PROBE {json}` on stderr with what it saw since the previous
 * SIGHUP, writes the phase's CPU profile, and starts the next phase.
 */

export interface ProbeReport {
  phase: number;
  durationMs: number;
  eventLoopDelayMs: { p50: number; p99: number; max: number };
  gc: {
    count: number;
    totalMs: number;
    maxMs: number;
    byKind: Record<string, { count: number; totalMs: number }>;
  };
  /** The longest GC pauses of the phase: [ms since the phase started, duration ms, kind]. */
  longestGc: [number, number, string][];
  cpuProfile?: string;
  extra?: unknown;
}

const GC_KINDS: Record<number, string> = { 1: 'minor', 2: 'major', 4: 'incremental', 8: 'weakcb' };
const round = (value: number) => Math.round(value * 100) / 100;

export interface Probe {
  /** Milliseconds since the phase started, on the performance clock the GC entries use. */
  phaseStartedAt(): number;
}

export function installProbe(name: string, extra?: (phaseStartedAt: number) => unknown): Probe {
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  let phase = 0;
  let startedAt = performance.now();
  let gcs: { start: number; duration: number; kind: string }[] = [];
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const kind = (entry as unknown as { detail?: { kind?: number } }).detail?.kind ?? 0;
      gcs.push({ start: entry.startTime, duration: entry.duration, kind: GC_KINDS[kind] ?? String(kind) });
    }
  });
  observer.observe({ entryTypes: ['gc'] });

  const profileDir = process.env.BENCH_CPU_PROFILE_DIR;
  const session = profileDir ? new Session() : undefined;
  const post = (method: string, params?: object) =>
    new Promise<unknown>((resolve, reject) =>
      session?.post(method, params, (error, result) => (error ? reject(error) : resolve(result))),
    );
  if (session) {
    session.connect();
    void post('Profiler.enable').then(() => post('Profiler.start'));
  }

  process.on('SIGHUP', async () => {
    const now = performance.now();
    const phaseGcs = gcs.filter((gc) => gc.start >= startedAt);
    const byKind: ProbeReport['gc']['byKind'] = {};
    for (const gc of phaseGcs) {
      const entry = byKind[gc.kind] ?? { count: 0, totalMs: 0 };
      entry.count++;
      entry.totalMs = round(entry.totalMs + gc.duration);
      byKind[gc.kind] = entry;
    }
    const report: ProbeReport = {
      phase,
      durationMs: round(now - startedAt),
      eventLoopDelayMs: {
        p50: round(delay.percentile(50) / 1e6),
        p99: round(delay.percentile(99) / 1e6),
        max: round(delay.max / 1e6),
      },
      gc: {
        count: phaseGcs.length,
        totalMs: round(phaseGcs.reduce((sum, gc) => sum + gc.duration, 0)),
        maxMs: round(Math.max(0, ...phaseGcs.map((gc) => gc.duration))),
        byKind,
      },
      longestGc: [...phaseGcs]
        .sort((a, b) => b.duration - a.duration)
        .slice(0, 10)
        .map((gc) => [round(gc.start - startedAt), round(gc.duration), gc.kind]),
      extra: extra?.(startedAt),
    };
    if (session && profileDir) {
      const { profile } = (await post('Profiler.stop')) as { profile: unknown };
      report.cpuProfile = `${profileDir}/${name}-${phase}.cpuprofile`;
      writeFileSync(report.cpuProfile, JSON.stringify(profile));
      await post('Profiler.start');
    }
    console.error(`BENCH_PROBE ${JSON.stringify(report)}`);
    gcs = [];
    delay.reset();
    phase++;
    startedAt = performance.now();
  });
  return { phaseStartedAt: () => startedAt };
}

/** Reads the next BENCH_PROBE line a service prints after `kill -HUP` (output() is its captured output). */
export async function probePhase(service: { pid: number; output(): string }): Promise<ProbeReport> {
  const before = service.output().split('BENCH_PROBE ').length;
  process.kill(service.pid, 'SIGHUP');
  const deadline = Date.now() + 30_000;
  for (;;) {
    const parts = service.output().split('BENCH_PROBE ');
    if (parts.length > before) {
      const line = (parts[before] as string).split('\n')[0] as string;
      return JSON.parse(line) as ProbeReport;
    }
    if (Date.now() > deadline) throw new Error(`process ${service.pid} printed no BENCH_PROBE line`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
