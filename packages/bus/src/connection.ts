import {
  AuthorizationError,
  connect,
  type NatsConnection,
  PermissionViolationError,
  type Status,
} from '@nats-io/transport-node';

export interface BusLogger {
  info(object: object, message: string): void;
  warn(object: object, message: string): void;
  error(object: object, message: string): void;
}

/** TLS to the servers: the CA that signed their certificate, and this client's own when they verify clients. */
export interface BusTls {
  caFile: string;
  certFile?: string | undefined;
  keyFile?: string | undefined;
}

/** What the servers refused this connection so far: a wrong credential or a missing permission. */
export interface BusRefusals {
  /** Logins refused (wrong or unknown user or password). */
  login: number;
  /** Publishes refused by the user's permissions: the server drops them, the client never throws. */
  publish: number;
  /** Subscriptions refused by the user's permissions: they receive nothing. */
  subscribe: number;
}

export interface BusOptions {
  /** One or more comma-separated server URLs (several for a cluster). */
  url: string;
  /** The connection name the server shows in its monitoring. */
  name: string;
  logger?: BusLogger;
  /** The login of nats-server's `authorization { users }`; anonymous when unset. */
  user?: string | undefined;
  password?: string | undefined;
  /** TLS when set (docs/operations.md#security); plain TCP otherwise. */
  tls?: BusTls | undefined;
}

/** nats-server's default `max_payload` (1 MiB): what a publish may carry until a server says otherwise. */
export const DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024;

/** When the connection was lost (ms epoch; undefined if it never was): what was missed came after it. */
export interface ReconnectInfo {
  disconnectedAt: number | undefined;
}

type ReconnectListener = (info: ReconnectInfo) => void;

/**
 * A NATS connection that never gives up: it waits for the first server, reconnects forever, and tells
 * whether it is connected right now. It never blocks a service's start: until NATS answers, the service
 * runs unready and what it could not publish is left to the relay.
 */
export class BusConnection {
  private connection: NatsConnection | undefined;
  private isUp = false;
  private disconnectedAt: number | undefined;
  private closing = false;
  private readonly reconnectListeners = new Set<ReconnectListener>();
  private readonly firstConnect: Promise<NatsConnection>;
  private readonly refused: BusRefusals = { login: 0, publish: 0, subscribe: 0 };

  constructor(private readonly options: BusOptions) {
    this.firstConnect = this.open();
    // The failure surfaces through ready(); an unobserved rejection must not crash the process.
    this.firstConnect.catch(() => {});
  }

  /**
   * Retries the first connection itself (rather than the client's waitOnFirstConnect), so that close()
   * can stop a service that never reached NATS instead of leaving a connect loop behind.
   */
  private async open(): Promise<NatsConnection> {
    let delayMs = 100;
    for (;;) {
      if (this.closing) throw new Error(`bus ${this.options.name} closed before it connected`);
      try {
        return await this.connectOnce();
      } catch (error) {
        if (this.closing) throw error;
        if (error instanceof AuthorizationError) this.onRefusedLogin(error);
        else
          this.options.logger?.warn(
            { err: error, url: this.options.url },
            'nats not reachable yet; retrying',
          );
        await new Promise((resolve) => setTimeout(resolve, delayMs).unref());
        delayMs = Math.min(delayMs * 2, 2000);
      }
    }
  }

  private async connectOnce(): Promise<NatsConnection> {
    const connection = await connect({
      servers: this.options.url.split(',').map((server) => server.trim()),
      name: this.options.name,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      reconnectJitter: 250,
      pingInterval: 5000,
      maxPingOut: 2,
      // ignoreAuthErrorAbort stays off: with it, a first connect to a cluster with a refused login cycles
      // through the servers it learnt and never returns, so nothing would log the refusal.
      ...(this.options.user !== undefined && { user: this.options.user, pass: this.options.password }),
      ...(this.options.tls && {
        tls: {
          caFile: this.options.tls.caFile,
          ...(this.options.tls.certFile && { certFile: this.options.tls.certFile }),
          ...(this.options.tls.keyFile && { keyFile: this.options.tls.keyFile }),
        },
      }),
    });
    if (this.closing) {
      await connection.close();
      throw new Error(`bus ${this.options.name} closed before it connected`);
    }
    this.connection = connection;
    this.isUp = true;
    this.options.logger?.info({ server: connection.getServer() }, 'nats connected');
    void this.watch(connection);
    return connection;
  }

