import { BusConnection } from '@wizard-stream/bus';
import { freePort, NatsServer, until } from '@wizard-stream/testkit';
import { establishedConnectionsOnPort } from './tcp.js';

/**
 * A nats-server cluster on loopback: every node routes to every other one, as the Kubernetes
 * StatefulSet does. Nodes are real processes; stop one with `nodes[i].stop()` (SIGKILL).
 */
export class NatsCluster {
  private constructor(readonly nodes: NatsServer[]) {}

  static async start(size: number, name = 'wizard-test'): Promise<NatsCluster> {
    const clusterPorts = await Promise.all(Array.from({ length: size }, () => freePort()));
    const started = await Promise.allSettled(
      clusterPorts.map((port, index) =>
        NatsServer.start({
          serverName: `${name}-${index}`,
          cluster: {
            name,
            port,
            routes: clusterPorts
              .filter((other) => other !== port)
              .map((other) => `nats://127.0.0.1:${other}`),
          },
        }),
      ),
    );
    const nodes = started.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
    const failure = started.find((result) => result.status === 'rejected');
    if (failure) {
      await Promise.allSettled(nodes.map((node) => node.stop()));
      throw failure.reason;
    }
    return new NatsCluster(nodes);
  }

  /** Every node's client URL, rotated by `offset`: services given different offsets list different first nodes. */
  urls(offset = 0): string {
    const urls = this.nodes.map((node) => node.url);
    const start = offset % urls.length;
    return [...urls.slice(start), ...urls.slice(0, start)].join(',');
  }

  /**
   * Resolves once a message published on any node reaches a subscriber on every other node: the routes
   * are up and subscription interest has propagated across the mesh.
   */
  async awaitFullMesh(timeoutMs = 15_000): Promise<void> {
    const buses = this.nodes.map(
      (node, index) => new BusConnection({ url: node.url, name: `mesh-probe-${index}` }),
    );
    try {
      const connections = await Promise.all(buses.map((bus) => bus.ready()));
      const heard = this.nodes.map(() => new Set<number>());
      const probeSubject = (index: number) => `mesh-probe.${process.pid}.${index}`;
      connections.forEach((connection, index) => {
        connection.subscribe(probeSubject(index), {
          callback: (error, msg) => {
            if (!error) heard[index]?.add(Number(msg.string()));
          },
        });
      });
      await Promise.all(connections.map((connection) => connection.flush()));
      const everyPairHeard = () =>
        heard.every((senders, receiver) => senders.size === this.nodes.length - 1 && !senders.has(receiver));
      const meshed = until(
        () => {
          if (everyPairHeard()) return true;
          connections.forEach((connection, sender) => {
            for (let receiver = 0; receiver < connections.length; receiver++) {
              if (receiver !== sender) connection.publish(probeSubject(receiver), String(sender));
            }
          });
          return false;
        },
        { timeoutMs, intervalMs: 50, what: 'a full NATS mesh' },
      );
      await meshed.catch((error: Error) => {
        const heardBy = heard.map((senders, receiver) => `node ${receiver} heard [${[...senders]}]`);
        throw new Error(`${error.message}: ${heardBy.join('; ')}`);
      });
    } finally {
      await Promise.allSettled(buses.map((bus) => bus.close()));
    }
  }

  /** The running node holding the most client connections right now (read from the kernel's TCP table). */
  busiestNode(): { node: NatsServer; clients: number } {
    const counted = this.nodes
      .filter((node) => node.running)
      .map((node) => ({ node, clients: establishedConnectionsOnPort(node.port) }));
    counted.sort((a, b) => b.clients - a.clients);
    const busiest = counted[0];
    if (!busiest) throw new Error('no NATS node is running');
    return busiest;
  }

  async stop(): Promise<void> {
    await Promise.allSettled(this.nodes.map((node) => node.stop()));
  }
}
