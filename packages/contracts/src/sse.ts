/**
 * Server-Sent Events framing (docs/wire-format.md#sse). Field values that are written on one line (id, event) have
 * CR, LF and NUL removed so that no value can inject a line; data is split into one `data:` line per line.
 */

export interface SseFrame {
  id?: string;
  event?: string;
  data: string;
}

const LINE_BREAKING = /[\r\n\u0000]/g;

function singleLine(value: string): string {
  return value.replace(LINE_BREAKING, '');
}

export function formatSseFrame({ id, event, data }: SseFrame): string {
  let frame = '';
  if (id !== undefined) frame += `id: ${singleLine(id)}\n`;
  if (event !== undefined) frame += `event: ${singleLine(event)}\n`;
  for (const line of data.split(/\r\n|\r|\n/)) frame += `data: ${line}\n`;
  return `${frame}\n`;
}

export function formatSseRetry(retryMs: number): string {
  return `retry: ${Math.max(0, Math.trunc(retryMs))}\n\n`;
}

export const SSE_RETRY_MS = 3000;
export const SSE_PING = ': ping\n\n';
export const SSE_END_EVENT = 'end';
export const SSE_END_FRAME = formatSseFrame({ event: SSE_END_EVENT, data: 'reconnect' });

/** A session frame's id: `<version>:<session_id>`, what the client echoes as Last-Event-ID. */
export function sessionEventId(version: number, sessionId: string): string {
  return `${version}:${sessionId}`;
}

export function parseSessionEventId(
  value: string | undefined,
): { version: number; sessionId: string } | undefined {
  if (!value) return undefined;
  const colon = value.indexOf(':');
  if (colon <= 0) return undefined;
  const versionText = value.slice(0, colon);
  if (!/^[0-9]{1,16}$/.test(versionText)) return undefined;
  const version = Number(versionText);
  const sessionId = value.slice(colon + 1);
  if (!Number.isSafeInteger(version) || sessionId.length === 0) return undefined;
  return { version, sessionId };
}

/** The frame a session update travels in: default `message` event, so EventSource.onmessage sees it. */
export function formatSessionFrame(version: number, sessionId: string, serializedSession: string): string {
  return formatSseFrame({ id: sessionEventId(version, sessionId), data: serializedSession });
}

export interface ParsedSseEvent {
  id: string | undefined;
  event: string;
  data: string;
  retry: number | undefined;
}

/**
 * An incremental parser following the WHATWG EventSource rules: feed it chunks of text as they arrive;
 * it calls onEvent for each dispatched event and onComment for each comment line.
 */
export class SseParser {
  private buffer = '';
  private data: string[] = [];
  private event = '';
  private id: string | undefined;
  private retry: number | undefined;
  private sawField = false;

  constructor(
    private readonly onEvent: (event: ParsedSseEvent) => void,
    private readonly onComment: (comment: string) => void = () => {},
  ) {}

  /** The last event id seen, which the client sends back as Last-Event-ID when it reconnects. */
  lastEventId: string | undefined;

  push(chunk: string): void {
    this.buffer += chunk;
    let start = 0;
    for (;;) {
      const lf = this.buffer.indexOf('\n', start);
      const cr = this.buffer.indexOf('\r', start);
      let end: number;
      let next: number;
      if (cr !== -1 && (lf === -1 || cr < lf)) {
        // A CR at the end of the buffer may be the first half of CRLF: wait for more.
        if (cr === this.buffer.length - 1) break;
        end = cr;
        next = this.buffer[cr + 1] === '\n' ? cr + 2 : cr + 1;
      } else if (lf !== -1) {
        end = lf;
        next = lf + 1;
      } else {
        break;
      }
      this.line(this.buffer.slice(start, end));
      start = next;
    }
    this.buffer = this.buffer.slice(start);
  }

  private line(line: string): void {
    if (line === '') {
      this.dispatch();
      return;
    }
    if (line.startsWith(':')) {
      this.onComment(line.slice(1).trimStart());
      return;
    }
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'data':
        this.data.push(value);
        this.sawField = true;
        break;
      case 'event':
        this.event = value;
        this.sawField = true;
        break;
      case 'id':
        if (!value.includes('\u0000')) this.id = value;
        this.sawField = true;
        break;
      case 'retry':
        if (/^[0-9]+$/.test(value)) this.retry = Number(value);
        break;
    }
  }

  private dispatch(): void {
    if (this.id !== undefined) this.lastEventId = this.id;
    if (this.sawField && this.data.length > 0) {
      this.onEvent({
        id: this.id,
        event: this.event || 'message',
        data: this.data.join('\n'),
        retry: this.retry,
      });
    }
    this.data = [];
    this.event = '';
    this.id = undefined;
    this.sawField = false;
  }

  /** The reconnection delay the server last asked for, if any. */
  get retryMs(): number | undefined {
    return this.retry;
  }
}
