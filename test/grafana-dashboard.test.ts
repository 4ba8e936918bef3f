import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createPushClient, type Session, type Subscription, subscribe } from '@wizard-stream/client';
import { sessionsUrl, streamUrl } from '@wizard-stream/contracts';
import { type SeededMember, seedTeamWithMember } from '@wizard-stream/db';
import { createTestDatabase, NatsServer, type TestDatabase, until } from '@wizard-stream/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseExposition, type ScrapedSeries, whySelectorMisses } from './src/exposition.js';
import {
  awaitAllConnectedToNats,
  type FleetMember,
  GATEWAY_ENTRY,
  spawnMember,
  stopMember,
  WRITE_API_ENTRY,
} from './src/fleet.js';
import { REPO_ROOT } from './src/local-stack.js';
import { expandGrafanaVariables, vectorSelectors } from './src/promql.js';
import { required } from './src/required.js';
import { findObject, renderKustomization, validateAgainstApiSchema } from './support/manifests.js';

const DASHBOARD_PATH = join(REPO_ROOT, 'deploy', 'grafana', 'wizard-stream.json');
const INTERNAL_API_TOKEN = 'grafana-test-internal-token-0123456789';
/** Low, so the traffic below can draw a 429 with a second key without slowing the first. */
const RATE_LIMIT_PER_MIN = 20;
/** Grafana's reference to the `datasource` variable (a literal, not a template string). */
const DATASOURCE_UID = '$' + '{datasource}';
/** What Grafana substitutes at query time; enough for reading the expressions. */
const VARIABLE_VALUES = { __rate_interval: '5m', namespace: '.*', datasource: 'prometheus' };

interface Target {
  expr: string;
  legendFormat?: string;
  datasource?: { type?: string; uid?: string };
}

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
}

interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  panels: Panel[];
  templating: {
    list: { name: string; type: string; query: unknown; datasource?: { uid?: string } }[];
  };
}

const dashboard = JSON.parse(await readFile(DASHBOARD_PATH, 'utf8')) as Dashboard;
const graphs = dashboard.panels.filter((panel) => panel.type !== 'row');
const panelNamed = (title: string) =>
  required(
    graphs.find((panel) => panel.title === title),
    `panel "${title}"`,
  );

/** Every PromQL expression of the dashboard with where it is, the variables' queries included. */
function dashboardExpressions(): { where: string; expr: string }[] {
  const expressions = graphs.flatMap((panel) =>
    (panel.targets ?? []).map((target) => ({ where: `panel "${panel.title}"`, expr: target.expr })),
  );
  for (const variable of dashboard.templating.list) {
    if (variable.type !== 'query') continue;
    const query = (variable.query as { query?: string }).query ?? String(variable.query);
    // label_values(metric, label): the metric is the series read.
    const labelValues = /^label_values\((.+),\s*\w+\)$/.exec(query);
    expressions.push({ where: `variable $${variable.name}`, expr: labelValues?.[1] ?? query });
  }
  return expressions;
}

/** What each expression reads that the series do not have; empty when everything is exported. */
function missingSeries(expressions: { where: string; expr: string }[], series: ScrapedSeries[]): string[] {
  return expressions.flatMap(({ where, expr }) =>
    vectorSelectors(expandGrafanaVariables(expr, VARIABLE_VALUES)).flatMap((selector) => {
      const why = whySelectorMisses(selector, series);
      return why ? [`${where}: ${why} (${expr})`] : [];
    }),
  );
}

