import { Agent, request } from 'node:http';
import { sessionsUrl } from '@wizard-stream/contracts';
import { dtoVersion, sessionBody } from './sessions.js';

/**
 * CLI-like pushers: each pushes its own session through write-api every intervalMs with its own API
 * key over its own keep-alive connection, as one wizard CLI does. Pushes are spread evenly over the
 * interval. Every push's send time and committed version are kept, for the POST → frame latency.
 */

export interface Cli {
  apiKey: string;
  sessionId: string;
  workflowId: string;
  skillId: string;
}

export interface Push {
  cli: number;
  version: number;
  sentAt: number;
}

export interface FleetResult {
  pushes: Push[];
  errors: number;
  errorSamples: string[];
  /** Pushes that started late because the previous push of the same CLI was still in flight. */
  skipped: number;
}

export function pushOnce(agent: Agent, url: URL, cli: Cli, step: number): Promise<string> {
  const body = sessionBody(cli.sessionId, cli.workflowId, cli.skillId, step);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        agent,
        headers: {
          authorization: `Bearer ${cli.apiKey}`,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
        },
      },
      (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => {
          text += chunk;
        });
        response.once('end', () =>
          response.statusCode === 200 || response.statusCode === 201
            ? resolve(text)
            : reject(new Error(`push answered ${response.statusCode}: ${text.slice(0, 200)}`)),
        );
      },
    );
    req.once('error', reject);
    req.end(body);
  });
}

export class CliFleet {
  private readonly agents: Agent[];
  private readonly url: URL;

  constructor(
    writeApiUrl: string,
    teamId: number,
    private readonly clis: Cli[],
  ) {
    this.url = new URL(sessionsUrl(writeApiUrl, teamId));
    this.agents = clis.map(() => new Agent({ keepAlive: true, maxSockets: 1 }));
  }

  /** One push per CLI, one after the other: creates the sessions the streams then watch. */
  async seed(): Promise<void> {
    for (const [index, cli] of this.clis.entries())
      await pushOnce(this.agents[index] as Agent, this.url, cli, 0);
  }

  async run(intervalMs: number, durationMs: number): Promise<FleetResult> {
    const result: FleetResult = { pushes: [], errors: 0, errorSamples: [], skipped: 0 };
    const startedAt = Date.now();
    const inFlight = new Set<number>();
    const timers: NodeJS.Timeout[] = [];
    const running: Promise<void>[] = [];
    this.clis.forEach((cli, index) => {
      let step = 1;
      const push = () => {
        if (Date.now() - startedAt >= durationMs) return;
        if (inFlight.has(index)) {
          result.skipped++;
          return;
        }
        inFlight.add(index);
        const sentAt = Date.now();
        running.push(
          pushOnce(this.agents[index] as Agent, this.url, cli, step++)
            .then((dto) => {
              result.pushes.push({ cli: index, version: dtoVersion(dto), sentAt });
            })
            .catch((error: Error) => {
              result.errors++;
              if (result.errorSamples.length < 5) result.errorSamples.push(error.message);
            })
            .finally(() => inFlight.delete(index)),
        );
      };
      const offset = Math.floor((index * intervalMs) / this.clis.length);
      timers.push(
        setTimeout(() => {
          push();
          timers.push(setInterval(push, intervalMs));
        }, offset),
      );
    });
    await new Promise((resolve) => setTimeout(resolve, durationMs));
    for (const timer of timers) clearTimeout(timer);
    await Promise.all(running);
    return result;
  }

  close(): void {
    for (const agent of this.agents) agent.destroy();
  }
}
