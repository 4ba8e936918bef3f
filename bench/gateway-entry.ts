/**
 * The stream-gateway as the benchmark runs it: the production entry point unchanged, plus — only here,
 * never in services/ — a SIGUSR2 handler that forces a garbage collection when the process was started
 * with --expose-gc, so that idle memory is read after a full collection rather than whenever V8 last ran
 * one, and the phase probe (bench/process-probe.ts: event-loop delay, GC pauses, CPU profile on SIGHUP).
 */
import { writeHeapSnapshot } from 'node:v8';
import { installProbe } from './process-probe.js';

const collect = (globalThis as { gc?: () => void }).gc;
let snapshots = 0;
if (collect) {
  process.on('SIGUSR2', () => {
    collect();
    const usage = process.memoryUsage();
    console.error(`BENCH_MEMORY ${JSON.stringify(usage)}`);
    if (process.env.BENCH_HEAP_SNAPSHOT_DIR)
      writeHeapSnapshot(`${process.env.BENCH_HEAP_SNAPSHOT_DIR}/gw-${snapshots++}.heapsnapshot`);
  });
}
installProbe('gateway');

await import('../services/stream-gateway/src/main.js');
