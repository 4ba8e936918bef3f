import { fileURLToPath } from 'node:url';
import { type ServiceProcess, spawnService, until } from '@wizard-stream/testkit';

export const WRITE_API_ENTRY = fileURLToPath(
  new URL('../../services/write-api/src/main.ts', import.meta.url),
);
export const GATEWAY_ENTRY = fileURLToPath(
  new URL('../../services/stream-gateway/src/main.ts', import.meta.url),
);

/** A service child process with its role, for messages that say which one misbehaved. */
export interface FleetMember {
  name: string;
  process: ServiceProcess;
  /** Set once the process has exited, whatever the reason. */
  exitedWith: { code: number | null; signal: NodeJS.Signals | null } | undefined;
}

/** Starts a service as a child process and resolves once its /healthz answers; a free port unless given. */
export async function spawnMember(
  name: string,
  entry: string,
  env: Record<string, string>,
  port?: number,
): Promise<FleetMember> {
  const child = await spawnService(entry, env, {
    timeoutMs: 60_000,
    ...(port === undefined ? {} : { port }),
  });
  const member: FleetMember = { name, process: child, exitedWith: undefined };
  void child.exited.then((result) => {
    member.exitedWith = result;
  });
  return member;
}

/** SIGTERM, then SIGKILL if the process is still there after `graceMs`; resolves once it has exited. */
export async function stopMember(member: FleetMember, graceMs = 5000): Promise<void> {
  if (member.exitedWith) return;
  const timer = setTimeout(() => void member.process.kill('SIGKILL'), graceMs);
  try {
    await member.process.kill('SIGTERM');
  } finally {
    clearTimeout(timer);
  }
}

/**
 * True when the service says it is connected to NATS: a gateway's /readyz is 200 only then; write-api's
 * /readyz reports the NATS state in its body (it stays ready without NATS, by design).
 */
export function isConnectedToNats(member: FleetMember): Promise<boolean> {
  return isUrlConnectedToNats(member.process.url);
}

/** The same for a service at `url` (a pod, a process). */
export async function isUrlConnectedToNats(url: string): Promise<boolean> {
  try {
    const response = await fetch(`${url}/readyz`);
    const body = (await response.json()) as { natsConnected?: boolean; checks?: { nats?: boolean } };
    return response.status === 200 && (body.natsConnected ?? body.checks?.nats) === true;
  } catch {
    return false;
  }
}

export async function awaitAllConnectedToNats(members: FleetMember[], timeoutMs: number): Promise<void> {
  await until(async () => (await Promise.all(members.map(isConnectedToNats))).every(Boolean), {
    timeoutMs,
    intervalMs: 100,
    what: `${members.map((member) => member.name).join(', ')} connected to NATS`,
  });
}

/** The load balancer in front of the gateways: round robin over those it considers alive. */
export class RoundRobinBalancer {
  private next = 0;
  private readonly alive: string[];

  constructor(origins: string[]) {
    this.alive = [...origins];
  }

  pick = (): string => {
    const origin = this.alive[this.next++ % this.alive.length];
    if (!origin) throw new Error('the balancer has no live gateway left');
    return origin;
  };

  /** Takes an origin out of rotation, as a failed health check would. */
  remove(origin: string): void {
    const index = this.alive.indexOf(origin);
    if (index !== -1) this.alive.splice(index, 1);
  }
}
