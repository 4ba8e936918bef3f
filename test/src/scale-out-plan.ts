/**
 * The workload of the scale-out test: which sessions two teams push, in which rounds, and which streams
 * watch them. Pure data, so the test reads as the fault scenario it is.
 */

// Dotted ids travel through the subject token encoding on every node of the cluster.
export const WORKFLOWS = ['wf-0', 'wf.1', 'wf-2', 'wf-3.x', 'wf-4'];
export const SKILLS = ['sk-a', 'sk.b'];
export const ROUNDS = 30;
export const STREAM_COUNT = 300;
/** The gateway is SIGKILLed while this round's upserts are in flight. */
export const KILL_GATEWAY_IN_ROUND = 8;
/** A NATS node is SIGKILLed while this round's upserts are in flight; the "finisher" sessions end in it. */
export const KILL_NATS_IN_ROUND = 15;

export type TeamIndex = 0 | 1;

export interface SessionPlan {
  team: TeamIndex;
  sessionId: string;
  workflowId: string;
  skillId: string;
  startedAt: string;
  /** The round of its last (completed) push: sessions that finish during the NATS outage stop early. */
  lastRound: number;
}

export interface StreamPlan {
  team: TeamIndex;
  workflowId: string;
  skillId: string | undefined;
}

/**
 * Team 0 runs two sessions per workflow and skill: the older one (`-0`) is pushed through all rounds;
 * the newer one (`-1`), which is the latest of every subscription it is in, completes in the round
 * that kills a NATS node and is never pushed again. Team 1, the neighbour, pushes sessions with the same
 * workflow, skill and session ids as team 0's `-0` sessions, through all rounds.
 */
export function plannedSessions(): SessionPlan[] {
  const sessions: SessionPlan[] = [];
  let minute = 0;
  for (const workflowId of WORKFLOWS) {
    for (const skillId of SKILLS) {
      for (const n of [0, 1]) {
        const sessionId = `run-${workflowId}-${skillId}-${n}`;
        const startedAt = new Date(Date.UTC(2026, 0, 1, 0, minute++)).toISOString();
        const lastRound = n === 1 ? KILL_NATS_IN_ROUND : ROUNDS;
        sessions.push({ team: 0, sessionId, workflowId, skillId, startedAt, lastRound });
        if (n === 0) sessions.push({ team: 1, sessionId, workflowId, skillId, startedAt, lastRound });
      }
    }
  }
  return sessions;
}

/** One stream in ten belongs to team 1; one in three is workflow-only (every skill of the workflow). */
export function plannedStreams(): StreamPlan[] {
  return Array.from({ length: STREAM_COUNT }, (_, index) => ({
    team: index % 10 === 9 ? 1 : 0,
    workflowId: WORKFLOWS[(index + Math.floor(index / 10)) % WORKFLOWS.length] as string,
    skillId: index % 3 === 0 ? undefined : SKILLS[Math.floor(index / 3) % SKILLS.length],
  }));
}

export function covers(stream: StreamPlan, session: SessionPlan): boolean {
  return (
    stream.team === session.team &&
    stream.workflowId === session.workflowId &&
    (stream.skillId === undefined || stream.skillId === session.skillId)
  );
}

/** What the gateway snapshots for a subscription: its most recently started session. */
export function latestSession(stream: StreamPlan, sessions: SessionPlan[]): SessionPlan {
  const covered = sessions.filter((session) => covers(stream, session));
  const latest = covered.reduce<SessionPlan | undefined>(
    (best, session) => (best === undefined || session.startedAt > best.startedAt ? session : best),
    undefined,
  );
  if (!latest) throw new Error(`no planned session for stream ${JSON.stringify(stream)}`);
  return latest;
}

/**
 * The sessions whose final version a stream must hold at the end (docs/delivery.md#guarantee, a): every covered session
 * still pushed in the last round (the stream is subscribed then), and the subscription's latest session
 * (what a re-snapshot restores). A session that ended during the outage and is not the latest may be
 * missed by a connection that was away meanwhile; the contract does not promise it.
 */
export function sessionsToConverge(stream: StreamPlan, sessions: SessionPlan[]): SessionPlan[] {
  const latest = latestSession(stream, sessions);
  return sessions.filter(
    (session) => covers(stream, session) && (session.lastRound === ROUNDS || session === latest),
  );
}
