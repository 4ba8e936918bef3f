// Stands in for a Kubernetes Service's cluster IP under podman, where nothing translates a Service port
// to a pod's target port: listens on every Service port and forwards each TCP connection to the next
// backend pod in turn. A backend that refuses or does not answer within a second is skipped, as a Service
// stops routing to a pod whose readiness fails. Run by test/src/podman/ from a ConfigMap; plain Node.
import { connect, createServer } from 'node:net';

/** The one argument: [{ port, backends: ['10.89.0.20:8000', …] }] */
const routes = JSON.parse(process.argv[2] ?? '[]');
const CONNECT_TIMEOUT_MS = 1000;

function forward(client, backends, start, attempt = 0) {
  if (attempt >= backends.length) {
    client.destroy();
    return;
  }
  const [host, port] = backends[(start + attempt) % backends.length].split(':');
  const upstream = connect({ host, port: Number(port), timeout: CONNECT_TIMEOUT_MS });
  let connected = false;
  upstream.once('timeout', () => upstream.destroy(new Error('connect timeout')));
  upstream.once('connect', () => {
    connected = true;
    upstream.setTimeout(0);
    client.pipe(upstream);
    upstream.pipe(client);
    client.resume();
  });
  upstream.on('error', () => {
    if (connected) client.destroy();
    else if (!client.destroyed) forward(client, backends, start, attempt + 1);
  });
  upstream.on('close', () => {
    if (connected) client.destroy();
  });
  client.on('close', () => upstream.destroy());
}

for (const { port, backends } of routes) {
  let next = 0;
  createServer({ pauseOnConnect: true }, (client) => {
    client.on('error', () => client.destroy());
    forward(client, backends, next++);
  }).listen(port, '0.0.0.0', () => console.log(`service proxy :${port} -> ${backends.join(', ')}`));
}

process.on('SIGTERM', () => process.exit(0));
