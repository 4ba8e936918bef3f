import type { GatewayState } from './state.js';

/**
 * SIGTERM: readiness turns false and new streams get 503 at once; open streams receive `event: end` at
 * moments spread over the first 80 % of drainMs (so their reconnects do not land on the fleet together);
 * whatever is still open at drainMs is ended. Resolves when no stream is left or drainMs has passed.
 */
export function drainStreams(state: GatewayState, drainMs: number): Promise<void> {
  const { registry } = state;
  state.draining = true;
  const startedAt = Date.now();
  registry.spreadDeadlines(startedAt, Math.floor(drainMs * 0.8));
  const tickMs = Math.max(10, Math.min(100, Math.floor(drainMs / 50)));
  return new Promise((resolve) => {
    const tick = () => {
      const now = Date.now();
      registry.sweep(now);
      if (registry.size === 0 || now - startedAt >= drainMs) {
        clearInterval(timer);
        registry.endAll();
        resolve();
      }
    };
    const timer = setInterval(tick, tickMs);
    tick();
  });
}
