import { describe, expect, it } from 'vitest';
import { acceptsEventStream } from '../src/accept.js';

describe('acceptsEventStream', () => {
  it.each([
    [undefined],
    [''],
    ['*/*'],
    ['text/*'],
    ['text/event-stream'],
    ['TEXT/Event-Stream'],
    ['application/json, text/event-stream;q=0.1'],
    ['text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8'],
    ['text/event-stream;q=1, */*;q=0'],
    ['text/*;q=0, text/event-stream'],
    ['text/event-stream;q=not-a-number'],
  ])('accepts %j', (accept) => {
    expect(acceptsEventStream(accept)).toBe(true);
  });

  it.each([
    ['application/json'],
    ['text/html'],
    ['text/event-stream;q=0'],
    ['text/event-stream; q=0.0, application/json'],
    ['*/*;q=0'],
    ['text/*;q=0'],
    ['text/event-stream;q=0, */*'],
    ['text/event-stream;q=0, text/*;q=1'],
    ['image/*'],
  ])('refuses %j', (accept) => {
    expect(acceptsEventStream(accept)).toBe(false);
  });
});
