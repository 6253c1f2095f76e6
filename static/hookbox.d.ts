// TypeScript declarations for hookbox's browser client (/static/hookbox.js, hookbox.mjs).
// The API is the original HookBox 0.3.4a1 client's, plus reconnect options.

export interface ConnectOptions {
  /** Reconnect after an unexpected close, and re-subscribe (default true). */
  reconnect?: boolean;
  /** After a reconnect, recover the publications missed meanwhile (default true). */
  recover?: boolean;
  /** Force one transport (default 'auto': WebSocket, CSP if it fails). */
  transport?: 'auto' | 'websocket' | 'csp';
  /**
   * Called before each connect and reconnect; what it returns (or resolves to) is the CONNECT
   * payload: fetch a fresh short-lived token here. A rejection is reported to onError and the
   * connection tries again later. Not called for a reconnect that presents a resume ticket
   * (unless the server does not take it).
   */
  getPayload?: () => unknown | Promise<unknown>;
  /**
   * Keep the resume ticket the server gives when the web app's connect reply has resume_ttl,
   * renew it while connected, and present it when reconnecting, so that the web app is not
   * asked again (default true).
   */
  resume?: boolean;
}

/** Why a transport closed. */
export type CloseReason =
  | 'ServerUnreachable'
  | 'ConnectionTimeout'
  | 'ConnectionClosedCleanly'
  | 'ConnectionLost'
  | 'ExpiredSession'
  | 'ProtocolError';

/** A history entry: ['PUBLISH', {user, payload, datetime}] or a join / leave. */
export type HistoryEntry = [string, { user?: string | null; payload?: unknown; datetime?: string }];

/** The arguments of a server frame (PUBLISH, SUBSCRIBE, UNSUBSCRIBE, STATE_UPDATE, …). */
export interface Frame {
  channel_name?: string;
  user?: string | null;
  payload?: unknown;
  datetime?: string;
  [key: string]: unknown;
}

export interface Subscription {
  readonly channelName: string;
  history: HistoryEntry[];
  historySize: number;
  historyDuration: number;
  state: Record<string, unknown>;
  presence: string[];
  initialData?: unknown;
  /** The channel's epoch and the offset of the last event seen (servers that show them). */
  epoch?: string;
  offset?: number;
  /** After a reconnect: true if the missed publications were delivered, false if they are gone. */
  recovered?: boolean;
  canceled: boolean;
  onPublish: (frame: Frame) => void;
  onSubscribe: (frame: Frame) => void;
  onUnsubscribe: (frame: Frame) => void;
  onState: (frame: Frame) => void;
  /** Publishes any JSON-able value to this channel. */
  publish(data: unknown): void;
  /** Leaves the channel. */
  cancel(): void;
}

export interface Connection {
  readonly url: string;
  username: string | null;
  connected: boolean;
  /** 'websocket' or 'csp'. */
  transportName: string | null;
  /** True after a reconnect the server let in with its resume ticket (no connect webhook). */
  resumed: boolean;
  cookieString: string;
  /** The payload the next CONNECT sends (set by getPayload before each one; may be set). */
  connectPayload: unknown;
  onOpen: (args: {
    name: string;
    payload: unknown;
    resumed?: boolean;
    resume?: string;
    resume_ttl?: number;
  }) => void;
  onSubscribed: (channelName: string, subscription: Subscription, args: Frame) => void;
  onUnsubscribed: (subscription: Subscription, args: Frame) => void;
  onMessaged: (args: Frame) => void;
  onError: (args: { id: number | null; msg: string }) => void;
  onClose: () => void;
  onConnectionLost: (reason: CloseReason) => void;
  onReconnecting: (attempt: number, delayMs: number) => void;
  subscribe(channelName: string): void;
  publish(channelName: string, data: unknown): void;
  message(name: string, payload: unknown): void;
  /** Closes for good (no reconnect). */
  disconnect(): void;
}

export interface Logger {
  setLevel(level: number): void;
}

export interface Hookbox {
  /** The protocol version this client speaks. */
  version: string;
  logging: { get(name: string): Logger; DEBUG: number; INFO: number; WARN: number; ERROR: number };
  /**
   * Connects to a hookbox server ('http://host:8001'). `connectPayload` goes to the connect
   * webhook; `cookieString` defaults to document.cookie.
   */
  connect(url: string, connectPayload?: unknown, cookieString?: string | null,
    options?: ConnectOptions): Connection;
  Connection: unknown;
  Subscription: unknown;
}

declare const hookbox: Hookbox;
export default hookbox;
export declare function connect(url: string, connectPayload?: unknown,
  cookieString?: string | null, options?: ConnectOptions): Connection;

declare global {
  interface Window {
    hookbox: Hookbox;
  }
}
export declare const logging: Hookbox['logging'];
export declare const Connection: unknown;
export declare const Subscription: unknown;
