import { streamSubject } from '@wizard-stream/contracts';

/** What one stream follows: a workflow of a team, one skill of it or (skillId undefined) every skill. */
export interface StreamRoute {
  teamId: number;
  workflowId: string;
  skillId: string | undefined;
}

/** The NATS subject that carries the route's updates (docs/wire-format.md#nats). */
export function routeSubject(route: StreamRoute): string {
  return streamSubject(route.teamId, route.workflowId, route.skillId);
}
