import { createPushClient, type Subscription, subscribe } from '@wizard-stream/client';
import { type ConnectSettings, fetchDevCredentials, settingsFromUrl, urlForSettings } from './settings.js';
import { SessionView } from './view.js';

const view = new SessionView();
const form = document.querySelector<HTMLFormElement>('#connect');
if (!form) throw new Error('dashboard markup is missing the connect form');
const field = (name: keyof ConnectSettings) => form.elements.namedItem(name) as HTMLInputElement;

let subscription: Subscription | undefined;
/** Bumped on every connect: a replaced subscription still reports its own close, which must not show. */
let generation = 0;

function readForm(): ConnectSettings {
  return {
    projectId: field('projectId').value.trim(),
    workflowId: field('workflowId').value.trim(),
    skillId: field('skillId').value.trim(),
    apiKey: field('apiKey').value.trim(),
  };
}

function connect(settings: ConnectSettings): void {
  subscription?.close();
  const current = ++generation;
  const isCurrent = () => current === generation;
  const projectId = Number(settings.projectId);
  const baseUrl = window.location.origin;
  const push = createPushClient({ baseUrl, projectId, apiKey: settings.apiKey, maxAttempts: 3 });
  history.replaceState(null, '', urlForSettings(settings, window.location));
  const skillId = settings.skillId || undefined;
  view.showWaiting(settings.workflowId, skillId);
  subscription = subscribe({
    baseUrl,
    projectId,
    workflowId: settings.workflowId,
    ...(skillId ? { skillId } : {}),
    // A fresh stream token on every (re)connect, so an expired one never strands the page.
    credentials: { getToken: async () => (await push.mintStreamToken()).token },
    onSession: (session, delivery) => {
      if (!isCurrent()) return;
      view.showNotice(undefined);
      view.showSession(session, delivery);
    },
    onState: (state) => {
      if (isCurrent()) view.showState(state);
    },
    onClose: (close) => {
      if (isCurrent()) view.showClosed(close);
    },
  });
}

form.addEventListener('submit', (event) => {
  event.preventDefault();
  connect(readForm());
});

setInterval(() => view.tick(Date.now()), 1000);

const fromUrl = settingsFromUrl(window.location.search);
if (fromUrl.projectId) field('projectId').value = fromUrl.projectId;
if (fromUrl.workflowId) field('workflowId').value = fromUrl.workflowId;
if (fromUrl.skillId) field('skillId').value = fromUrl.skillId;

const dev = await fetchDevCredentials();
const team =
  dev?.teams.find((candidate) => String(candidate.id) === field('projectId').value) ?? dev?.teams[0];
if (team) {
  if (!field('projectId').value) field('projectId').value = String(team.id);
  field('apiKey').value = team.api_key;
  const hint = document.querySelector<HTMLElement>('[data-testid="credentials-hint"]');
  if (hint) {
    hint.hidden = false;
    hint.textContent = `API key pre-filled for team ${team.id} from the local stack (.data/credentials.json).`;
  }
}
document.body.dataset.ready = 'true';
if (fromUrl.connect && form.checkValidity()) connect(readForm());
