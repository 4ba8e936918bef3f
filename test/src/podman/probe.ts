import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { runCommand, tryPodman } from './podman.js';
import { postgresBinDir } from './postgres.js';

export type PodmanProbe = { ok: true } | { ok: false; missing: string[] };

const onPath = async (binary: string) => (await runCommand('sh', ['-c', `command -v ${binary}`])).code === 0;

/**
 * Runs /bin/true in a container whose root filesystem is that binary and the libraries ldd lists: proves
 * podman, the OCI runtime, cgroups and rlimits work without needing any image.
 */
async function runTrivialContainer(): Promise<string | undefined> {
  const libraries = await runCommand('ldd', ['/bin/true']);
  if (libraries.code !== 0) return `ldd /bin/true failed: ${libraries.stderr}`;
  const paths = [...libraries.stdout.matchAll(/(\/\S+)/g)].map((match) => match[1] as string);
  const root = await mkdtemp(join(tmpdir(), 'wsdeploy-probe-'));
  try {
    for (const path of ['/bin/true', ...paths]) {
      await mkdir(join(root, dirname(path)), { recursive: true });
      await cp(path, join(root, path), { dereference: true });
    }
    const result = await tryPodman(
      ['run', '--rm', '--network', 'none', '--read-only', '--rootfs', root, '/bin/true'],
      {
        timeoutMs: 60_000,
      },
    );
    return result.code === 0 ? undefined : `podman run exited with ${result.code}: ${result.stderr.trim()}`;
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

/**
 * What this machine lacks to run the deployment under podman, each with how to get it; empty when
 * nothing is missing. Only these make the deployment test skip.
 */
export async function probePodman(): Promise<PodmanProbe> {
  const missing: string[] = [];
  if (process.platform !== 'linux') return { ok: false, missing: [`Linux (this is ${process.platform})`] };
  if (process.getuid?.() !== 0) {
    missing.push('root: the test drives rootful podman (static pod IPs on a bridge the host can reach)');
  }
  const tools: [string, string][] = [
    ['podman', 'apt-get install podman'],
    ['runc', 'apt-get install runc'],
    ['mmdebstrap', 'apt-get install mmdebstrap'],
    ['kubectl', 'apt-get install kubectl'],
  ];
  for (const [binary, install] of tools) if (!(await onPath(binary))) missing.push(`${binary} (${install})`);
  if (!existsSync('/usr/lib/cni/bridge') && !existsSync('/usr/lib/podman/netavark')) {
    missing.push('container networking (apt-get install containernetworking-plugins)');
  }
  if (!postgresBinDir()) missing.push('PostgreSQL server binaries (apt-get install postgresql)');
  if (missing.length > 0) return { ok: false, missing };
  const info = await tryPodman(['info', '--format', '{{.Host.OCIRuntime.Name}}']);
  if (info.code !== 0)
    return { ok: false, missing: [`a working podman (podman info: ${info.stderr.trim()})`] };
  const failure = await runTrivialContainer();
  if (failure) return { ok: false, missing: [`a podman that can run a container (${failure})`] };
  return { ok: true };
}
