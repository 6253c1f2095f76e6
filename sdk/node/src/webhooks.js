// A webhook request from hookbox as a typed event: verify, then parse, in one call.
import { WebhookFormatError } from './errors.js';
import { parseCookies } from './cookies.js';
import { headerReader, rawBytes, verifySignature } from './signature.js';

/** Each hook's fields (docs/webhooks.md, "The eight hooks"); `?` marks one that may be absent. */
const HOOKS = {
  connect: ['conn_id', 'payload'],
  disconnect: ['name'],
  create_channel: ['channel_name'],
  destroy_channel: ['channel_name'],
  subscribe: ['channel_name', 'user'],
  unsubscribe: ['channel_name', 'user'],
  publish: ['channel_name', 'payload', 'originator?'],
  message: ['sender', 'recipient', 'recipient_exists', 'payload'],
};

export const HOOK_NAMES = Object.freeze(Object.keys(HOOKS));

/**
 * Verifies `body` (the exact bytes received) against `secret` and returns the typed event.
 * Throws WebhookSignatureError for a bad or missing signature, WebhookFormatError for a signed
 * body that is not a hook or polling request.
 */
export function verifyWebhook({ body, headers, secret, toleranceSeconds, now }) {
  const webhookId = verifySignature({ body, headers, secret, toleranceSeconds, now });
  return parse(body, headers, webhookId);
}

/**
 * The typed event of a request that is NOT verified: only for a hookbox started without
 * --webhook-secret, on a network where nobody else can reach the web app's webhook URL.
 */
export function parseWebhook({ body, headers }) {
  return parse(body, headers, null);
}

function parse(body, headers, webhookId) {
  const header = headerReader(headers);
  const text = rawBytes(body).toString('utf8');
  const json = /^application\/json\b/i.test(header('content-type') ?? '');
  const fields = json ? jsonFields(text) : formFields(text);
  delete fields.secret; // the original's copy of the secret: checked above, kept out of logs
  const context = {
    cookieHeader: header('cookie') ?? '',
    cookies: parseCookies(header('cookie')),
    realIp: header('x-real-ip') ?? null,
    webhookId,
  };
  if (!('action' in fields)) return { action: 'poll', form: fields, ...context, raw: fields };
  const action = fields.action;
  const names = HOOKS[action];
  if (!names) throw new WebhookFormatError(`Unknown webhook action ${JSON.stringify(action)}`);
  const event = { action };
  for (const spec of names) {
    const name = spec.replace('?', '');
    if (!(name in fields)) {
      if (spec.endsWith('?')) continue;
      throw new WebhookFormatError(`${action} webhook without ${name}`);
    }
    event[name] = typed(name, fields[name], json);
  }
  return { ...event, ...context, raw: fields };
}

/** A field as its JS value: payloads decoded, recipient_exists a boolean, the rest text. */
function typed(name, value, json) {
  if (name === 'payload') {
    if (json) return value;
    try {
      return JSON.parse(value);
    } catch {
      throw new WebhookFormatError('payload is not JSON text');
    }
  }
  if (name === 'recipient_exists') {
    if (value === true || value === 'True') return true;
    if (value === false || value === 'False') return false;
    throw new WebhookFormatError(`recipient_exists is ${JSON.stringify(value)}`);
  }
  if (typeof value !== 'string') throw new WebhookFormatError(`${name} is not a string`);
  return value;
}

/** An urlencoded body's fields (the first of a repeated key wins). */
function formFields(text) {
  const fields = {};
  for (const [key, value] of new URLSearchParams(text)) {
    if (!Object.hasOwn(fields, key)) fields[key] = value;
  }
  return fields;
}

function jsonFields(text) {
  let value;
  try {
    value = JSON.parse(text);
  } catch {
    throw new WebhookFormatError('body is not JSON');
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    throw new WebhookFormatError('body is not a JSON object');
  }
  return value;
}