  private async watch(connection: NatsConnection): Promise<void> {
    for await (const status of connection.status()) this.onStatus(status);
  }

  private onStatus(status: Status): void {
    switch (status.type) {
      case 'disconnect':
        this.isUp = false;
        this.disconnectedAt = Date.now();
        this.options.logger?.warn({ server: status.server }, 'nats disconnected');
        break;
      case 'reconnect':
        this.isUp = true;
        this.options.logger?.info({ server: status.server }, 'nats reconnected');
        for (const listener of this.reconnectListeners) listener({ disconnectedAt: this.disconnectedAt });
        break;
      case 'close':
        this.isUp = false;
        // The client gives up by itself only after its login was refused twice in a row on a reconnect.
        if (!this.closing) {
          this.options.logger?.error(
            { url: this.options.url, user: this.options.user ?? '(anonymous)' },
            'nats connection closed for good after refused logins: this service stays unready until restarted with a NATS_PASSWORD the servers accept',
          );
        }
        break;
      case 'error':
        if (status.error instanceof PermissionViolationError) this.onPermissionViolation(status.error);
        else if (status.error instanceof AuthorizationError) this.onRefusedLogin(status.error);
        break;
    }
  }

  private onRefusedLogin(error: AuthorizationError): void {
    this.refused.login++;
    this.options.logger?.error(
      { err: error, url: this.options.url, user: this.options.user ?? '(anonymous)' },
      'nats refused the login: check NATS_USER and NATS_PASSWORD against the server; retrying',
    );
  }

  /** The server answers a forbidden publish with an error on the connection only, never on the call. */
  private onPermissionViolation(error: PermissionViolationError): void {
    const operation = error.operation === 'publish' ? 'publish' : 'subscribe';
    this.refused[operation]++;
    this.options.logger?.error(
      { err: error, user: this.options.user ?? '(anonymous)', subject: error.subject, operation },
      `nats refused to let this service ${operation} on ${error.subject}: its user lacks the permission`,
    );
  }

  /** Counts of what the servers refused since the start (for the services' metrics). */
  refusals(): Readonly<BusRefusals> {
    return this.refused;
  }

  /** Resolves with the connection once the first server answered. */
  ready(): Promise<NatsConnection> {
    return this.firstConnect;
  }

  /** The live connection, or undefined until the first server answered. */
  get nats(): NatsConnection | undefined {
    return this.connection;
  }

  /**
   * The largest message (headers plus payload) the connected server accepts: its `max_payload`, learned
   * at connect; before the first connect, NATS's default.
   */
  get maxPayload(): number {
    return this.connection?.info?.max_payload ?? DEFAULT_MAX_PAYLOAD_BYTES;
  }

  isConnected(): boolean {
    return this.isUp && this.connection !== undefined && !this.connection.isClosed();
  }

  /** Called after every reconnect (not the first connect): subscribers re-snapshot what they may have missed. */
  onReconnect(listener: ReconnectListener): () => void {
    this.reconnectListeners.add(listener);
    return () => this.reconnectListeners.delete(listener);
  }

  /** Drains subscriptions and pending publishes, then closes. */
  async close(): Promise<void> {
    this.closing = true;
    const connection = this.connection;
    if (!connection || connection.isClosed()) return;
    try {
      await connection.drain();
    } catch {
      await connection.close();
    }
  }
}
