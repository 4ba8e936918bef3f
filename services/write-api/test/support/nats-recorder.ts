import { connect, type NatsConnection } from '@nats-io/transport-node';
import { until } from '@wizard-stream/testkit';

/** One message as the broker delivered it: subject, exact payload bytes and every header. */
export interface RecordedMessage {
  subject: string;
  payload: Uint8Array;
  text: string;
  headers: Record<string, string>;
  receivedAt: number;
}

/**
 * A raw NATS client (not the project's bus package) that records everything published under a
 * subject, so that tests observe what the broker really carried.
 */
export class NatsRecorder {
  readonly messages: RecordedMessage[] = [];

  private constructor(private readonly connection: NatsConnection) {}

  static async connect(url: string, subject = 'wizard.>'): Promise<NatsRecorder> {
    const connection = await connect({ servers: url, name: 'test-recorder' });
    const recorder = new NatsRecorder(connection);
    connection.subscribe(subject, {
      callback: (error, msg) => {
        if (error) return;
        const headers: Record<string, string> = {};
        for (const key of msg.headers?.keys() ?? []) headers[key] = msg.headers?.get(key) ?? '';
        recorder.messages.push({
          subject: msg.subject,
          payload: msg.data,
          text: new TextDecoder().decode(msg.data),
          headers,
          receivedAt: Date.now(),
        });
      },
    });
    // The subscription is registered on the server once this round trip completes.
    await connection.flush();
    return recorder;
  }

  /** Messages whose Wizard-Session-Id header is this session. */
  forSession(sessionId: string): RecordedMessage[] {
    return this.messages.filter((message) => message.headers['Wizard-Session-Id'] === sessionId);
  }

  /** Waits for a message of this session (and version, when given) and returns it. */
  async waitFor(
    sessionId: string,
    { version, timeoutMs = 5000 }: { version?: number; timeoutMs?: number } = {},
  ): Promise<RecordedMessage> {
    return until(
      () =>
        this.forSession(sessionId).find(
          (message) => version === undefined || message.headers['Wizard-Version'] === String(version),
        ),
      { timeoutMs, what: `a NATS message for session ${sessionId}${version ? ` version ${version}` : ''}` },
    );
  }

  async close(): Promise<void> {
    if (!this.connection.isClosed()) await this.connection.close();
  }
}
