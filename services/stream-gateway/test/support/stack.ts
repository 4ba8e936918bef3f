import { BusConnection, publishSession } from '@wizard-stream/bus';
import { sessionSubject, streamUrl } from '@wizard-stream/contracts';
import { type DialectName, type SeededMember, seedTeamWithMember } from '@wizard-stream/db';
import { createTestDatabase, freePort, NatsServer, type TestDatabase } from '@wizard-stream/testkit';
import { loadWriteApiConfig, type RunningWriteApi, startWriteApi } from '@wizard-stream/write-api';
import { loadStreamGatewayConfig, type RunningStreamGateway, startStreamGateway } from '../../src/index.js';

export const INTERNAL_API_TOKEN = 'gateway-tests-internal-token-0123456789';

export interface UpsertFields {
  sessionId: string;
  workflowId: string;
  skillId: string;
  runPhase?: 'idle' | 'running' | 'completed' | 'error';
  handoffText?: string;
  startedAt?: string;
}

/**
 * The real parts a gateway test needs: its own nats-server, a fresh database, write-api in process and
 * two seeded teams; gateways are started on demand and everything is closed by close().
 */
export class TestStack {
  readonly gateways: RunningStreamGateway[] = [];
  private publisher: BusConnection | undefined;

  private constructor(
    readonly nats: NatsServer,
    readonly database: TestDatabase,
    public writeApi: RunningWriteApi,
    readonly teams: [SeededMember, SeededMember],
  ) {}

  static async start(dialect: DialectName = 'postgres'): Promise<TestStack> {
    const nats = await NatsServer.start();
    const database = await createTestDatabase(dialect);
    const suffix = Math.random().toString(36).slice(2);
    const teams: [SeededMember, SeededMember] = [
      await seedTeamWithMember(database.db, {
        teamName: 'one',
        email: `one-${suffix}@example.com`,
        firstName: 'One',
      }),
      await seedTeamWithMember(database.db, {
        teamName: 'two',
        email: `two-${suffix}@example.com`,
        firstName: 'Two',
      }),
    ];
    const writeApi = await startWriteApi(loadWriteApiConfig(TestStack.writeApiEnv(nats, database)), {
      database,
    });
    return new TestStack(nats, database, writeApi, teams);
  }

  static writeApiEnv(nats: NatsServer, database: TestDatabase): Record<string, string> {
    return {
      PORT: '0',
      NATS_URL: nats.url,
      ...(database.url ? { DATABASE_URL: database.url } : {}),
      INTERNAL_API_TOKEN,
      INTERNAL_PORT: '0',
      STREAM_TOKEN_SECRET: 'gateway-tests-stream-token-secret',
      RATE_LIMIT_PER_MIN: '1000000',
      RELAY_INTERVAL_MS: '200',
      LOG_LEVEL: 'error',
    };
  }

  /** The environment a gateway of this stack runs with; overrides win. */
  gatewayEnv(overrides: Record<string, string> = {}): Record<string, string> {
    return {
      PORT: '0',
      NATS_URL: this.nats.url,
      WRITE_API_URL: this.writeApi.url,
      WRITE_API_INTERNAL_URL: this.writeApi.internalUrl ?? '',
      INTERNAL_API_TOKEN,
      LOG_LEVEL: 'error',
      ...overrides,
    };
  }

  async startGateway(
    overrides: Record<string, string> = {},
    options: { logStream?: NodeJS.WritableStream } = {},
  ): Promise<RunningStreamGateway> {
    const gateway = await startStreamGateway(loadStreamGatewayConfig(this.gatewayEnv(overrides)), options);
    this.gateways.push(gateway);
    await gateway.state.bus.ready();
    return gateway;
  }

  /** A gateway whose NATS_URL points at a port nobody listens on: it never connects. */
  async startGatewayWithoutBus(): Promise<RunningStreamGateway> {
    const gateway = await startStreamGateway(
      loadStreamGatewayConfig(this.gatewayEnv({ NATS_URL: `nats://127.0.0.1:${await freePort()}` })),
    );
    this.gateways.push(gateway);
    return gateway;
  }

  streamUrl(gatewayUrl: string, teamId: number, workflowId: string, skillId?: string): string {
    return streamUrl(gatewayUrl, teamId, workflowId, skillId);
  }

  /** A session upsert through write-api, as the CLI does it; returns the committed version. */
  async upsert(team: SeededMember, fields: UpsertFields): Promise<number> {
    const response = await fetch(`${this.writeApi.url}/api/projects/${team.teamId}/wizard/sessions/`, {
      method: 'POST',
      headers: { authorization: `Bearer ${team.apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        session_id: fields.sessionId,
        workflow_id: fields.workflowId,
        skill_id: fields.skillId,
        started_at: fields.startedAt ?? '2026-01-01T00:00:00Z',
        run_phase: fields.runPhase ?? 'running',
        tasks: [],
        handoff_text: fields.handoffText ?? null,
      }),
    });
    const text = await response.text();
    if (response.status !== 200 && response.status !== 201) {
      throw new Error(`upsert of ${fields.sessionId} failed: ${response.status} ${text}`);
    }
    return (JSON.parse(text) as { version: number }).version;
  }

  /** Publishes a session straight on NATS with the headers of docs/wire-format.md#nats (for volume: no database round trip). */
  async publishRaw(
    teamId: number,
    workflowId: string,
    skillId: string,
    sessionId: string,
    version: number,
    payload: string,
    traceparent?: string,
  ): Promise<void> {
    if (!this.publisher) {
      this.publisher = new BusConnection({ url: this.nats.url, name: 'gateway-test-publisher' });
      await this.publisher.ready();
    }
    publishSession(this.publisher, {
      subject: sessionSubject(teamId, workflowId, skillId),
      payload,
      sessionId,
      version,
      committedAtMs: Date.now(),
      traceparent,
    });
  }

  async flushPublisher(): Promise<void> {
    await this.publisher?.nats?.flush();
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.gateways.map((gateway) => gateway.close()));
    await this.publisher?.close();
    await this.writeApi.close();
    await this.database.dispose();
    await this.nats.stop();
  }
}

/** A DTO-shaped payload of about `bytes` bytes for direct publishes. */
export function syntheticSession(
  teamId: number,
  workflowId: string,
  skillId: string,
  sessionId: string,
  version: number,
  bytes = 0,
): string {
  return JSON.stringify({
    session_id: sessionId,
    team_id: teamId,
    workflow_id: workflowId,
    skill_id: skillId,
    run_phase: 'running',
    handoff_text: 'x'.repeat(bytes),
    version,
  });
}
