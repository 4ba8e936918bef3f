/**
 * Accept negotiation for the stream route (RFC 9110 §12.5.1): the most specific media range that
 * matches text/event-stream decides; q=0 on it is a refusal. No header at all accepts anything.
 */
const EVENT_STREAM = 'text/event-stream';

export function acceptsEventStream(accept: string | undefined): boolean {
  // What EventSource and the SDK send: no parsing on the connect path.
  if (accept === EVENT_STREAM) return true;
  if (accept === undefined || accept.trim() === '') return true;
  let bestSpecificity = -1;
  let bestQuality = 0;
  for (const range of accept.split(',')) {
    const [mediaRange = '', ...parameters] = range.split(';');
    const media = mediaRange.trim().toLowerCase();
    const specificity = media === EVENT_STREAM ? 2 : media === 'text/*' ? 1 : media === '*/*' ? 0 : -1;
    if (specificity < bestSpecificity || specificity === -1) continue;
    const quality = qualityOf(parameters);
    if (specificity > bestSpecificity) {
      bestSpecificity = specificity;
      bestQuality = quality;
    } else {
      bestQuality = Math.max(bestQuality, quality);
    }
  }
  return bestSpecificity >= 0 && bestQuality > 0;
}

function qualityOf(parameters: string[]): number {
  for (const parameter of parameters) {
    const [name = '', value = ''] = parameter.split('=');
    if (name.trim().toLowerCase() !== 'q') continue;
    const quality = Number(value.trim());
    // A malformed weight is ignored rather than read as a refusal.
    return Number.isFinite(quality) && quality >= 0 && quality <= 1 ? quality : 1;
  }
  return 1;
}
