import { isRoutingId } from './ids.js';

/** Every session subject starts with this token; the gateway subscribes under it. */
export const SUBJECT_ROOT = 'wizard';

/**
 * `.` separates NATS tokens, so an id containing one would silently become several tokens and a
 * `*` wildcard would miss it. Ids never contain `%` (see ids.ts), which makes this encoding exact.
 */
export function encodeSubjectToken(id: string): string {
  if (!isRoutingId(id)) {
    throw new Error(`cannot encode ${JSON.stringify(id)} as a subject token: it is not a valid routing id`);
  }
  return id.replaceAll('.', '%2E');
}

export function decodeSubjectToken(token: string): string {
  return token.replaceAll('%2E', '.');
}

function teamToken(teamId: number): string {
  if (!Number.isSafeInteger(teamId) || teamId <= 0) {
    throw new Error(`cannot build a subject for team ${teamId}: team ids are positive integers`);
  }
  return String(teamId);
}

/** `wizard.<team>.<workflow>.<skill>`: the subject a session is published on. */
export function sessionSubject(teamId: number, workflowId: string, skillId: string): string {
  return `${SUBJECT_ROOT}.${teamToken(teamId)}.${encodeSubjectToken(workflowId)}.${encodeSubjectToken(skillId)}`;
}

/** The subject a stream subscribes to: exact when a skill is given, every skill of the workflow otherwise. */
export function streamSubject(teamId: number, workflowId: string, skillId?: string): string {
  return skillId === undefined
    ? `${SUBJECT_ROOT}.${teamToken(teamId)}.${encodeSubjectToken(workflowId)}.*`
    : sessionSubject(teamId, workflowId, skillId);
}

export interface SubjectParts {
  teamId: number;
  workflowId: string;
  skillId: string;
}

/** The inverse of sessionSubject; undefined for anything that is not a session subject. */
export function parseSessionSubject(subject: string): SubjectParts | undefined {
  const tokens = subject.split('.');
  if (tokens.length !== 4 || tokens[0] !== SUBJECT_ROOT) return undefined;
  const [, team, workflow, skill] = tokens as [string, string, string, string];
  const teamId = Number(team);
  if (!/^[1-9][0-9]*$/.test(team) || !Number.isSafeInteger(teamId)) return undefined;
  const workflowId = decodeSubjectToken(workflow);
  const skillId = decodeSubjectToken(skill);
  if (!isRoutingId(workflowId) || !isRoutingId(skillId)) return undefined;
  return { teamId, workflowId, skillId };
}

/**
 * Control messages from write-api to every gateway: revoked keys and removed members, whose open streams
 * end (docs/delivery.md). Three tokens, so no session subject (`wizard.<team>.<workflow>.<skill>`, four)
 * nor stream subscription ever matches it; the payload is revocations.ts's.
 */
export const REVOCATIONS_SUBJECT = `${SUBJECT_ROOT}.control.revocations`;
