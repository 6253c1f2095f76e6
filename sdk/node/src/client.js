// The Web API client: POST <url>/web/<method>, form-encoded, answered [true, {...}] or
// [false, {msg}]. One method per Web API method, its parameters named as docs/web-api.md names
// them; JSON values (payloads, options, state values) are encoded here.
import { randomUUID } from 'node:crypto';
import {
  HookboxRefusedError,
  HookboxThrottledError,
  HookboxTimeoutError,
  HookboxTransportError,
} from './errors.js';

/** Parameters sent as they are (text); every other parameter is JSON-encoded. */
const TEXT_PARAMS = new Set([
  'channel_name', 'channel_names', 'originator', 'name', 'sender_name', 'recipient_name',
  'user_name', 'key', 'idempotency_key',
]);

/** The methods whose calls carry an idempotency key, and so may be retried. */
const IDEMPOTENT = new Set(['publish', 'publish_multi', 'message']);

export class HookboxClient {
  #base;
  #token;
  #timeoutMs;
  #retries;
  #retryDelayMs;
  #maxRetryDelayMs;
  #headers;

  constructor({
    url, token, timeoutMs = 10_000, retries = 2, retryDelayMs = 200, maxRetryDelayMs = 5_000,
    headers = {},
  }) {
    if (!url) throw new TypeError('HookboxClient: url is required (e.g. http://127.0.0.1:8001)');
    if (!token) throw new TypeError('HookboxClient: token is required (hookbox\'s -r/--api-security-token)');
    this.#base = String(url).replace(/\/+$/, '');
    this.#token = token;
    this.#timeoutMs = timeoutMs;
    this.#retries = retries;
    this.#retryDelayMs = retryDelayMs;
    this.#maxRetryDelayMs = maxRetryDelayMs;
    this.#headers = headers;
  }

  publish(params, options) { return this.call('publish', params, options); }

  publishMulti({ channel_names, ...rest }, options) {
    const names = Array.isArray(channel_names) ? channel_names.join(',') : channel_names;
    return this.call('publish_multi', { channel_names: names, ...rest }, options);
  }

  subscribe(params, options) { return this.call('subscribe', params, options); }
  unsubscribe(params, options) { return this.call('unsubscribe', params, options); }
  message(params, options) { return this.call('message', params, options); }
  createChannel(params, options) { return this.call('create_channel', params, options); }
  destroyChannel(params, options) { return this.call('destroy_channel', params, options); }
  setChannelOptions(params, options) { return this.call('set_channel_options', params, options); }
  getChannelInfo(params, options) { return this.call('get_channel_info', params, options); }
  stateSetKey(params, options) { return this.call('state_set_key', params, options); }
  stateDeleteKey(params, options) { return this.call('state_delete_key', params, options); }
  setUserOptions(params, options) { return this.call('set_user_options', params, options); }
  getUserInfo(params, options) { return this.call('get_user_info', params, options); }
  setConfig(params, options) { return this.call('set_config', params, options); }
  disconnect(params, options) { return this.call('disconnect', params, options); }
  getServerInfo(options) { return this.call('get_server_info', {}, options); }

  /**
   * Calls any Web API method by its wire name. Resolves with the reply's object; rejects with
   * a HookboxError. Only publish, publish_multi and message are retried, each try with the
   * same idempotency key.
   */
  async call(method, params = {}, { timeoutMs = this.#timeoutMs, signal } = {}) {
    const retryable = IDEMPOTENT.has(method) && this.#retries > 0;
    if (retryable && params.idempotency_key === undefined) {
      params = { ...params, idempotency_key: randomUUID() };
    }
    const body = encode(this.#token, params);
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#once(method, body, timeoutMs, signal);
      } catch (error) {
        const wait = retryable && attempt < this.#retries ? this.#retryWait(error, attempt) : false;
        if (wait === false) throw error;
        await sleep(wait, signal);
      }
    }
  }

  /** How long to wait before the next try after `error`, or false if it must not be retried. */
  #retryWait(error, attempt) {
    const backoff = this.#retryDelayMs * 2 ** attempt * (0.8 + Math.random() * 0.4);
    if (error instanceof HookboxThrottledError) {
      const asked = (error.retryAfterSeconds ?? 0) * 1000;
      return asked <= this.#maxRetryDelayMs ? Math.max(asked, backoff) : false;
    }
    if (error instanceof HookboxTimeoutError) return backoff;
    if (error instanceof HookboxTransportError) {
      // Unreachable (no status) or a 5xx from a proxy in front; other statuses will not change.
      return error.status === undefined || error.status >= 500 ? backoff : false;
    }
    return false;
  }

  async #once(method, body, timeoutMs, signal) {
    const timeout = AbortSignal.timeout(timeoutMs);
    const both = anySignal([timeout, signal]);
    let response;
    let text;
    try {
      response = await fetch(`${this.#base}/web/${method}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded', ...this.#headers },
        body,
        signal: both,
        redirect: 'manual',
      });
      text = await response.text();
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      if (timeout.aborted) throw new HookboxTimeoutError(method, timeoutMs);
      throw new HookboxTransportError(method, `could not reach hookbox (${describe(error)})`, { cause: error });
    }
    const reply = parseReply(text);
    if (response.status === 429) {
      const seconds = Number.parseInt(response.headers.get('retry-after') ?? '', 10);
      throw new HookboxThrottledError(method, reply?.[1]?.msg ?? text,
        Number.isNaN(seconds) ? undefined : seconds);
    }
    if (response.status !== 200 || !reply) {
      throw new HookboxTransportError(method,
        `HTTP ${response.status}, not a Web API reply: ${text.slice(0, 200)}`,
        { status: response.status });
    }
    const [ok, result] = reply;
    if (!ok) throw new HookboxRefusedError(method, String(result.msg ?? 'refused'));
    return result;
  }
}

/** The form body: the token, then every defined parameter (JSON-encoded unless it is text). */
function encode(token, params) {
  const form = new URLSearchParams({ security_token: token });
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined) continue;
    if (key === 'send_hook') {
      if (value) form.append(key, '1');
    } else if (TEXT_PARAMS.has(key)) {
      form.append(key, String(value));
    } else {
      form.append(key, JSON.stringify(value));
    }
  }
  return form;
}

/** `[bool, object]` from a reply body, or null if it is not one. */
function parseReply(text) {
  try {
    const reply = JSON.parse(text);
    if (Array.isArray(reply) && reply.length === 2 && reply[1] && typeof reply[1] === 'object') {
      return reply;
    }
  } catch { /* not JSON */ }
  return null;
}

function describe(error) {
  const cause = error?.cause;
  return cause?.code ?? cause?.message ?? error?.message ?? String(error);
}

/** An AbortSignal aborted when any of `signals` is (AbortSignal.any is Node >= 20.3). */
function anySignal(signals) {
  const present = signals.filter(Boolean);
  if (present.length === 1) return present[0];
  if (AbortSignal.any) return AbortSignal.any(present);
  const controller = new AbortController();
  for (const s of present) {
    if (s.aborted) {
      controller.abort(s.reason);
      break;
    }
    s.addEventListener('abort', () => controller.abort(s.reason), { once: true });
  }
  return controller.signal;
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(signal.reason);
    }, { once: true });
  });
}
