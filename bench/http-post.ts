import { type Agent, request } from 'node:http';

/** A POST to a peer's publish endpoint on loopback; rejects unless it answers 2xx. */
export function postJson(
  agent: Agent,
  port: number,
  path: string,
  body: string,
  what: string,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (response) => {
        response.resume();
        response.once('end', () =>
          response.statusCode !== undefined && response.statusCode < 300
            ? resolve()
            : reject(new Error(`${what} answered ${response.statusCode}`)),
        );
      },
    );
    req.once('error', reject);
    req.end(body);
  });
}
