import { Counter, type Registry } from '@wizard-stream/telemetry';
import type { BusConnection } from './connection.js';

/**
 * `wizard_nats_refusals_total{what}`: logins, publishes and subscriptions the NATS servers refused. Any
 * increase means a wrong credential or a permission the service lacks (docs/operations.md#security); a
 * refused publish is otherwise invisible, since the server drops it without failing the call.
 */
export function registerBusMetrics(bus: BusConnection, registry: Registry): void {
  new Counter({
    name: 'wizard_nats_refusals_total',
    help: 'Logins, publishes and subscriptions refused by the NATS servers (wrong credential or missing permission)',
    labelNames: ['what'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [what, count] of Object.entries(bus.refusals())) this.inc({ what }, count);
    },
  });
}
