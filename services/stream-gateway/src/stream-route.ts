import type { OutgoingHttpHeaders } from 'node:http';
import {
  apiErrorFromZod,
  apiErrors,
  credentialFrom,
  formatSseRetry,
  isPublicCredentialShape,
  projectIdSchema,
  SESSION_COLLECTION_PATHS,
  SSE_RETRY_MS,
  STREAM_TOKEN_QUERY_PARAM,
  streamQuerySchema,
} from '@wizard-stream/contracts';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { acceptsEventStream } from './accept.js';
import { releaseFastifyResponse } from './hijacked-response.js';
import { SnapshotUnavailableError } from './snapshot.js';
import type { StreamRoute } from './stream-subject.js';

const PREAMBLE = Buffer.from(formatSseRetry(SSE_RETRY_MS));

const SSE_HEADERS = {
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache, no-transform',
  'x-accel-buffering': 'no',
  // The body ends when the connection does (as nchan's): see the streaming step of handleStream.
  connection: 'close',
};

/** Clients told to come back spread their retries over 15–45 s instead of returning together. */
function jitteredRetryAfterSeconds(): number {
  return 15 + Math.floor(Math.random() * 31);
}

const unavailable = (detail: string) => apiErrors.unavailable(detail, jitteredRetryAfterSeconds());

/** Settles as `work` does, or rejects with SnapshotUnavailableError after `ms`. */
function withDeadline<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new SnapshotUnavailableError(what, `no answer within ${ms} ms`)), ms);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

interface StreamRequest {
  Params: { projectId: string };
  Querystring: Record<string, unknown>;
}

/** `GET …/sessions/stream/` under both aliases, with and without the trailing slash (docs/api.md#stream). */
export async function streamRoutes(app: FastifyInstance): Promise<void> {
  for (const collection of SESSION_COLLECTION_PATHS) {
    for (const path of [`${collection}/stream/`, `${collection}/stream`]) {
      // No implicit HEAD route: a HEAD would otherwise hold a stream that can never carry a frame.
      app.get<StreamRequest>(path, { exposeHeadRoute: false }, handleStream);
    }
  }
}

