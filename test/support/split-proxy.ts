import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isStreamPath } from '@wizard-stream/contracts';

export interface SplitProxy {
  url: string;
  /** Stream requests answered 502 so far (the SSE attempts the network "blocked"). */
  refusedStreams: number;
  close(): Promise<void>;
}

/**
 * One host in front of the services, like the edge: `…/stream/` to the gateway, everything else to
 * write-api. With `gatewayUrl` undefined it plays a network where SSE cannot pass (a corporate proxy):
 * every stream request is a 502, while the rest of the API works.
 */
export async function startSplitProxy(
  writeApiUrl: string,
  gatewayUrl: string | undefined,
): Promise<SplitProxy> {
  const state = { refusedStreams: 0 };
  const server = createServer((request, response) => {
    const stream = isStreamPath(new URL(request.url ?? '/', 'http://proxy').pathname);
    if (stream && gatewayUrl === undefined) {
      state.refusedStreams += 1;
      response.writeHead(502, { 'content-type': 'text/plain' }).end('SSE is not allowed here');
      return;
    }
    const upstream = new URL(request.url ?? '/', stream ? gatewayUrl : writeApiUrl);
    const forwarded = httpRequest(
      upstream,
      { method: request.method, headers: { ...request.headers, host: upstream.host }, agent: false },
      (answer) => {
        response.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(response);
      },
    );
    forwarded.on('error', () => response.destroy());
    response.on('close', () => forwarded.destroy());
    request.pipe(forwarded);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    get refusedStreams() {
      return state.refusedStreams;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
