/** NATS message headers carried by every published session (SPEC §6). */
export const NATS_HEADERS = {
  sessionId: 'Wizard-Session-Id',
  version: 'Wizard-Version',
  committedAt: 'Wizard-Committed-At',
  traceparent: 'traceparent',
  tracestate: 'tracestate',
} as const;
