// Runs the dev overlay under podman on this machine until Ctrl-C, then removes everything it made:
//   node --import tsx test/src/podman/cli.ts            (start; prints the endpoints and an API key)
//   node --import tsx test/src/podman/cli.ts --sweep    (only remove what killed runs left behind)
// The same code as test/deploy-run.test.ts; see docs/operations.md, "Try the manifests locally".
import { randomBytes } from 'node:crypto';
import { openDatabase, seedTeamWithMember } from '@wizard-stream/db';
import { PodmanDeployment, sweepAbandonedRuns } from './deployment.js';
import { probePodman } from './probe.js';

const log = (line: string) => console.log(`deploy-local: ${line}`);

if (process.argv.includes('--sweep')) {
  const swept = await sweepAbandonedRuns();
  log(swept.length > 0 ? `removed ${swept.join(', ')}` : 'nothing left behind');
  process.exit(0);
}

const probe = await probePodman();
if (!probe.ok) {
  console.error(
    `deploy-local: podman cannot run the deployment here; missing:\n  - ${probe.missing.join('\n  - ')}`,
  );
  process.exit(1);
}

const deployment = new PodmanDeployment({
  overlay: 'deploy/k8s/overlays/dev',
  replicas: { 'write-api': 2, 'stream-gateway': 2 },
  log,
});
// Keeps the process up until a signal; nothing else would once start() has returned.
const keepAlive = setInterval(() => {}, 60_000);
let stopping = false;
const stop = async (code: number) => {
  if (stopping) return;
  stopping = true;
  clearInterval(keepAlive);
  log('removing pods, secrets, volumes, network and PostgreSQL…');
  await deployment.remove();
  process.exit(code);
};
process.on('SIGINT', () => void stop(0));
process.on('SIGTERM', () => void stop(0));

try {
  await deployment.start();
  const database = await openDatabase({ url: deployment.database?.url });
  const team = await seedTeamWithMember(database.db, {
    teamName: 'local',
    email: `local-${randomBytes(3).toString('hex')}@example.com`,
  });
  await database.close();
  const service = (name: string) => deployment.podsOf(`Service/${name}`)[0]?.ip;
  console.log(
    JSON.stringify(
      {
        api: `http://${service('write-api')}`,
        stream: `http://${service('stream-gateway')}`,
        project_id: team.teamId,
        api_key: team.apiKey,
        pods: deployment.plan?.pods.map((pod) => ({ pod: pod.name, owner: pod.owner, ip: pod.ip })),
        database_url: deployment.database?.url,
        timings_ms: deployment.timings,
      },
      null,
      2,
    ),
  );
  log('running; Ctrl-C removes everything');
} catch (error) {
  console.error(error);
  await stop(1);
}
