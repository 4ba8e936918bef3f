import { readFileSync } from 'node:fs';

const ESTABLISHED = '01';
const LISTEN = '0A';

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

/** True while some process listens on this TCP port (IPv4 or IPv6). */
export function listeningOnPort(port: number): boolean {
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
      if (local && fields[3] === LISTEN && Number.parseInt(local.split(':')[1] ?? '', 16) === port)
        return true;
    }
  }
  return false;
}
