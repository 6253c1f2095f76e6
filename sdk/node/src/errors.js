// One error hierarchy for everything the SDK throws on purpose.
//
//   HookboxError
//   ├── HookboxRefusedError      the Web API answered [false, {msg}]
//   ├── HookboxThrottledError    HTTP 429 with Retry-After (msg and retryAfterSeconds)
//   ├── HookboxTimeoutError      no complete answer within timeoutMs
//   ├── HookboxTransportError    unreachable, or an answer that is not the Web API's
//   └── WebhookError
//       ├── WebhookSignatureError   not signed by hookbox with this secret
//       └── WebhookFormatError      signed, but not a body hookbox sends

export class HookboxError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The Web API refused the call; `msg` is the server's own text. */
export class HookboxRefusedError extends HookboxError {
  constructor(method, msg) {
    super(`${method}: ${msg}`);
    this.method = method;
    this.msg = msg;
  }
}

/** HTTP 429: the server holds this address back for `retryAfterSeconds`. */
export class HookboxThrottledError extends HookboxError {
  constructor(method, msg, retryAfterSeconds) {
    super(`${method}: ${msg}`);
    this.method = method;
    this.msg = msg;
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** No complete answer within the call's timeout. The call may or may not have taken effect. */
export class HookboxTimeoutError extends HookboxError {
  constructor(method, timeoutMs) {
    super(`${method}: no answer within ${timeoutMs} ms`);
    this.method = method;
    this.timeoutMs = timeoutMs;
  }
}

/** The server could not be reached, or answered something that is not a Web API reply. */
export class HookboxTransportError extends HookboxError {
  constructor(method, detail, { status, cause } = {}) {
    super(`${method}: ${detail}`, cause ? { cause } : undefined);
    this.method = method;
    this.status = status;
  }
}

export class WebhookError extends HookboxError {}

/** The request does not carry a valid signature by hookbox with this secret. */
export class WebhookSignatureError extends WebhookError {}

/** The signature is good but the body is not one hookbox sends (unknown action, bad JSON). */
export class WebhookFormatError extends WebhookError {}
