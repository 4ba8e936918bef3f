import type { LabelMatcher, VectorSelector } from './promql.js';

/** One sample line of the Prometheus text format: its name and labels (the value is not needed here). */
export interface ScrapedSeries {
  name: string;
  labels: Record<string, string>;
}

/** Parses a /metrics body (Prometheus text exposition format 0.0.4) into its series. */
export function parseExposition(text: string): ScrapedSeries[] {
  const series: ScrapedSeries[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+\S+/.exec(line);
    if (!match) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? '').matchAll(/([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[pair[1] as string] = (pair[2] as string).replace(/\\n/g, '\n').replace(/\\(.)/g, '$1');
    }
    series.push({ name: match[1] as string, labels });
  }
  return series;
}

/** Labels Prometheus attaches at scrape time (Kubernetes service discovery), absent from /metrics. */
export const TARGET_LABELS: ReadonlySet<string> = new Set([
  'namespace',
  'pod',
  'instance',
  'job',
  'container',
  'node',
]);

function matcherHolds(op: LabelMatcher['op'], pattern: string, value: string): boolean {
  switch (op) {
    case '=':
      return value === pattern;
    case '!=':
      return value !== pattern;
    case '=~':
      return new RegExp(`^(?:${pattern})$`).test(value);
    case '!~':
      return !new RegExp(`^(?:${pattern})$`).test(value);
  }
}

/**
 * Why a selector reads nothing from these series: its metric is not exported, or no series of it has
 * the labels it asks for (target labels aside). Undefined when some series matches.
 */
export function whySelectorMisses(
  selector: VectorSelector,
  series: readonly ScrapedSeries[],
): string | undefined {
  const named = series.filter((candidate) => candidate.name === selector.name);
  if (named.length === 0) return `${selector.name} is not exported`;
  const checked = selector.matchers.filter((matcher) => !TARGET_LABELS.has(matcher.label));
  const hit = named.some((candidate) =>
    checked.every((matcher) =>
      matcherHolds(matcher.op, matcher.value, candidate.labels[matcher.label] ?? ''),
    ),
  );
  if (hit) return undefined;
  const wanted = checked.map((matcher) => `${matcher.label}${matcher.op}"${matcher.value}"`).join(', ');
  // The values that are there, for the first matcher no series satisfies: usually the typo to fix.
  const failing = checked.find(
    (matcher) =>
      !named.some((candidate) =>
        matcherHolds(matcher.op, matcher.value, candidate.labels[matcher.label] ?? ''),
      ),
  );
  const seen = failing
    ? `; ${failing.label} is ${[...new Set(named.map((candidate) => JSON.stringify(candidate.labels[failing.label] ?? '')))].slice(0, 8).join(' | ')}`
    : '';
  return `no ${selector.name} series has {${wanted}}${seen}`;
}
