// hookbox-sdk: the Web API client, webhook verification and typed events, reply helpers.
// The Express adapter is 'hookbox-sdk/express'.
export { HookboxClient } from './client.js';
export {
  HookboxError, HookboxRefusedError, HookboxThrottledError, HookboxTimeoutError,
  HookboxTransportError, WebhookError, WebhookSignatureError, WebhookFormatError,
} from './errors.js';
export { verifyWebhook, parseWebhook, HOOK_NAMES } from './webhooks.js';
export { verifySignature, STANDARD_PREFIX, DEFAULT_TOLERANCE_SECONDS } from './signature.js';
export { parseCookies } from './cookies.js';
export {
  allow, deny, allowConnect, allowCreateChannel, allowSubscribe, allowUnsubscribe, allowPublish,
  allowMessage, allowDestroyChannel, pollReply, CHANNEL_OPTIONS, USER_OPTIONS,
} from './replies.js';
