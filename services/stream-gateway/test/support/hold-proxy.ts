import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A real HTTP proxy in front of write-api that can hold the answers to `…/latest/` until the test
 * releases them: write-api has read the snapshot, the gateway has not received it yet — the window in
 * which the review's lost update happened, opened on demand.
 */
export class HoldingProxy {
  holding = false;
  private readonly held: Array<() => void> = [];
  private readonly heldListeners = new Set<() => void>();
  latestCalls = 0;

  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(targetUrl: string): Promise<HoldingProxy> {
    const target = new URL(targetUrl);
    let proxy: HoldingProxy | undefined;
    const server = createServer((request, response) => {
      const isSnapshot = request.url?.includes('/latest/') ?? false;
      if (isSnapshot) (proxy as HoldingProxy).latestCalls++;
      forwardRequest(target, request, response, (answer) => {
        const current = proxy as HoldingProxy;
        if (isSnapshot && current.holding) current.hold(answer);
        else answer();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    proxy = new HoldingProxy(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    return proxy;
  }

  get heldCount(): number {
    return this.held.length;
  }

  /** Resolves once `count` snapshot answers (already read by write-api) are being held. */
  waitForHeld(count: number, timeoutMs = 10_000): Promise<void> {
    if (this.held.length >= count) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const listener = () => {
        if (this.held.length < count) return;
        clearTimeout(timer);
        this.heldListeners.delete(listener);
        resolve();
      };
      const timer = setTimeout(() => {
        this.heldListeners.delete(listener);
        reject(
          new Error(`only ${this.held.length} of ${count} snapshot calls arrived within ${timeoutMs} ms`),
        );
      }, timeoutMs);
      this.heldListeners.add(listener);
    });
  }

  release(): void {
    this.holding = false;
    for (const forward of this.held.splice(0)) forward();
  }

  async close(): Promise<void> {
    this.release();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private hold(answer: () => void): void {
    this.held.push(answer);
    for (const listener of [...this.heldListeners]) listener();
  }
}

function forwardRequest(
  target: URL,
  request: IncomingMessage,
  response: ServerResponse,
  deliver: (answer: () => void) => void,
): void {
  const upstream = httpRequest(
    {
      host: target.hostname,
      port: target.port,
      method: request.method,
      path: request.url,
      headers: { ...request.headers, host: target.host },
    },
    (upstreamResponse) => {
      const chunks: Buffer[] = [];
      upstreamResponse.on('data', (chunk: Buffer) => chunks.push(chunk));
      upstreamResponse.on('end', () =>
        deliver(() => {
          response.writeHead(upstreamResponse.statusCode ?? 502, upstreamResponse.headers);
          response.end(Buffer.concat(chunks));
        }),
      );
    },
  );
  upstream.on('error', () => {
    response.writeHead(502).end();
  });
  request.pipe(upstream);
}