async function handleStream(
  this: FastifyInstance,
  request: FastifyRequest<StreamRequest>,
  reply: FastifyReply,
): Promise<FastifyReply> {
  const { config, registry, hub, snapshots, bus } = this.gateway;

  // 1. The killswitch: 204 is the one status that makes EventSource stop reconnecting.
  if (config.killswitch) return reply.code(204).send();

  // 2. Ids, before anything else touches them.
  const project = projectIdSchema.safeParse(request.params.projectId);
  if (!project.success) {
    throw apiErrors.invalidInput(project.error.issues[0]?.message ?? 'invalid project id.', 'project_id');
  }
  const query = streamQuerySchema.safeParse(request.query);
  if (!query.success) throw apiErrorFromZod(query.error);

  // 3. Negotiation.
  if (!acceptsEventStream(request.headers.accept)) throw apiErrors.notAcceptable();

  // 4. Capacity.
  if (this.gateway.draining) throw unavailable('The stream gateway is shutting down; reconnect to another.');
  if (registry.size >= config.maxStreams) {
    throw unavailable(`The stream gateway holds its maximum of ${config.maxStreams} streams.`);
  }

  // 5. Credentials: an address that failed too often is refused before its credential costs a call; a
  // credential of no shape write-api issues is refused here; each credential (and, once write-api named
  // it, each key) holds at most its share of the slots, counted from the connect on.
  const { authFailures } = this.gateway;
  const address = request.ip;
  const wait = authFailures.retryAfterSeconds(address);
  if (wait > 0) throw apiErrors.throttled(wait);
  const queryToken = request.query[STREAM_TOKEN_QUERY_PARAM];
  const credential = credentialFrom(
    request.headers.authorization,
    typeof queryToken === 'string' ? queryToken : undefined,
  );
  if (!credential || !isPublicCredentialShape(credential)) {
    authFailures.recordFailure(address);
    throw credential ? apiErrors.authenticationFailed() : apiErrors.notAuthenticated();
  }
  if (registry.credentialCount(credential) >= registry.perKeyLimit) {
    throw apiErrors.throttled(jitteredRetryAfterSeconds());
  }
  if (!bus.nats) throw unavailable('The stream gateway is not connected to NATS yet.');

  const route: StreamRoute = {
    teamId: project.data,
    workflowId: query.data.workflow_id,
    skillId: query.data.skill_id,
  };
  const lastEventId = request.headers['last-event-id'];
  const connection = registry.connect(
    typeof lastEventId === 'string' ? lastEventId : undefined,
    Date.now(),
    credential,
  );
  // Subscribed (and holding live updates) from here on, before the snapshot is read.
  const feed = hub.attach(route, connection);
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    connection.markClosed();
    registry.remove(connection);
    hub.detach(feed, connection);
  };
  const response = reply.raw;
  // `on`, not `once`: release is idempotent, and once() would allocate a wrapper per stream.
  response.on('close', release);

  let snapshot: Awaited<ReturnType<typeof snapshots.fetch>>;
  try {
    // A connect not authenticated yet holds its slot for SNAPSHOT_TIMEOUT_MS at most, whatever write-api
    // or NATS do meanwhile.
    snapshot = await withDeadline(
      feed.ready.then(() => snapshots.fetch(credential, route, address)),
      config.snapshotTimeoutMs,
      'the subscription and snapshot',
    );
  } catch (error) {
    release();
    if (!(error instanceof SnapshotUnavailableError)) {
      request.log.error({ err: error, subject: feed.subject }, 'stream setup failed');
    } else {
      request.log.warn({ error: error.message }, 'snapshot unavailable');
    }
    throw unavailable('The session store could not be reached; retry later.');
  }

  if (snapshot.kind === 'refused') {
    release();
    if (snapshot.status === 401) authFailures.recordFailure(address);
    reply.code(snapshot.status).header('content-type', snapshot.contentType);
    if (snapshot.retryAfter) reply.header('retry-after', snapshot.retryAfter);
    return reply.send(snapshot.body);
  }
  if (snapshot.owner) {
    const verdict = registry.authenticate(connection, { teamId: route.teamId, ...snapshot.owner });
    if (verdict !== 'ok') {
      release();
      throw verdict === 'revoked'
        ? apiErrors.authenticationFailed('This credential was revoked.')
        : apiErrors.throttled(jitteredRetryAfterSeconds());
    }
  }
  // Before anything is written, so that a snapshot the budget refuses is answered with 503, not a stream.
  if (snapshot.kind === 'session') connection.takeSnapshot(snapshot.frame, Date.now());
  if (response.destroyed || connection.isClosed) {
    release();
    if (response.destroyed) return reply.hijack();
    // Closed while the snapshot was read: by the drain, or as slow (more than MAX_CLIENT_BUFFER_BYTES held).
    throw unavailable(
      this.gateway.draining
        ? 'The stream gateway is shutting down; reconnect to another.'
        : 'More updates arrived while the stream was set up than it may hold; reconnect.',
    );
  }

  // 6. Streaming: written by hand on the raw response (headers set by hooks, e.g. CORS, are kept).
  reply.hijack();
  releaseFastifyResponse(response);
  const headers: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(reply.getHeaders()))
    if (value !== undefined) headers[name] = value;
  // Delimited by the connection's close, not chunked: every frame is then one write of its shared Buffer
  // instead of four (size line, CRLF, frame, CRLF), which is most of the fan-out's cost per client.
  response.useChunkedEncodingByDefault = false;
  const socket = response.socket;
  if (!socket || socket.destroyed) {
    release();
    return reply;
  }
  // The head, `retry:` and the snapshot leave in one write (one segment) rather than three.
  socket.cork();
  response.writeHead(200, Object.assign(headers, SSE_HEADERS));
  response.flushHeaders();
  // With the head sent and no chunked framing left to apply, frames go straight to the socket: the
  // response's own write path only adds per-call bookkeeping, paid once per client for every update.
  connection.open(socket, PREAMBLE, Date.now());
  socket.uncork();
  return reply;
}
