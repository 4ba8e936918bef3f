/** Percentiles over recorded samples (nearest-rank), for latency figures in milliseconds. */
export function percentile(sortedAscending: readonly number[], p: number): number {
  if (sortedAscending.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sortedAscending.length) - 1;
  return sortedAscending[Math.min(sortedAscending.length - 1, Math.max(0, rank))] as number;
}

export function summarize(samplesMs: number[]) {
  const sorted = [...samplesMs].sort((a, b) => a - b);
  return {
    count: sorted.length,
    p50: round(percentile(sorted, 50)),
    p99: round(percentile(sorted, 99)),
    p999: round(percentile(sorted, 99.9)),
    max: round(sorted[sorted.length - 1] ?? Number.NaN),
  };
}

export const round = (value: number, digits = 2) => Math.round(value * 10 ** digits) / 10 ** digits;

/** p50/p99/p999/max of a whole-millisecond histogram (latency → count), nearest-rank. */
export function histogramPercentiles(histogram: Map<number, number>) {
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

/** Adds collected [latencyMs, count] pairs into one histogram. */
export function mergeHistogram(into: Map<number, number>, pairs: [number, number][]): void {
  for (const [latency, count] of pairs) into.set(latency, (into.get(latency) ?? 0) + count);
}

/** Median and range of one figure over several runs. */
export function spread(values: number[]): { median: number; min: number; max: number } {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  return {
    median: round(percentile(sorted, 50)),
    min: round(sorted[0] ?? Number.NaN),
    max: round(sorted[sorted.length - 1] ?? Number.NaN),
  };
}

/** "median (min–max)" over the runs, or the one value. */
export function figure(values: number[], unit = ''): string {
  const finite = values.filter(Number.isFinite);
  if (finite.length === 0) return '–';
  const { median, min, max } = spread(finite);
  return finite.length === 1 || min === max ? `${median}${unit}` : `${median}${unit} (${min}–${max})`;
}

/** Per column, the figure of that column over the runs (each run a row of numbers). */
export function cellsOf(runs: number[][]): string[] {
  return (runs[0] ?? []).map((_, column) => figure(runs.map((row) => row[column] as number)));
}
