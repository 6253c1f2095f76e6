// Replies to hookbox's webhooks, so that nobody writes [true, {...}] by hand. The per-hook
// helpers accept exactly the reply options that hook honours (docs/webhooks.md) and throw a
// TypeError for any other key, at the line that wrote it, instead of a refusal at run time.

/** docs/protocol.md, "Channel options". */
export const CHANNEL_OPTIONS = Object.freeze([
  'reflective', 'history_size', 'history', 'history_duration', 'history_publish_only',
  'moderated', 'moderated_publish', 'moderated_subscribe', 'moderated_unsubscribe',
  'presenceful', 'anonymous', 'state', 'polling', 'server_presenceful', 'server_user_presence',
]);

/** docs/protocol.md, "User options". */
export const USER_OPTIONS = Object.freeze([
  'reflective', 'moderated_message', 'per_connection_subscriptions', 'global_unsubscriptions',
  'auto_subscribe',
]);

const AUTO = ['auto_subscribe', 'auto_unsubscribe'];

/** `[true, options]`: approves any hook. */
export function allow(options = {}) {
  return [true, defined(options)];
}

/** `[false, {error}]`: refuses; the browser gets `error` as its ERROR's msg (`Unauthorized` without one). */
export function deny(error) {
  return [false, error === undefined ? {} : { error }];
}

/** connect: `name` (required) is the user; user options and auto lists apply to the connection. */
export function allowConnect(options) {
  const reply = checked('allowConnect', options,
    ['name', 'override_payload', 'auto_unsubscribe', 'resume_ttl', ...USER_OPTIONS]);
  if (typeof reply.name !== 'string' || reply.name === '') {
    throw new TypeError('allowConnect: name must be a non-empty string (the user name)');
  }
  if (reply.resume_ttl !== undefined && !(Number.isInteger(reply.resume_ttl) && reply.resume_ttl >= 1)) {
    throw new TypeError('allowConnect: resume_ttl must be a positive number of seconds');
  }
  return [true, reply];
}

/** create_channel: only channel options. */
export function allowCreateChannel(options = {}) {
  return [true, checked('allowCreateChannel', options, CHANNEL_OPTIONS)];
}

/** subscribe: `initial_data` (added to the joining user's SUBSCRIBE frame) and auto lists. */
export function allowSubscribe(options = {}) {
  return [true, checked('allowSubscribe', options, ['initial_data', ...AUTO])];
}

export function allowUnsubscribe(options = {}) {
  return [true, checked('allowUnsubscribe', options, AUTO)];
}

/** publish: `override_payload` replaces what is published; `only_to_sender` sends it back only. */
export function allowPublish(options = {}) {
  return [true, checked('allowPublish', options, ['override_payload', 'only_to_sender', ...AUTO])];
}

/** message: `override_payload`, `override_recipient_name` redirect or rewrite the message. */
export function allowMessage(options = {}) {
  return [true, checked('allowMessage', options, ['override_payload', 'override_recipient_name', ...AUTO])];
}

/** destroy_channel: let the empty channel go (deny keeps it, with its history and poller). */
export function allowDestroyChannel() {
  return [true, {}];
}

/** A polling request's answer: `payload` is published; channel options are applied. */
export function pollReply({ payload = null, ...options } = {}) {
  return [true, { payload, ...checked('pollReply', options, CHANNEL_OPTIONS) }];
}

function checked(helper, options, keys) {
  if (!options || typeof options !== 'object' || Array.isArray(options)) {
    throw new TypeError(`${helper}: options must be an object`);
  }
  for (const key of Object.keys(options)) {
    if (!keys.includes(key)) {
      throw new TypeError(`${helper}: ${key} is not a reply option of this hook (allowed: ${keys.join(', ')})`);
    }
  }
  return defined(options);
}

/** `options` without its undefined values (JSON has none). */
function defined(options) {
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
}
