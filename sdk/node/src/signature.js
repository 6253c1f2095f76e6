// The two ways hookbox signs a webhook, checked in constant time:
//
// - hookbox's own: `X-Hookbox-Signature: sha256=<hex HMAC-SHA256(secret, body)>`, the key being
//   the whole --webhook-secret string;
// - Standard Webhooks (standardwebhooks.com), when the secret is `whsec_<base64>`: `webhook-id`,
//   `webhook-timestamp` (Unix seconds) and `webhook-signature: v1,<base64 HMAC-SHA256(key,
//   "<id>.<timestamp>.<body>")>` (a space-separated list), the key being the decoded base64.
//
// With a whsec_ secret only the second is accepted: hookbox sends both, and accepting its own
// scheme too would let a replayed request drop the timestamp.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { WebhookSignatureError } from './errors.js';

export const STANDARD_PREFIX = 'whsec_';
export const DEFAULT_TOLERANCE_SECONDS = 5 * 60;

/**
 * Throws WebhookSignatureError unless `body` (the exact bytes received) is signed by hookbox with
 * `secret`. Returns the Standard Webhooks `webhook-id` (null for hookbox's own scheme).
 */
export function verifySignature({
  body, headers, secret, toleranceSeconds = DEFAULT_TOLERANCE_SECONDS, now = Date.now(),
}) {
  if (typeof secret !== 'string' || secret === '') {
    throw new TypeError('verifyWebhook: secret must be the non-empty --webhook-secret string');
  }
  const bytes = rawBytes(body);
  const header = headerReader(headers);
  if (secret.startsWith(STANDARD_PREFIX)) {
    return verifyStandard(bytes, header, secret, toleranceSeconds, now);
  }
  const given = header('x-hookbox-signature');
  if (!given) {
    throw new WebhookSignatureError('Missing X-Hookbox-Signature header (is hookbox started with --webhook-secret?)');
  }
  const expected = `sha256=${createHmac('sha256', secret).update(bytes).digest('hex')}`;
  if (!sameText(given, expected)) throw new WebhookSignatureError('Invalid X-Hookbox-Signature');
  return null;
}

function verifyStandard(bytes, header, secret, toleranceSeconds, now) {
  const key = Buffer.from(secret.slice(STANDARD_PREFIX.length), 'base64');
  if (key.length === 0) throw new TypeError('verifyWebhook: a whsec_ secret needs base64 after its prefix');
  const id = header('webhook-id');
  const timestamp = header('webhook-timestamp');
  const signatures = header('webhook-signature');
  if (!id || !timestamp || !signatures) {
    throw new WebhookSignatureError('Missing webhook-id, webhook-timestamp or webhook-signature header');
  }
  if (!/^\d{1,12}$/.test(timestamp)) throw new WebhookSignatureError('Invalid webhook-timestamp');
  if (Math.abs(now / 1000 - Number(timestamp)) > toleranceSeconds) {
    throw new WebhookSignatureError('webhook-timestamp is outside the tolerance (replayed, or a clock is off)');
  }
  const expected = createHmac('sha256', key)
    .update(`${id}.${timestamp}.`).update(bytes).digest('base64');
  const matches = signatures.split(' ').some((entry) => {
    const comma = entry.indexOf(',');
    return entry.slice(0, comma) === 'v1' && sameText(entry.slice(comma + 1), expected);
  });
  if (!matches) throw new WebhookSignatureError('No matching webhook-signature');
  return id;
}

/** Constant-time comparison of two strings (their lengths are not secret). */
function sameText(a, b) {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The exact bytes of a body given as a Buffer, a Uint8Array or a string (taken as UTF-8). */
export function rawBytes(body) {
  if (Buffer.isBuffer(body)) return body;
  if (body instanceof Uint8Array) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  if (typeof body === 'string') return Buffer.from(body, 'utf8');
  throw new TypeError('verifyWebhook: body must be the raw request body (a Buffer or a string), '
    + 'not a parsed object: a signature covers the exact bytes');
}

/** A lookup by lower-case name over a Fetch Headers object or a plain (Node) headers object. */
export function headerReader(headers = {}) {
  if (typeof headers.get === 'function') return (name) => headers.get(name) ?? undefined;
  const lower = {};
  for (const [name, value] of Object.entries(headers)) {
    lower[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : value;
  }
  return (name) => (lower[name] === undefined ? undefined : String(lower[name]));
}
