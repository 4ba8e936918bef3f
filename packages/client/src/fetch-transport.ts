import { SSE_END_EVENT, SseParser } from '@wizard-stream/contracts';
import {
  type ConnectOutcome,
  isEventStream,
  outcomeOfRejectedResponse,
  type Transport,
} from './transport.js';

/**
 * Node (and any runtime with streaming fetch): the credential travels in the Authorization header and
 * a resumed stream sends Last-Event-ID, so the gateway can skip a snapshot the client already has.
 */
export const fetchTransport: Transport = async (context) => {
  const headers: Record<string, string> = {
    Accept: 'text/event-stream',
    Authorization: `Bearer ${context.credential}`,
  };
  if (context.lastEventId !== undefined) headers['Last-Event-ID'] = context.lastEventId;

  let response: Response;
  try {
    response = await context.fetch(context.url, { headers, signal: context.signal, cache: 'no-store' });
  } catch (error) {
    return context.signal.aborted ? { kind: 'aborted' } : { kind: 'failed', error };
  }
  if (response.status !== 200 || !response.body) {
    return outcomeOfRejectedResponse(response, context.credentialRefreshable);
  }
  if (!isEventStream(response)) {
    await response.body.cancel().catch(() => {});
    return {
      kind: 'failed',
      error: new Error(`stream answered 200 with content-type ${response.headers.get('content-type')}`),
    };
  }

  context.onOpen();
  let sawEnd = false;
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const parser = new SseParser((event) => {
    if (sawEnd) return;
    if (event.event === 'message') context.onMessage(event.id, event.data);
    else if (event.event === SSE_END_EVENT) sawEnd = true;
  });
  let outcome: ConnectOutcome = { kind: 'dropped' };
  // A connection that died without a FIN (a NAT or proxy dropped it) never ends a read: the gateway's
  // `: ping` heartbeats make silence a sign of that, so a silent stream is dropped and reconnected.
  let idleTimer: ReturnType<typeof setTimeout> | undefined;
  let silent = false;
  const armIdleTimer = () => {
    if (context.idleTimeoutMs <= 0) return;
    clearTimeout(idleTimer);
    idleTimer = setTimeout(() => {
      silent = true;
      reader.cancel().catch(() => {});
    }, context.idleTimeoutMs);
  };
  try {
    armIdleTimer();
    while (!sawEnd) {
      const { done, value } = await reader.read();
      if (done) break;
      armIdleTimer();
      parser.push(decoder.decode(value, { stream: true }));
    }
    if (sawEnd) outcome = { kind: 'end' };
    else if (silent)
      outcome = { kind: 'dropped', error: new Error(`stream silent for ${context.idleTimeoutMs} ms`) };
  } catch (error) {
    outcome = context.signal.aborted ? { kind: 'aborted' } : { kind: 'dropped', error };
  } finally {
    clearTimeout(idleTimer);
  }
  // After `end` the server closes the socket anyway; cancelling makes the reconnect independent of it.
  await reader.cancel().catch(() => {});
  return outcome;
};
