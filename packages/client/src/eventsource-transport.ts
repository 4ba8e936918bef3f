import { SSE_END_EVENT, STREAM_TOKEN_QUERY_PARAM } from '@wizard-stream/contracts';
import { type ConnectOutcome, outcomeOfRejectedResponse, type Transport } from './transport.js';

export type EventSourceConstructor = new (url: string) => EventSource;

/**
 * Browsers: EventSource cannot send headers, so the stream token goes in `?token=`. EventSource's own
 * reconnection is switched off (closed on the first error) so that the subscribe loop alone decides
 * when to retry; a new EventSource cannot be given Last-Event-ID, so resumed streams rely on the
 * client's per-session version dedup to drop the repeated snapshot.
 *
 * EventSource reports every refusal (204, 401, 503 …) as the same opaque error. When a stream fails
 * before it opened, one plain fetch of the same URL finds out which it was.
 */
export function eventSourceTransport(EventSourceImpl: EventSourceConstructor): Transport {
  return (context) => {
    // An abort listener added to an already-aborted signal never fires: settle now instead of hanging.
    if (context.signal.aborted) return Promise.resolve({ kind: 'aborted' });
    const url = new URL(context.url);
    url.searchParams.set(STREAM_TOKEN_QUERY_PARAM, context.credential);
    const streamUrl = url.toString();

    return new Promise<ConnectOutcome>((resolve) => {
      let opened = false;
      let settled = false;
      const source = new EventSourceImpl(streamUrl);
      const settle = (outcome: ConnectOutcome) => {
        if (settled) return;
        settled = true;
        source.close();
        context.signal.removeEventListener('abort', onAbort);
        resolve(outcome);
      };
      const onAbort = () => settle({ kind: 'aborted' });
      context.signal.addEventListener('abort', onAbort, { once: true });

      source.onopen = () => {
        opened = true;
        context.onOpen();
      };
      source.onmessage = (event: MessageEvent<string>) => {
        if (!settled) context.onMessage(event.lastEventId || undefined, event.data);
      };
      source.addEventListener(SSE_END_EVENT, () => settle({ kind: 'end' }));
      source.onerror = () => {
        if (settled) return;
        if (opened) {
          settle({ kind: 'dropped' });
          return;
        }
        source.close();
        void diagnose(streamUrl, context).then(settle);
      };
    });
  };
}

async function diagnose(streamUrl: string, context: Parameters<Transport>[0]): Promise<ConnectOutcome> {
  if (context.signal.aborted) return { kind: 'aborted' };
  const probe = new AbortController();
  const onAbort = () => probe.abort();
  context.signal.addEventListener('abort', onAbort, { once: true });
  try {
    const response = await context.fetch(streamUrl, {
      headers: { Accept: 'text/event-stream' },
      signal: probe.signal,
      cache: 'no-store',
    });
    if (response.status === 200) {
      // It would open now: the failure was transient. Do not hold this probe stream.
      probe.abort();
      return { kind: 'failed', error: new Error('stream failed before it opened; the server is reachable') };
    }
    return await outcomeOfRejectedResponse(response, context.credentialRefreshable);
  } catch (error) {
    return context.signal.aborted ? { kind: 'aborted' } : { kind: 'failed', error };
  } finally {
    context.signal.removeEventListener('abort', onAbort);
  }
}
