import { createServer } from 'node:http';

/**
 * The GRIP origin behind Pushpin (forked by bench/gateway-pushpin.ts): every request is answered with
 * `Grip-Hold: stream` on one channel, so Pushpin holds it open as an event stream and sends it whatever
 * is published on the channel. The body (with a Content-Length, as GRIP wants) is the newest frame the
 * benchmark published: the counterpart of the gateway's snapshot and nchan's first message.
 * argv[2] = channel. Prints `ORIGIN_PORT <port>` once listening; `{frame}` messages replace the body.
 */
const channel = process.argv[2] ?? 'bench';
let body = Buffer.alloc(0);

process.on('message', (message: { frame: string }) => {
  body = Buffer.from(message.frame);
});

const server = createServer((request, response) => {
  request.resume();
  response.writeHead(200, {
    'content-type': 'text/event-stream',
    'grip-hold': 'stream',
    'grip-channel': channel,
    'content-length': body.length,
  });
  response.end(body);
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  console.log(`ORIGIN_PORT ${typeof address === 'object' && address ? address.port : 0}`);
});
process.on('disconnect', () => server.close(() => process.exit(0)));