describe('the Grafana dashboard deploy/grafana/wizard-stream.json', () => {
  it('is a current Grafana dashboard on a Prometheus datasource variable', () => {
    expect(dashboard.uid).toBe('wizard-stream');
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(39);
    expect(dashboard.schemaVersion).toBeLessThanOrEqual(41);
    const datasource = dashboard.templating.list.find((variable) => variable.name === 'datasource');
    expect(datasource).toMatchObject({ type: 'datasource', query: 'prometheus' });
    for (const panel of graphs) {
      expect(panel.datasource, panel.title).toEqual({ type: 'prometheus', uid: DATASOURCE_UID });
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
      for (const target of panel.targets ?? [])
        expect(target.datasource?.uid, panel.title).toBe(DATASOURCE_UID);
    }
    for (const variable of dashboard.templating.list.filter((candidate) => candidate.type === 'query')) {
      expect(variable.datasource?.uid, variable.name).toBe(DATASOURCE_UID);
    }
  });

  it('lays its panels out on the 24-column grid without overlaps, each with its own id', () => {
    const ids = dashboard.panels.map((panel) => panel.id);
    expect(new Set(ids).size).toBe(ids.length);
    const cells = new Map<string, string>();
    for (const panel of dashboard.panels) {
      const { x, y, w, h } = panel.gridPos;
      expect(x + w, panel.title).toBeLessThanOrEqual(24);
      for (let row = y; row < y + h; row++) {
        for (let column = x; column < x + w; column++) {
          const key = `${column},${row}`;
          expect(cells.get(key), `${panel.title} overlaps ${cells.get(key)}`).toBeUndefined();
          cells.set(key, panel.title);
        }
      }
    }
  });

  it('has the panels of issue 14, latencies as p50 and p99 from the histograms', () => {
    const exprs = (title: string) =>
      (panelNamed(title).targets ?? []).map((target) => target.expr).join('\n');
    expect(exprs('Open streams per gateway')).toMatch(/sum by \(pod\) \(wizard_gateway_open_streams\{/);
    expect(exprs('Deliveries and conflations / s')).toContain('wizard_gateway_frames_delivered_total');
    expect(exprs('Deliveries and conflations / s')).toContain('wizard_gateway_frames_conflated_total');
    for (const [title, histogram] of [
      ['Commit → write latency', 'wizard_gateway_commit_to_write_seconds_bucket'],
      ['Upsert latency', 'wizard_http_request_duration_seconds_bucket'],
    ] as const) {
      const panel = panelNamed(title);
      expect(panel.targets?.map((target) => target.legendFormat)).toEqual(['p50', 'p99']);
      expect(exprs(title)).toContain(`histogram_quantile(0.5, sum by (le) (rate(${histogram}{`);
      expect(exprs(title)).toContain(`histogram_quantile(0.99, sum by (le) (rate(${histogram}{`);
    }
    expect(exprs('Publishes / s by outcome')).toContain('wizard_publish_total');
    expect(exprs('Relay backlog')).toContain('wizard_relay_backlog');
    expect(exprs('Relay failures and dead letters')).toContain('wizard_relay_failures_total');
    expect(exprs('Relay failures and dead letters')).toContain('wizard_relay_dead_lettered');
    expect(exprs('Snapshot calls by outcome')).toContain('wizard_gateway_snapshot_calls_total');
    expect(exprs('Slow-client closes / s')).toContain('wizard_gateway_slow_client_closes_total');
    expect(exprs('Rate-limit and auth refusals / s')).toContain('status="429"');
    expect(exprs('Rate-limit and auth refusals / s')).toContain('status=~"401|403"');
    expect(exprs('Upserts / s by result')).toContain('wizard_upserts_total');
    expect(exprs('NATS connected')).toContain('wizard_nats_connected');
  });

  it("ships in the production overlay as a ConfigMap for Grafana's dashboard sidecar", async () => {
    const objects = await renderKustomization('deploy/k8s/overlays/production');
    const configMap = findObject(objects, 'ConfigMap', 'wizard-stream-grafana-dashboard');
    validateAgainstApiSchema(configMap);
    expect(configMap.metadata.labels?.grafana_dashboard).toBe('1');
    expect(configMap.metadata.namespace).toBe('wizard-stream');
    // Generated from the file itself, not a copy that could drift.
    expect(configMap.data?.['wizard-stream.json']).toBe(await readFile(DASHBOARD_PATH, 'utf8'));
  });

  it('reads selectors out of PromQL, stepping over functions, groupings and ranges', () => {
    expect(
      vectorSelectors(
        'histogram_quantile(0.99, sum by (le) (rate(a_bucket{x="1", y=~"p|q"}[5m]))) / clamp_min(sum(b) without (pod), 1e-9) > 2 or vector(0)',
      ),
    ).toEqual([
      {
        name: 'a_bucket',
        matchers: [
          { label: 'x', op: '=', value: '1' },
          { label: 'y', op: '=~', value: 'p|q' },
        ],
      },
      { name: 'b', matchers: [] },
    ]);
    expect(vectorSelectors('{__name__="c", z!="2"} offset 5m')).toEqual([
      { name: 'c', matchers: [{ label: 'z', op: '!=', value: '2' }] },
    ]);
    expect(() => vectorSelectors('sum(a) ? b')).toThrow(/cannot read PromQL/);
  });
});

/**
 * The names are checked against what real processes export after real traffic, not against the source:
 * a metric only registered under a condition, a renamed label or a histogram read without its suffix
 * would all pass a text search and fail here.
 */
describe('the Grafana dashboard against the running write-api and stream-gateway', () => {
  let nats: NatsServer;
  let database: TestDatabase;
  let writeApi: FleetMember;
  let gateway: FleetMember;
  let subscription: Subscription | undefined;
  let one: SeededMember;
  let two: SeededMember;
  const series: ScrapedSeries[] = [];

  beforeAll(async () => {
    [nats, database] = await Promise.all([NatsServer.start(), createTestDatabase('postgres')]);
    const suffix = randomBytes(4).toString('hex');
    one = await seedTeamWithMember(database.db, {
      teamName: 'grafana-one',
      email: `one-${suffix}@example.com`,
    });
    two = await seedTeamWithMember(database.db, {
      teamName: 'grafana-two',
      email: `two-${suffix}@example.com`,
    });
    writeApi = await spawnMember('write-api', WRITE_API_ENTRY, {
      DATABASE_URL: required(database.url, 'the database URL'),
      NATS_URL: nats.url,
      INTERNAL_API_TOKEN,
      STREAM_TOKEN_SECRET: 'grafana-test-stream-token-secret',
      MIGRATE_ON_START: '0',
      RELAY_INTERVAL_MS: '200',
      RATE_LIMIT_PER_MIN: String(RATE_LIMIT_PER_MIN),
      LOG_LEVEL: 'warn',
    });
    gateway = await spawnMember('gateway', GATEWAY_ENTRY, {
      NATS_URL: nats.url,
      WRITE_API_URL: writeApi.process.url,
      INTERNAL_API_TOKEN,
      LOG_LEVEL: 'warn',
    });
    await awaitAllConnectedToNats([writeApi, gateway], 20_000);

    // A subscriber on the gateway: deliveries and the commit → write histogram.
    const frames: Session[] = [];
    subscription = subscribe({
      baseUrl: gateway.process.url,
      projectId: one.teamId,
      workflowId: 'grafana',
      credentials: { apiKey: one.apiKey },
      transport: 'fetch',
      onSession: (session) => frames.push(session),
    });
    await until(() => subscription?.state === 'open', { what: 'the stream to open' });
    const push = createPushClient({
      baseUrl: writeApi.process.url,
      projectId: one.teamId,
      apiKey: one.apiKey,
      maxAttempts: 1,
    });
    let version = 0;
    for (const runPhase of ['running', 'running', 'completed'] as const) {
      const session = await push.upsert({
        session_id: 'grafana-run',
        workflow_id: 'grafana',
        skill_id: 'nextjs',
        started_at: '2026-01-01T00:00:00Z',
        run_phase: runPhase,
      });
      version = session.version;
    }
    await until(() => frames.some((frame) => frame.version === version), {
      what: 'the last push on the stream',
    });

    // Refusals: an invalid body (400), a bad key on write-api (401) and on a stream connect (the
    // gateway's snapshot is refused), and a key over its rate limit (429).
    const invalid = await fetch(sessionsUrl(writeApi.process.url, one.teamId), {
      method: 'POST',
      headers: { authorization: `Bearer ${one.apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ session_id: 'x', workflow_id: 'grafana', run_phase: 'flying' }),
    });
    expect(invalid.status).toBe(400);
    const badKey = await fetch(sessionsUrl(writeApi.process.url, one.teamId), {
      headers: { authorization: 'Bearer wsk_not_a_key' },
    });
    expect(badKey.status).toBe(401);
    // A key of the right form, so that the gateway asks write-api, which refuses it.
    const unknownKey = `wsk_${randomBytes(32).toString('base64url')}`;
    const refusedStream = await fetch(streamUrl(gateway.process.url, one.teamId, 'grafana'), {
      headers: { authorization: `Bearer ${unknownKey}`, accept: 'text/event-stream' },
    });
    expect(refusedStream.status).toBe(401);
    await refusedStream.body?.cancel();
    let limited = false;
    for (let attempt = 0; attempt <= RATE_LIMIT_PER_MIN && !limited; attempt++) {
      const response = await fetch(`${sessionsUrl(writeApi.process.url, two.teamId)}?workflow_id=grafana`, {
        headers: { authorization: `Bearer ${two.apiKey}` },
      });
      await response.body?.cancel();
      limited = response.status === 429;
    }
    expect(limited).toBe(true);

    for (const member of [writeApi, gateway]) {
      const response = await fetch(`${member.process.url}/metrics`);
      expect(response.status).toBe(200);
      series.push(...parseExposition(await response.text()));
    }
  }, 120_000);

  afterAll(async () => {
    subscription?.close();
    await subscription?.closed;
    await Promise.allSettled([writeApi, gateway].filter(Boolean).map((member) => stopMember(member)));
    await nats?.stop();
    await database?.dispose();
  }, 30_000);

  it('finds something to catch: an unknown metric, a misnamed label, a histogram without its suffix', () => {
    expect(
      missingSeries(
        [
          { where: 'probe', expr: 'sum(rate(wizard_not_a_metric_total[5m]))' },
          { where: 'probe', expr: 'sum(rate(wizard_upserts_total{outcome="created"}[5m]))' },
          {
            where: 'probe',
            expr: 'histogram_quantile(0.99, rate(wizard_gateway_commit_to_write_seconds[5m]))',
          },
          { where: 'probe', expr: 'sum(rate(wizard_upserts_total{result="created"}[5m]))' },
        ],
        series,
      ),
    ).toEqual([
      'probe: wizard_not_a_metric_total is not exported (sum(rate(wizard_not_a_metric_total[5m])))',
      'probe: no wizard_upserts_total series has {outcome="created"}; outcome is "" (sum(rate(wizard_upserts_total{outcome="created"}[5m])))',
      'probe: wizard_gateway_commit_to_write_seconds is not exported (histogram_quantile(0.99, rate(wizard_gateway_commit_to_write_seconds[5m])))',
    ]);
  });

  it('reads in every expression only series that the services export', () => {
    const expressions = dashboardExpressions();
    expect(expressions.length).toBeGreaterThanOrEqual(20);
    expect(missingSeries(expressions, series)).toEqual([]);
    // Both services answered, and each contributed its own metrics.
    expect(series.some((sample) => sample.labels.service === 'write-api')).toBe(true);
    expect(series.some((sample) => sample.labels.service === 'stream-gateway')).toBe(true);
  });
});
