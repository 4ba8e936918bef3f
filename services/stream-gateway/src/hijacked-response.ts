import type { ServerResponse } from 'node:http';

/**
 * The name of the listener fastify/lib/reply.js (setupResponseListeners) attaches to every response for
 * its onResponse phase. Fastify has no public API to detach it: test/hijacked-response.test.ts fails
 * when the installed Fastify no longer has a listener of this name.
 */
const FASTIFY_RESPONSE_LISTENER = 'onResFinished';

/**
 * Once a stream is hijacked its lifecycle is ours, but Fastify's response listener (its onResponse
 * phase and "request completed" log line) would hold the Request, the Reply and a child logger for the
 * stream's whole life: about a kilobyte times every open stream. The gateway registers no onResponse
 * hook, so the listener is dropped; a stream's end shows in the open-streams gauge instead of a log line.
 * Returns how many listeners were removed.
 */
export function releaseFastifyResponse(response: ServerResponse): number {
  let removed = 0;
  for (const event of ['finish', 'error'] as const) {
    for (const listener of response.listeners(event)) {
      if ((listener as { name?: string }).name === FASTIFY_RESPONSE_LISTENER) {
        response.removeListener(event, listener as (...args: unknown[]) => void);
        removed++;
      }
    }
  }
  if (response.listenerCount('error') === 0) response.on('error', ignoreResponseError);
  return removed;
}

/** A failed write on a stream surfaces as its socket's 'close', which releases the stream. */
function ignoreResponseError(): void {}
