import { type Agent, request as httpRequest, type IncomingMessage } from 'node:http';

export interface Exchange {
  status: number;
  headers: IncomingMessage['headers'];
  body: string;
  /** The client side's port of the connection it was answered on: equal ports, the same connection. */
  localPort: number | undefined;
}

/** One request on `agent` (keep-alive, one socket): the answer and the connection it came on. */
export function exchange(
  agent: Agent,
  base: string,
  {
    method = 'GET',
    path = '/',
    headers = {},
    body,
  }: { method?: string; path?: string; headers?: Record<string, string>; body?: Buffer | Buffer[] },
): Promise<Exchange> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const request = httpRequest(
      { host: url.hostname, port: url.port, method, path, agent, headers },
      (response) => {
        // Read now: the socket is detached from the response once it ends.
        const localPort = response.socket?.localPort;
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => {
          text += chunk;
        });
        response.on('end', () =>
          resolve({
            status: response.statusCode ?? 0,
            headers: response.headers,
            body: text,
            localPort,
          }),
        );
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    if (Array.isArray(body)) {
      for (const chunk of body) request.write(chunk);
      request.end();
    } else {
      request.end(body);
    }
  });
}
