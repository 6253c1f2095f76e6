// Hand-written declarations of hookbox-sdk. Names follow docs/web-api.md and docs/webhooks.md.

/** Any JSON value: payloads, option values, state values. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

// ---------------------------------------------------------------------------------------------
// Options (docs/protocol.md, "Channel options" and "User options")

export type HistoryEntry =
  | ['PUBLISH', { payload: Json; datetime: string; user?: string | null }]
  | ['SUBSCRIBE', { user: string; datetime: string }]
  | ['UNSUBSCRIBE', { user: string; datetime: string }];

export interface PollingOptions {
  mode?: '' | 'simple' | 'persistent' | 'once';
  /** Seconds between fetches (> 0, default 5). */
  interval?: number;
  url?: string;
  form?: { [key: string]: Json };
  originator?: string;
}

export interface ChannelOptions {
  reflective?: boolean;
  history_size?: number;
  history?: HistoryEntry[];
  history_duration?: number;
  history_publish_only?: boolean;
  moderated?: boolean;
  moderated_publish?: boolean;
  moderated_subscribe?: boolean;
  moderated_unsubscribe?: boolean;
  presenceful?: boolean;
  anonymous?: boolean;
  state?: { [key: string]: Json };
  polling?: PollingOptions;
  server_presenceful?: boolean;
  server_user_presence?: string[];
}

export interface UserOptions {
  reflective?: boolean;
  moderated_message?: boolean;
  per_connection_subscriptions?: boolean;
  global_unsubscriptions?: boolean;
  auto_subscribe?: string[];
}

export declare const CHANNEL_OPTIONS: readonly (keyof ChannelOptions)[];
export declare const USER_OPTIONS: readonly (keyof UserOptions)[];

// ---------------------------------------------------------------------------------------------
// The Web API client

export interface HookboxClientOptions {
  /** hookbox's base URL, e.g. `http://127.0.0.1:8001`; calls go to `<url>/web/<method>`. */
  url: string;
  /** `-r/--api-security-token`. */
  token: string;
  /** Per try, covering the whole answer. Default 10000. */
  timeoutMs?: number;
  /**
   * Further tries of publish, publishMulti and message after a timeout, a connection error, a
   * 5xx or a 429, each with the same idempotency key. Default 2; 0 turns retries off.
   */
  retries?: number;
  /** First pause between tries (doubled each time, ±20 %). Default 200. */
  retryDelayMs?: number;
  /** A 429 asking to wait longer than this is not retried. Default 5000. */
  maxRetryDelayMs?: number;
  /** Extra request headers (e.g. for a proxy in front of hookbox). */
  headers?: Record<string, string>;
}

