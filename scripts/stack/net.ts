import { get as httpGet } from 'node:http';
import { connect, createServer } from 'node:net';

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Resolves true when nothing listens on the port, false when it is taken. */
export function portIsFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

/** One GET without keep-alive, so health checks leave no idle connection behind on the service. */
function getStatus(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = httpGet(url, { agent: false, timeout: 1000 }, (response) => {
      response.resume();
      resolve(response.statusCode ?? 0);
    });
    request.on('timeout', () => request.destroy(new Error(`GET ${url} timed out`)));
    request.on('error', reject);
  });
}

interface WaitOptions {
  timeoutMs: number;
  /** Why waiting is pointless (the process died), or undefined to keep waiting. */
  gaveUp: () => string | undefined;
}

/** Polls `ready` every `intervalMs` until it holds; fails with `timeoutMessage` or the gaveUp reason. */
async function pollUntil(
  ready: () => Promise<boolean>,
  { timeoutMs, gaveUp }: WaitOptions,
  intervalMs: number,
  timeoutMessage: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const reason = gaveUp();
    if (reason) throw new Error(reason);
    if (await ready()) return;
    if (Date.now() > deadline) throw new Error(timeoutMessage);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** Polls an HTTP health URL until it answers 2xx; stops early when `gaveUp` says the process died. */
export function waitForHealthy(url: string, options: WaitOptions): Promise<void> {
  return pollUntil(
    async () => {
      const status = await getStatus(url).catch(() => 0);
      return status >= 200 && status < 300;
    },
    options,
    100,
    `${url} did not answer 2xx within ${options.timeoutMs} ms`,
  );
}

/** Polls until a TCP port accepts connections (nats-server has no HTTP health endpoint here). */
export function waitForPort(port: number, options: WaitOptions): Promise<void> {
  return pollUntil(
    () =>
      new Promise<boolean>((resolve) => {
        const socket = connect({ host: '127.0.0.1', port });
        socket.once('connect', () => {
          socket.destroy();
          resolve(true);
        });
        socket.once('error', () => resolve(false));
      }),
    options,
    50,
    `nothing listened on 127.0.0.1:${port} within ${options.timeoutMs} ms`,
  );
}
