import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { Agent } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, waitForPort } from '@wizard-stream/testkit';
import { type FanoutOptions, type FanoutResult, runFanout } from './gateway-load.js';
import { postJson } from './http-post.js';
import { childPids } from './proc-stats.js';

/**
 * The first peer: nginx with the nchan module (C, event loop), one worker process, serving the same
 * clients over EventSource, with messages POSTed to its publisher location at the same rates. The
 * message body is the same session DTO, so the clients read the version (and the latency) the same way.
 */

const NGINX = '/usr/sbin/nginx';
const NCHAN_MODULE = '/usr/lib/nginx/modules/ngx_nchan_module.so';
const WORKER_PROCESSES = 1;

async function nginxVersion(): Promise<string> {
  const { stderr } = await promisify(execFile)(NGINX, ['-v']);
  return stderr.trim().replace(/^nginx version: /, '');
}

const post = (agent: Agent, port: number, body: string) =>
  postJson(agent, port, '/pub', body, 'nchan publish');

export async function benchNchan(
  options: FanoutOptions,
  dtoWithVersion: (version: number) => string,
): Promise<FanoutResult & { workerProcesses: number; nginxVersion: string }> {
  if (!existsSync(NGINX) || !existsSync(NCHAN_MODULE)) {
    throw new Error(
      `nginx with nchan is not installed (${NGINX}, ${NCHAN_MODULE}): apt-get install -y libnginx-mod-nchan`,
    );
  }
  const dir = await mkdtemp(join(tmpdir(), 'wizard-nchan-'));
  const port = await freePort();
  const template = await readFile(new URL('./nchan/nginx.conf.template', import.meta.url), 'utf8');
  const config = template
    .replaceAll('{{module}}', NCHAN_MODULE)
    .replaceAll('{{workers}}', String(WORKER_PROCESSES))
    .replaceAll('{{dir}}', dir)
    .replaceAll('{{port}}', String(port));
  await writeFile(join(dir, 'nginx.conf'), config);
  let nginx: ChildProcess | undefined;
  const agent = new Agent({ keepAlive: true, maxSockets: 32 });
  try {
    nginx = spawn(NGINX, ['-p', dir, '-c', join(dir, 'nginx.conf')], {
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    const master = nginx;
    const exited = new Promise<never>((_, reject) =>
      master.once('exit', (code) => reject(new Error(`nginx exited with ${code}; see ${dir}/error.log`))),
    );
    exited.catch(() => {});
    await Promise.race([waitForPort(port, 10_000), exited]);
    // The port is bound by the master before it forks: wait for the worker.
    let workerPids: number[] = [];
    for (let attempt = 0; attempt < 100 && workerPids.length < WORKER_PROCESSES; attempt++) {
      workerPids = await childPids(master.pid as number);
      if (workerPids.length < WORKER_PROCESSES) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    if (workerPids.length !== WORKER_PROCESSES) throw new Error(`nginx runs ${workerPids.length} workers`);
    // The newest message is what a subscriber receives first, as the gateway's snapshot.
    await post(agent, port, dtoWithVersion(1));
    const session = await runFanout(
      {
        name: 'nginx-nchan',
        host: '127.0.0.1',
        port,
        path: '/sub',
        headers: { accept: 'text/event-stream' },
        pids: () => [master.pid as number, ...workerPids],
        publish: (version) => post(agent, port, dtoWithVersion(version)),
      },
      options,
    );
    await session.close();
    return { ...session.result, workerProcesses: WORKER_PROCESSES, nginxVersion: await nginxVersion() };
  } finally {
    agent.destroy();
    if (nginx && nginx.exitCode === null) {
      const gone = new Promise((resolve) => nginx?.once('exit', resolve));
      nginx.kill('SIGTERM');
      await gone;
    }
    await rm(dir, { recursive: true, force: true });
  }
}
