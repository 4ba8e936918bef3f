import { describe, expect, it } from 'vitest';
import {
  formatSessionFrame,
  formatSseFrame,
  type ParsedSseEvent,
  parseSessionEventId,
  SSE_END_FRAME,
  SseParser,
} from '../src/index.js';

describe('SSE framing', () => {
  it('writes the frames of docs/wire-format.md#sse', () => {
    expect(formatSessionFrame(3, 'abc', '{"a":1}')).toBe('id: 3:abc\ndata: {"a":1}\n\n');
    expect(SSE_END_FRAME).toBe('event: end\ndata: reconnect\n\n');
  });

  it('never lets an id or event value inject a line', () => {
    const frame = formatSseFrame({ id: '1\n\ndata: evil', event: 'x\r\nretry: 1', data: 'ok' });
    expect(frame).toBe('id: 1data: evil\nevent: xretry: 1\ndata: ok\n\n');
    const events: ParsedSseEvent[] = [];
    new SseParser((event) => events.push(event)).push(frame);
    expect(events).toEqual([{ id: '1data: evil', event: 'xretry: 1', data: 'ok', retry: undefined }]);
  });

  it('splits multi-line data into data lines that parse back to the original', () => {
    const events: ParsedSseEvent[] = [];
    const parser = new SseParser((event) => events.push(event));
    const frame = formatSseFrame({ data: 'one\ntwo\r\nthree' });
    // Fed one character at a time, as a slow network would.
    for (const char of frame) parser.push(char);
    expect(events.map((event) => event.data)).toEqual(['one\ntwo\nthree']);
  });

  it('reports comments, retry and the last event id', () => {
    const comments: string[] = [];
    const events: ParsedSseEvent[] = [];
    const parser = new SseParser(
      (event) => events.push(event),
      (comment) => comments.push(comment),
    );
    parser.push('retry: 3000\n\n: ping\n\nid: 2:s\ndata: {}\n\n');
    expect(comments).toEqual(['ping']);
    expect(parser.retryMs).toBe(3000);
    expect(parser.lastEventId).toBe('2:s');
    expect(events).toHaveLength(1);
  });

  it('parses session event ids strictly', () => {
    expect(parseSessionEventId('12:abc:def')).toEqual({ version: 12, sessionId: 'abc:def' });
    for (const bad of [undefined, '', ':x', 'x:y', '1:', '99999999999999999:x']) {
      expect(parseSessionEventId(bad)).toBeUndefined();
    }
  });
});
