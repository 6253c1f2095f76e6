// Express (4 and 5) adapter: one middleware that reads the raw body, verifies it, dispatches the
// event to its handler by action and sends the reply. It uses only Node's req/res, so it also
// serves a plain http.createServer callback (without `next`). Express itself is not imported.
import { verifyWebhook } from './webhooks.js';
import { WebhookFormatError, WebhookSignatureError } from './errors.js';
import { allow, deny } from './replies.js';

/**
 * What an unhandled hook gets: hooks that grant something (a name, a channel, a seat, a say)
 * are refused; hooks that report something that already happened are approved.
 */
export const DEFAULT_REPLIES = Object.freeze({
  connect: deny('No handler for connect'),
  create_channel: deny('No handler for create_channel'),
  subscribe: deny('No handler for subscribe'),
  publish: deny('No handler for publish'),
  message: deny('No handler for message'),
  poll: deny('No handler for poll'),
  unsubscribe: allow(),
  destroy_channel: allow(),
  disconnect: allow(),
});

export function hookboxWebhooks({ secret, handlers = {}, toleranceSeconds, limit = 1024 * 1024, onError } = {}) {
  if (typeof secret !== 'string' || secret === '') {
    throw new TypeError('hookboxWebhooks: secret is required (the --webhook-secret hookbox signs with)');
  }
  for (const name of Object.keys(handlers)) {
    if (!(name in DEFAULT_REPLIES)) {
      throw new TypeError(`hookboxWebhooks: no hook is called ${name} (hooks: ${Object.keys(DEFAULT_REPLIES).join(', ')})`);
    }
  }

  return async function hookboxMiddleware(req, res, next) {
    if (req.method !== 'POST') {
      if (next) return next();
      return send(res, 405, 'text/plain', 'Method Not Allowed');
    }
    let event;
    try {
      const body = await rawBody(req, limit);
      if (body === null) return send(res, 413, 'text/plain', 'Payload Too Large');
      event = verifyWebhook({ body, headers: req.headers, secret, toleranceSeconds });
    } catch (error) {
      if (error instanceof WebhookSignatureError || error instanceof WebhookFormatError) {
        onError?.(error, req);
        const status = error instanceof WebhookSignatureError ? 401 : 400;
        return send(res, status, 'text/plain', error.message);
      }
      return fail(error, res, next);
    }
    try {
      const handler = handlers[event.action];
      let reply = handler ? await handler(event, req, res) : DEFAULT_REPLIES[event.action];
      if (reply === undefined && event.action === 'disconnect') reply = allow();
      if (!isReply(reply)) {
        throw new TypeError(`hookbox ${event.action} handler returned ${JSON.stringify(reply)}, `
          + 'not a reply: return allow(...), deny(...) or a per-hook helper');
      }
      send(res, 200, 'application/json', JSON.stringify(reply));
    } catch (error) {
      fail(error, res, next);
    }
  };
}

function isReply(reply) {
  return Array.isArray(reply) && reply.length === 2 && typeof reply[0] === 'boolean'
    && reply[1] !== null && typeof reply[1] === 'object' && !Array.isArray(reply[1]);
}

/** The request's exact body bytes; null if longer than `limit`. */
async function rawBody(req, limit) {
  if (Buffer.isBuffer(req.body)) return req.body; // express.raw() ran first: the same bytes
  if (req._body || req.readableEnded) {
    throw new Error('hookboxWebhooks: a body parser already read this request; mount '
      + 'hookboxWebhooks before express.json()/express.urlencoded(), or give it express.raw()');
  }
  if (Number(req.headers['content-length']) > limit) return null;
  return new Promise((resolve, reject) => {
    const chunks = [];
    let length = 0;
    req.on('data', (chunk) => {
      length += chunk.length;
      if (length <= limit) chunks.push(chunk);
    });
    req.on('end', () => resolve(length <= limit ? Buffer.concat(chunks) : null));
    req.on('error', reject);
  });
}

function send(res, status, type, body) {
  res.statusCode = status;
  res.setHeader('Content-Type', type);
  res.end(body);
}

/** A handler's error goes to Express's error handling; without Express, a bare 500. */
function fail(error, res, next) {
  if (next) return next(error);
  send(res, 500, 'text/plain', 'Internal Server Error');
}
