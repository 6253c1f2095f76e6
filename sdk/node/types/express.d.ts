// hookbox-sdk/express: the webhook middleware. Typed over Node's request and response, which
// Express's extend: `hookboxWebhooks<express.Request, express.Response>(...)` types handlers
// with Express's own.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type {
  ConnectEvent, CreateChannelEvent, DestroyChannelEvent, DisconnectEvent, MessageEvent,
  PollEvent, PublishEvent, Reply, SubscribeEvent, UnsubscribeEvent, WebhookError,
} from './index.js';

type Returns<R> = R | Promise<R>;
type Handler<E, Req, Res> = (event: E, req: Req, res: Res) => Returns<Reply<object>>;

export interface Handlers<Req = IncomingMessage, Res = ServerResponse> {
  connect?: Handler<ConnectEvent, Req, Res>;
  /** Its reply is ignored by hookbox: it may return nothing. */
  disconnect?: (event: DisconnectEvent, req: Req, res: Res) => Returns<Reply<object> | void>;
  create_channel?: Handler<CreateChannelEvent, Req, Res>;
  destroy_channel?: Handler<DestroyChannelEvent, Req, Res>;
  subscribe?: Handler<SubscribeEvent, Req, Res>;
  unsubscribe?: Handler<UnsubscribeEvent, Req, Res>;
  publish?: Handler<PublishEvent, Req, Res>;
  message?: Handler<MessageEvent, Req, Res>;
  /** A channel poller's request (polling.mode persistent or once). */
  poll?: Handler<PollEvent, Req, Res>;
}

export interface HookboxWebhooksOptions<Req = IncomingMessage, Res = ServerResponse> {
  /** `--webhook-secret` (a `whsec_<base64>` one means Standard Webhooks). Required. */
  secret: string;
  handlers?: Handlers<Req, Res>;
  /** Standard Webhooks timestamp tolerance in seconds. Default 300. */
  toleranceSeconds?: number;
  /** Largest body read, in bytes (413 beyond). Default 1 MiB. */
  limit?: number;
  /** Told of each request refused for its signature (401) or its body (400). */
  onError?: (error: WebhookError, req: Req) => void;
}

/**
 * What a hook without a handler gets: connect, create_channel, subscribe, publish, message and
 * poll are denied (`No handler for <hook>`); unsubscribe, destroy_channel and disconnect are
 * approved.
 */
export declare const DEFAULT_REPLIES: Readonly<Record<keyof Handlers, Reply<object>>>;

/** An Express middleware (also a plain `http.createServer` callback). */
export declare function hookboxWebhooks<Req extends IncomingMessage = IncomingMessage, Res extends ServerResponse = ServerResponse>(
  options: HookboxWebhooksOptions<Req, Res>,
): (req: Req, res: Res, next?: (error?: unknown) => void) => Promise<void>;
