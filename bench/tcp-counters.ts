import { readFile } from 'node:fs/promises';

/**
 * The kernel's TCP counters around a connect wave, to tell a slow server from a slow harness: a full
 * accept queue drops SYNs (ListenOverflows / ListenDrops) and the client retries them after 1 s, 3 s…
 * (TCPSynRetrans); a client that runs out of source ports fails its bind or connect (the load clients
 * count EADDRINUSE / EADDRNOTAVAIL themselves). The counters are the network namespace's, so other
 * traffic on the machine shows in them too: read them as an upper bound for the wave's share.
 */

const COUNTERS = {
  TcpExt: [
    'ListenOverflows',
    'ListenDrops',
    'TCPSynRetrans',
    'TCPTimeWaitOverflow',
    'TCPReqQFullDrop',
    'TW',
    'TWRecycled',
  ],
  Tcp: ['ActiveOpens', 'AttemptFails', 'EstabResets', 'RetransSegs'],
} as const;

export type TcpCounters = Record<string, number>;

function parse(text: string, into: TcpCounters): void {
  const lines = text.split('\n');
  for (let index = 0; index + 1 < lines.length; index += 2) {
    const names = (lines[index] as string).split(' ');
    const values = (lines[index + 1] as string).split(' ');
    const group = (names[0] as string).replace(/:$/, '') as keyof typeof COUNTERS;
    const wanted: readonly string[] | undefined = COUNTERS[group];
    if (!wanted) continue;
    names.forEach((name, column) => {
      if (wanted.includes(name)) into[`${group}.${name}`] = Number(values[column]);
    });
  }
}

export async function readTcpCounters(): Promise<TcpCounters> {
  const counters: TcpCounters = {};
  parse(await readFile('/proc/net/netstat', 'utf8'), counters);
  parse(await readFile('/proc/net/snmp', 'utf8'), counters);
  return counters;
}

export function counterDelta(before: TcpCounters, after: TcpCounters): TcpCounters {
  const delta: TcpCounters = {};
  for (const [name, value] of Object.entries(after)) delta[name] = value - (before[name] ?? 0);
  return delta;
}

/** Sockets in TIME_WAIT (state 06 of /proc/net/tcp) whose local address the predicate accepts. */
export async function timeWaitSockets(isLoadClient: (octets: number[]) => boolean): Promise<number> {
  const table = await readFile('/proc/net/tcp', 'utf8');
  let count = 0;
  for (const line of table.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields[3] !== '06' || !fields[1]) continue;
    // /proc/net/tcp prints an IPv4 address as the little-endian hex of its 32-bit value.
    const hex = fields[1].split(':')[0] as string;
    const octets = [6, 4, 2, 0].map((at) => Number.parseInt(hex.slice(at, at + 2), 16));
    if (isLoadClient(octets)) count++;
  }
  return count;
}
