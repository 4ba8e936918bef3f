import { SessionDetailView } from './detail-view.js';
import { SessionListView } from './list-view.js';
import { type ConnectSettings, fetchDevCredentials, settingsFromUrl, urlForSettings } from './settings.js';
import { StatusView } from './status-view.js';
import { WorkflowController } from './workflow.js';

const form = document.querySelector<HTMLFormElement>('#connect');
if (!form) throw new Error('dashboard markup is missing the connect form');
const field = (name: keyof ConnectSettings) => form.elements.namedItem(name) as HTMLInputElement;

const controller: WorkflowController = new WorkflowController({
  status: new StatusView(),
  list: new SessionListView({
    onSelect: (sessionId) => controller.select(sessionId),
    onPage: (direction) => controller.page(direction),
  }),
  detail: new SessionDetailView(),
});

function readForm(): ConnectSettings {
  return {
    projectId: field('projectId').value.trim(),
    workflowId: field('workflowId').value.trim(),
    skillId: field('skillId').value.trim(),
    apiKey: field('apiKey').value.trim(),
  };
}

function connect(settings: ConnectSettings): void {
  history.replaceState(null, '', urlForSettings(settings, window.location));
  controller.connect(settings);
}

form.addEventListener('submit', (event) => {
  event.preventDefault();
  connect(readForm());
});

setInterval(() => controller.tick(Date.now()), 1000);

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
