export { backoffDelayMs, parseRetryAfterMs, type Sleep } from './backoff.js';
export { WizardApiError, WizardNetworkError } from './errors.js';
export {
  clampPollInterval,
  nextPollDelayMs,
  POLL_DEFAULTS,
  type PollOptions,
  type PollTuning,
  poll,
} from './poll.js';
export {
  createPushClient,
  type PushClient,
  type PushClientOptions,
  type Session,
  type SessionListFilter,
  type SessionListPage,
  type StreamToken,
  type UpsertSessionInput,
} from './push-client.js';
export {
  type CloseReason,
  type ConnectionState,
  type DeliveryInfo,
  type StreamCredentials,
  type SubscribeOptions,
  type Subscription,
  subscribe,
} from './subscribe.js';