export interface CallOptions {
  /** Overrides the client's timeoutMs for this call. */
  timeoutMs?: number;
  /** Cancels the call (and its retries); the promise rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** Successful methods without a result answer `{}`. */
export type EmptyResult = Record<string, never>;

export interface Idempotent {
  /**
   * The server applies a call with a key it has seen recently only once. Generated
   * (crypto.randomUUID()) when retries are on and none is given.
   */
  idempotency_key?: string;
}

export interface PublishParams extends Idempotent {
  channel_name: string;
  payload?: Json;
  originator?: string;
  send_hook?: boolean;
}

export interface PublishMultiParams extends Idempotent {
  /** A list, or the comma-separated names. */
  channel_names: string[] | string;
  payload?: Json;
  originator?: string;
  send_hook?: boolean;
}

export interface SubscriptionParams {
  channel_name: string;
  /** A connected user. */
  name: string;
  send_hook?: boolean;
}

export interface MessageParams extends Idempotent {
  sender_name: string;
  recipient_name: string;
  payload?: Json;
  send_hook?: boolean;
}

export type CreateChannelParams = { channel_name: string; send_hook?: boolean } & ChannelOptions;
export type SetChannelOptionsParams = { channel_name: string } & ChannelOptions;
export type SetUserOptionsParams = { user_name: string } & UserOptions;

export interface ChannelInfo {
  name: string;
  options: Required<Omit<ChannelOptions, 'polling'>> & { polling: Required<PollingOptions> };
  subscribers: string[];
}

export interface UserInfo {
  name: string;
  channels: string[];
  connections: string[];
  options: Required<UserOptions>;
}

export interface ServerInfo {
  channels: string[];
  /** Connection ids, in connect order. */
  connections: string[];
}

export interface SetConfigParams {
  cbhost?: string;
  cbport?: number;
  cbpath?: string;
  cbhttps?: boolean;
  cbtrailingslash?: boolean;
  cbsendhookboxversion?: boolean;
  cb_connect?: string;
  cb_disconnect?: string;
  cb_create_channel?: string;
  cb_destroy_channel?: string;
  cb_subscribe?: string;
  cb_unsubscribe?: string;
  cb_publish?: string;
  cb_message?: string;
  /** Empty or null turns it off. */
  cb_single_url?: string | null;
  /** Empty or null turns it off. */
  webhook_secret?: string | null;
  api_security_token?: string;
  admin_password?: string;
}

export declare class HookboxClient {
  constructor(options: HookboxClientOptions);
  publish(params: PublishParams, options?: CallOptions): Promise<EmptyResult>;
  publishMulti(params: PublishMultiParams, options?: CallOptions): Promise<EmptyResult>;
  subscribe(params: SubscriptionParams, options?: CallOptions): Promise<EmptyResult>;
  unsubscribe(params: SubscriptionParams, options?: CallOptions): Promise<EmptyResult>;
  message(params: MessageParams, options?: CallOptions): Promise<EmptyResult>;
  createChannel(params: CreateChannelParams, options?: CallOptions): Promise<EmptyResult>;
  destroyChannel(params: { channel_name: string; send_hook?: boolean }, options?: CallOptions): Promise<EmptyResult>;
  setChannelOptions(params: SetChannelOptionsParams, options?: CallOptions): Promise<EmptyResult>;
  getChannelInfo(params: { channel_name: string }, options?: CallOptions): Promise<ChannelInfo>;
  stateSetKey(params: { channel_name: string; key: string; val: Json }, options?: CallOptions): Promise<EmptyResult>;
  stateDeleteKey(params: { channel_name: string; key: string }, options?: CallOptions): Promise<EmptyResult>;
  setUserOptions(params: SetUserOptionsParams, options?: CallOptions): Promise<EmptyResult>;
  getUserInfo(params: { user_name: string }, options?: CallOptions): Promise<UserInfo>;
  setConfig(params: SetConfigParams, options?: CallOptions): Promise<EmptyResult>;
  /** Closes every connection of the user; answers how many. */
  disconnect(params: { name: string }, options?: CallOptions): Promise<{ connections: number }>;
  getServerInfo(options?: CallOptions): Promise<ServerInfo>;
  /**
   * Any method by its wire name (e.g. a newer one). Strings in `channel_name`-like parameters are
   * sent as text, `send_hook: true` as `1`, everything else as JSON.
   */
  call(method: string, params?: Record<string, unknown>, options?: CallOptions): Promise<Record<string, Json>>;
}

// ---------------------------------------------------------------------------------------------
// Errors

export declare class HookboxError extends Error {}

/** The Web API answered `[false, {msg}]`. */
export declare class HookboxRefusedError extends HookboxError {
  readonly method: string;
  /** The server's text, e.g. `Channel news doesn't exist`. */
  readonly msg: string;
}

/** HTTP 429. */
export declare class HookboxThrottledError extends HookboxError {
  readonly method: string;
  readonly msg: string;
  /** From `Retry-After`. */
  readonly retryAfterSeconds: number | undefined;
}

export declare class HookboxTimeoutError extends HookboxError {
  readonly method: string;
  readonly timeoutMs: number;
}

export declare class HookboxTransportError extends HookboxError {
  readonly method: string;
  /** The HTTP status of an answer that was not a Web API reply; undefined if none came. */
  readonly status: number | undefined;
}

export declare class WebhookError extends HookboxError {}
export declare class WebhookSignatureError extends WebhookError {}
export declare class WebhookFormatError extends WebhookError {}

// ---------------------------------------------------------------------------------------------
// Webhook events

/** Node's IncomingHttpHeaders, a plain object with any case, or a Fetch Headers. */
export type HeadersLike =
  | { get(name: string): string | null }
  | Record<string, string | string[] | undefined>;

export interface VerifyOptions {
  /** The exact bytes received (a string is taken as UTF-8). */
  body: Buffer | Uint8Array | string;
  headers: HeadersLike;
  /** `--webhook-secret`; a `whsec_<base64>` secret means Standard Webhooks. */
  secret: string;
  /** Standard Webhooks timestamp tolerance. Default 300. */
  toleranceSeconds?: number;
  /** The current time in ms (for tests). Default Date.now(). */
  now?: number;
}

/** What every event carries besides its hook's fields. */
export interface EventContext {
  /** The `Cookie` header hookbox forwarded (the browser's cookies), '' if none. */
  cookieHeader: string;
  /** The same, parsed. */
  cookies: Record<string, string>;
  /** `X-Real-IP`: the client's address, when a live connection is behind the call. */
  realIp: string | null;
  /** Standard Webhooks `webhook-id` (the same on hookbox's retries of a call); else null. */
  webhookId: string | null;
  /** The body's fields as sent, without `secret`. */
  raw: Record<string, unknown>;
}

export interface ConnectEvent extends EventContext {
  action: 'connect';
  /** 32 lowercase hex digits. */
  conn_id: string;
  /** The client's CONNECT payload, decoded; null if none. */
  payload: Json;
}

export interface DisconnectEvent extends EventContext {
  action: 'disconnect';
  name: string;
}

export interface CreateChannelEvent extends EventContext {
  action: 'create_channel';
  channel_name: string;
}

export interface DestroyChannelEvent extends EventContext {
  action: 'destroy_channel';
  channel_name: string;
}

export interface SubscribeEvent extends EventContext {
  action: 'subscribe';
  channel_name: string;
  user: string;
}

export interface UnsubscribeEvent extends EventContext {
  action: 'unsubscribe';
  channel_name: string;
  user: string;
}

export interface PublishEvent extends EventContext {
  action: 'publish';
  channel_name: string;
  payload: Json;
  /** Absent on anonymous channels and for Web API publishes without one. */
  originator?: string;
}

export interface MessageEvent extends EventContext {
  action: 'message';
  sender: string;
  recipient: string;
  recipient_exists: boolean;
  payload: Json;
}

/** A channel poller's POST (`polling.mode` persistent or once): no action, the channel's polling.form. */
export interface PollEvent extends EventContext {
  action: 'poll';
  form: Record<string, string>;
}

export type HookEvent =
  | ConnectEvent | DisconnectEvent | CreateChannelEvent | DestroyChannelEvent
  | SubscribeEvent | UnsubscribeEvent | PublishEvent | MessageEvent;

export type WebhookEvent = HookEvent | PollEvent;

export type HookName = HookEvent['action'];
export declare const HOOK_NAMES: readonly HookName[];

/** Verifies the signature, then parses: throws WebhookSignatureError or WebhookFormatError. */
export declare function verifyWebhook(options: VerifyOptions): WebhookEvent;

/** Parses WITHOUT verifying: only for a hookbox without --webhook-secret on a closed network. */
export declare function parseWebhook(options: { body: Buffer | Uint8Array | string; headers: HeadersLike }): WebhookEvent;

/** Only the signature check; returns the Standard Webhooks webhook-id (null for X-Hookbox-Signature). */
export declare function verifySignature(options: VerifyOptions): string | null;

export declare const STANDARD_PREFIX: 'whsec_';
export declare const DEFAULT_TOLERANCE_SECONDS: number;

export declare function parseCookies(header: string | null | undefined): Record<string, string>;

// ---------------------------------------------------------------------------------------------
// Replies

export type Reply<O extends object = Record<string, Json>> = [true, O] | [false, { error?: Json }];
export type Approval<O extends object> = [true, O];
export type Denial = [false, { error?: Json }];

export interface AutoLists {
  /** Channels to join (without subscribe webhooks). */
  auto_subscribe?: string[];
  /** Channels to leave (without unsubscribe webhooks). */
  auto_unsubscribe?: string[];
}

export interface ConnectReply extends UserOptions {
  /** The user's name (required, non-empty). */
  name: string;
  /** Replaces the payload of the client's CONNECTED frame. */
  override_payload?: Json;
  auto_unsubscribe?: string[];
  /**
   * Seconds (at most 3600) within which a client that asked may come back with its resume
   * ticket without this webhook (docs/protocol.md, "Resume tickets").
   */
  resume_ttl?: number;
}

export interface SubscribeReply extends AutoLists {
  /** Added to the joining user's SUBSCRIBE frame if truthy. */
  initial_data?: Json;
}

export interface PublishReply extends AutoLists {
  override_payload?: Json;
  /** Only the publishing connection gets it (it is still recorded in history). */
  only_to_sender?: boolean;
}

export interface MessageReply extends AutoLists {
  override_payload?: Json;
  override_recipient_name?: string;
}

export interface PollReply extends ChannelOptions {
  /** Published to the channel (default null). */
  payload?: Json;
}

export declare function allow<O extends object = {}>(options?: O): Approval<O>;
/** The browser sees `error` as its ERROR's msg (`Unauthorized` without one). */
export declare function deny(error?: Json): Denial;
export declare function allowConnect(options: ConnectReply): Approval<ConnectReply>;
export declare function allowCreateChannel(options?: ChannelOptions): Approval<ChannelOptions>;
export declare function allowSubscribe(options?: SubscribeReply): Approval<SubscribeReply>;
export declare function allowUnsubscribe(options?: AutoLists): Approval<AutoLists>;
export declare function allowPublish(options?: PublishReply): Approval<PublishReply>;
export declare function allowMessage(options?: MessageReply): Approval<MessageReply>;
export declare function allowDestroyChannel(): Approval<{}>;
export declare function pollReply(options?: PollReply): Approval<PollReply>;
