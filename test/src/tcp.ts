import { readFileSync } from 'node:fs';

const ESTABLISHED = '01';
const LISTEN = '0A';

/** Every TCP socket of the machine (IPv4 and IPv6) as its local port and state code, from /proc/net. */
function tcpSockets(): { port: number; state: string }[] {
  const sockets: { port: number; state: string }[] = [];
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
      if (!local || fields[3] === undefined) continue;
      sockets.push({ port: Number.parseInt(local.split(':')[1] ?? '', 16), state: fields[3] });
    }
  }
  return sockets;
}

/** How many established TCP connections (IPv4 and IPv6) have this local port: open streams on a server. */
export function establishedConnectionsOnPort(port: number): number {
  return tcpSockets().filter((socket) => socket.port === port && socket.state === ESTABLISHED).length;
}

/** True while some process listens on this TCP port (IPv4 or IPv6). */
export function listeningOnPort(port: number): boolean {
  return tcpSockets().some((socket) => socket.port === port && socket.state === LISTEN);
}
