/**
 * write-api as the upsert benchmark runs it: the production entry point unchanged, plus — only here,
 * never in services/ — the phase probe (bench/process-probe.ts) and a timeline of what the process does
 * while requests are slow. The periodic work (relay pass, staleness sweep, publish confirmation with its
 * marker transaction, upsert statements, key lookups) is timed by wrapping the classes' methods from
 * outside, and every request's duration comes from Node's http diagnostics channels. At each SIGHUP the
 * probe reports, for the requests slower than SLOW_MS, how often each kind of work (or a GC pause)
 * overlapped them, beside how much of the phase that work covered: a cause shows as a kind that slow
 * requests meet far more often than its share of the time.
 */
import { subscribe } from 'node:diagnostics_channel';
import type { IncomingMessage } from 'node:http';
import { PerformanceObserver } from 'node:perf_hooks';
import { CredentialChecker } from '../services/write-api/src/auth/credentials.js';
import { SessionPublisher } from '../services/write-api/src/sessions/publisher.js';
import { Relay } from '../services/write-api/src/sessions/relay.js';
import { StalenessSweeper } from '../services/write-api/src/sessions/staleness.js';
import { UpsertBatcher } from '../services/write-api/src/sessions/upsert-batcher.js';
import { installProbe } from './process-probe.js';

const SLOW_MS = Number(process.env.BENCH_SLOW_MS ?? 50);
/** Work shorter than this is not kept (upserts and lookups run thousands of times a second). */
const KEEP_WORK_MS = 5;

interface Span {
  kind: string;
  start: number;
  end: number;
  size?: number;
}

let work: Span[] = [];
let slowRequests: Span[] = [];
let requests = 0;
const counts: Record<string, { count: number; totalMs: number; maxMs: number }> = {};

function note(kind: string, start: number, size?: number): void {
  const end = performance.now();
  const duration = end - start;
  const entry = counts[kind] ?? { count: 0, totalMs: 0, maxMs: 0 };
  entry.count++;
  entry.totalMs += duration;
  entry.maxMs = Math.max(entry.maxMs, duration);
  counts[kind] = entry;
  if (duration >= KEEP_WORK_MS && work.length < 200_000) work.push({ kind, start, end, size });
}

function timed(prototype: object, method: string, kind: string, size?: (args: unknown[]) => number): void {
  const target = prototype as Record<string, (...args: unknown[]) => unknown>;
  const original = target[method];
  if (typeof original !== 'function') throw new Error(`bench probe: no method ${method} to time (${kind})`);
  target[method] = function (this: unknown, ...args: unknown[]) {
    const start = performance.now();
    const result = original.apply(this, args);
    const measured = size?.(args);
    if (result instanceof Promise) {
      return result.finally(() => note(kind, start, measured));
    }
    note(kind, start, measured);
    return result;
  };
}

timed(Relay.prototype, 'tick', 'relay pass');
timed(StalenessSweeper.prototype, 'sweep', 'staleness sweep');
timed(SessionPublisher.prototype, 'flush', 'publish confirmation (round trip + marker transaction)');
timed(UpsertBatcher.prototype, 'write', 'upsert statement', (args) => (args[0] as unknown[]).length);
timed(CredentialChecker.prototype, 'lookupKey', 'API key lookup');

new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    work.push({ kind: 'GC pause', start: entry.startTime, end: entry.startTime + entry.duration });
  }
}).observe({ entryTypes: ['gc'] });

const started = new WeakMap<IncomingMessage, number>();
subscribe('http.server.request.start', (message) => {
  started.set((message as { request: IncomingMessage }).request, performance.now());
});
subscribe('http.server.response.finish', (message) => {
  const { request } = message as { request: IncomingMessage };
  const start = started.get(request);
  if (start === undefined) return;
  requests++;
  const end = performance.now();
  if (end - start >= SLOW_MS && slowRequests.length < 100_000)
    slowRequests.push({ kind: 'request', start, end });
});

const overlaps = (a: Span, b: Span) => a.start < b.end && b.start < a.end;

/** What the phase's slow requests overlapped, beside each kind's share of the phase's time. */
function attribution(phaseStartedAt: number) {
  const now = performance.now();
  const phaseMs = now - phaseStartedAt;
  const inPhase = work.filter((span) => span.end >= phaseStartedAt);
  const slow = slowRequests.filter((span) => span.start >= phaseStartedAt);
  const kinds = [...new Set(inPhase.map((span) => span.kind))];
  const byKind = kinds.map((kind) => {
    const spans = inPhase.filter((span) => span.kind === kind);
    const coveredMs = spans.reduce((sum, span) => sum + (span.end - span.start), 0);
    const met = slow.filter((request) => spans.some((span) => overlaps(request, span))).length;
    return {
      kind,
      spansOver5ms: spans.length,
      shareOfPhaseTime: Math.round((1000 * Math.min(coveredMs, phaseMs)) / phaseMs) / 1000,
      shareOfSlowRequestsOverlapping: slow.length === 0 ? 0 : Math.round((1000 * met) / slow.length) / 1000,
      longestMs: Math.round(Math.max(0, ...spans.map((span) => span.end - span.start))),
    };
  });
  const totals = Object.fromEntries(
    Object.entries(counts).map(([kind, entry]) => [
      kind,
      {
        count: entry.count,
        meanMs: Math.round((100 * entry.totalMs) / entry.count) / 100,
        maxMs: Math.round(entry.maxMs),
      },
    ]),
  );
  const report = { requests, slowRequests: slow.length, slowMs: SLOW_MS, byKind, totals };
  work = [];
  slowRequests = [];
  requests = 0;
  for (const kind of Object.keys(counts)) delete counts[kind];
  return report;
}

installProbe('write-api', attribution);

await import('../services/write-api/src/main.js');
