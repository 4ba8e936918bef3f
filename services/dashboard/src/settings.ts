/** Where the connect form's values come from: the URL, then the local stack's dev credentials. */

export interface ConnectSettings {
  projectId: string;
  workflowId: string;
  skillId: string;
  apiKey: string;
}

/** Served by the local stack's edge proxy only (never in a real deployment). */
const DEV_CREDENTIALS_PATH = '/dev/credentials';

export interface DevCredentials {
  teams: { id: number; api_key: string }[];
}

export async function fetchDevCredentials(): Promise<DevCredentials | undefined> {
  try {
    const response = await fetch(DEV_CREDENTIALS_PATH, { headers: { Accept: 'application/json' } });
    if (!response.ok) return undefined;
    const body = (await response.json()) as Partial<DevCredentials>;
    return Array.isArray(body.teams) && body.teams.length > 0 ? { teams: body.teams } : undefined;
  } catch {
    return undefined;
  }
}

export function settingsFromUrl(search: string): Partial<ConnectSettings> & { connect: boolean } {
  const params = new URLSearchParams(search);
  const settings: Partial<ConnectSettings> & { connect: boolean } = {
    connect: params.get('connect') === '1',
  };
  const project = params.get('project');
  const workflow = params.get('workflow');
  const skill = params.get('skill');
  if (project) settings.projectId = project;
  if (workflow) settings.workflowId = workflow;
  if (skill) settings.skillId = skill;
  return settings;
}

/** Keeps the page's URL shareable: it names what is followed, never the key. */
export function urlForSettings(settings: ConnectSettings, location: Location): string {
  const params = new URLSearchParams({ project: settings.projectId, workflow: settings.workflowId });
  if (settings.skillId) params.set('skill', settings.skillId);
  return `${location.pathname}?${params}`;
}
