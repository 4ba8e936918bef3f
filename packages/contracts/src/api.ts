/** URL layout shared by write-api, the gateway, the SDK and the edge proxy (docs/api.md, docs/api.md#stream). */

/** The CLI's path and PostHog's alias; both serve the same routes. */
export const SESSION_COLLECTION_PATHS = [
  '/api/projects/:projectId/wizard/sessions',
  '/api/projects/:projectId/wizard_sessions',
] as const;

export const STREAM_TOKEN_PATH = '/api/projects/:projectId/wizard/stream_tokens';

export function sessionsUrl(baseUrl: string, projectId: number): string {
  return `${trimSlash(baseUrl)}/api/projects/${projectId}/wizard/sessions/`;
}

export function latestSessionUrl(
  baseUrl: string,
  projectId: number,
  workflowId: string,
  skillId?: string,
): string {
  const query = new URLSearchParams({ workflow_id: workflowId });
  if (skillId !== undefined) query.set('skill_id', skillId);
  return `${sessionsUrl(baseUrl, projectId)}latest/?${query}`;
}

/** The list call, newest `started_at` first (docs/api.md). */
export function listSessionsUrl(
  baseUrl: string,
  projectId: number,
  filter: { workflowId: string; skillId?: string | undefined; limit?: number },
): string {
  const query = new URLSearchParams({ workflow_id: filter.workflowId });
  if (filter.skillId !== undefined) query.set('skill_id', filter.skillId);
  if (filter.limit !== undefined) query.set('limit', String(filter.limit));
  return `${sessionsUrl(baseUrl, projectId)}?${query}`;
}

export function streamUrl(baseUrl: string, projectId: number, workflowId: string, skillId?: string): string {
  const query = new URLSearchParams({ workflow_id: workflowId });
  if (skillId !== undefined) query.set('skill_id', skillId);
  return `${sessionsUrl(baseUrl, projectId)}stream/?${query}`;
}

export function streamTokensUrl(baseUrl: string, projectId: number): string {
  return `${trimSlash(baseUrl)}/api/projects/${projectId}/wizard/stream_tokens/`;
}

/** True for a stream URL path, under either alias; the edge proxy routes these to the gateways. */
export function isStreamPath(pathname: string): boolean {
  return /^\/api\/projects\/[^/]+\/(wizard\/sessions|wizard_sessions)\/stream\/?$/.test(pathname);
}

/** The caller's personal API keys (PostHog's path): list and create here, delete at `…/:id/`. */
export const PERSONAL_API_KEYS_PATH = '/api/personal_api_keys';

export function personalApiKeysUrl(baseUrl: string, keyId?: number): string {
  return `${trimSlash(baseUrl)}${PERSONAL_API_KEYS_PATH}/${keyId === undefined ? '' : `${keyId}/`}`;
}

function trimSlash(url: string): string {
  return url.endsWith('/') ? url.slice(0, -1) : url;
}

/** The managing scopes follow PostHog's names; a key can only create keys with scopes it holds itself. */
export const SCOPES = {
  read: 'wizard_session:read',
  write: 'wizard_session:write',
  keysRead: 'personal_api_key:read',
  keysWrite: 'personal_api_key:write',
} as const;
export type Scope = (typeof SCOPES)[keyof typeof SCOPES];

/** EventSource cannot send headers, so browsers pass a stream token in this query parameter. */
export const STREAM_TOKEN_QUERY_PARAM = 'token';
export const STREAM_TOKEN_TTL_MS = 10 * 60 * 1000;
