/** NATS message headers carried by every published session (docs/wire-format.md#nats). */
export const NATS_HEADERS = {
  sessionId: 'Wizard-Session-Id',
  version: 'Wizard-Version',
  committedAt: 'Wizard-Committed-At',
  traceparent: 'traceparent',
  tracestate: 'tracestate',
} as const;
