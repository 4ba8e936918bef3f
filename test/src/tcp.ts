import { readFileSync } from 'node:fs';

const ESTABLISHED = '01';

/** How many established TCP connections (IPv4 and IPv6) have this local port: open streams on a server. */
export function establishedConnectionsOnPort(port: number): number {
  let count = 0;
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      const local = fields[1];
      if (!local || fields[3] !== ESTABLISHED) continue;
      if (Number.parseInt(local.split(':')[1] ?? '', 16) === port) count++;
    }
  }
  return count;
}
