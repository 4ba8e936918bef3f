import { sessionsUrl } from '@wizard-stream/contracts';

/** Sessions as the benchmarks push them: the wizard CLI's body, and one push through write-api. */

export function sessionBody(sessionId: string, workflowId: string, skillId: string, step: number): string {
  return JSON.stringify({
    session_id: sessionId,
    workflow_id: workflowId,
    skill_id: skillId,
    started_at: new Date(Date.UTC(2026, 10, 25, 10, 0, step % 60)).toISOString(),
    run_phase: 'running',
    tasks: [
      { id: '0', title: 'Install the SDK', status: 'completed' },
      { id: '1', title: `Instrument events (step ${step})`, status: 'in_progress' },
      { id: '2', title: 'Verify ingestion', status: 'pending' },
    ],
  });
}

/** One push; resolves with the DTO write-api answered (201 created, 200 updated). */
export async function upsert(
  writeApiUrl: string,
  teamId: number,
  apiKey: string,
  body: string,
): Promise<string> {
  const response = await fetch(sessionsUrl(writeApiUrl, teamId), {
    method: 'POST',
    headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
    body,
  });
  const text = await response.text();
  if (response.status !== 200 && response.status !== 201) {
    throw new Error(`upsert answered ${response.status}: ${text}`);
  }
  return text;
}

/** The DTO's version: its last field (docs/wire-format.md#the-session-dto), so it is read without parsing the whole body. */
export function dtoVersion(dto: string): number {
  const match = dto.match(/"version":(\d+)\}$/);
  if (!match) throw new Error(`not a session DTO: ${dto.slice(0, 200)}`);
  return Number(match[1]);
}

/** The DTO bytes with another version. */
export function withVersion(dto: string, version: number): string {
  const at = dto.lastIndexOf('"version":');
  if (at === -1 || !dto.endsWith('}')) throw new Error(`not a session DTO: ${dto.slice(0, 200)}`);
  return `${dto.slice(0, at)}"version":${version}}`;
}
