/*
 * hookbox.js - browser client for the hookbox real-time server.
 *
 * Written from scratch for the Rust rebuild of HookBox 0.3.4a1; it speaks the
 * same protocol and exposes the same API as the original client:
 *
 *   var conn = hookbox.connect('http://host:8001', connectPayload, cookieString);
 *   conn.onOpen = function (args) { conn.subscribe('lobby'); };
 *   conn.onSubscribed = function (channelName, subscription, args) {
 *     subscription.onPublish = function (frame) { ... frame.user, frame.payload ... };
 *     subscription.publish({text: 'hi'});
 *   };
 *
 * Wire format (RTJP): every frame is JSON.stringify([id, name, args]) + "\r\n".
 * Frames travel over a WebSocket at <url>ws, or - when WebSocket is missing or
 * fails before opening - over the Comet Session Protocol (CSP) at <url>csp.
 *
 * Options (4th argument of hookbox.connect):
 *   {reconnect: true}  (the default) after an unexpected close, reconnect with
 *                      jittered exponential backoff (0.5 s doubling up to 30 s),
 *                      re-send CONNECT and re-subscribe to every channel.
 *                      conn.onConnectionLost(reason) reports the loss and
 *                      conn.onReconnecting(attempt, delayMs) each attempt. A
 *                      page that had a WebSocket goes back to WebSocket (it
 *                      never settles for CSP after a server restart). No
 *                      reconnect after conn.disconnect(), nor when the server
 *                      closed the connection on purpose (WebSocket close 1000:
 *                      the web app disconnected the user; 1008: a policy).
 *                      {reconnect: false} gives the original's behaviour.
 *   {recover: true}    (the default) with a hookbox that supports it, a
 *                      re-subscribe after a reconnect asks for the publications
 *                      missed meanwhile; they are delivered to onPublish in
 *                      order before anything newer, and the subscription's
 *                      history continues. subscription.recovered is false when
 *                      they are gone (reload what the page shows).
 *   {transport: 'auto' | 'websocket' | 'csp'}  force one transport (default auto).
 *   {getPayload: async () => value}  called before each connect and reconnect; its answer
 *                      is the CONNECT payload (a fresh short-lived token each time).
 *                      conn.connectPayload holds the payload in use, and may be set.
 *                      Not called for a reconnect that presents a resume ticket; if the
 *                      server does not take the ticket, it is called and CONNECT sent again.
 *   {resume: true}     (the default) when the web app's connect reply opts in (resume_ttl),
 *                      keep the resume ticket the server gives, renew it while connected,
 *                      and present it when reconnecting: the server lets the page back in,
 *                      and into its channels, without asking the web app again.
 *                      conn.resumed is true after such a reconnect.
 * A CONNECT or SUBSCRIBE the server was too busy to ask the web app about (ERROR with
 * retry_after) is sent again after that many seconds plus up to as much again, silently.
 * An https: server URL uses wss: for the WebSocket.
 *
 * No dependencies, no build step. Requires TextEncoder/TextDecoder, btoa/atob.
 */
(function (root) {
  'use strict';

  const noop = function () {};

  // -------------------------------------------------------------------------
  // Logging. `hookbox.logging` mimics the shape pages used with the original
  // (hookbox.logging.get(name).setLevel(hookbox.logging.DEBUG)); quiet by default.
  // -------------------------------------------------------------------------
  const LEVELS = { DEBUG: 10, INFO: 20, WARN: 30, ERROR: 40 };
  const loggers = {};
  function getLogger(name) {
    if (loggers[name]) return loggers[name];
    const logger = loggers[name] = { level: LEVELS.WARN, setLevel(level) { this.level = level; } };
    for (const method of ['debug', 'info', 'warn', 'error']) {
      logger[method] = (...args) => {
        if (LEVELS[method.toUpperCase()] < logger.level || typeof console === 'undefined') return;
        console[method]('[' + name + ']', ...args);
      };
    }
    return logger;
  }
  const log = getLogger('hookbox');
  const logging = Object.assign({ get: getLogger }, LEVELS);

  // -------------------------------------------------------------------------
  // Small helpers: UTF-8 + URL-safe base64 (CSP packets), CSP body parsing,
  // cookies, POST requests.
  // -------------------------------------------------------------------------

  /** UTF-8 encode `text` and return URL-safe base64 without '=' padding. */
  function base64UrlEncode(text) {
    const bytes = new TextEncoder().encode(text);
    let binary = '';
    for (let i = 0; i < bytes.length; i += 0x8000) {
      binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  /** Decode URL-safe base64 (padding optional) into a Uint8Array. */
  function base64UrlDecode(data) {
    let b64 = String(data).replace(/[\s=]/g, '').replace(/-/g, '+').replace(/_/g, '/');
    while (b64.length % 4) b64 += '=';
    const binary = atob(b64);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes;
  }

  /**
   * CSP responses are JavaScript expressions such as `({"session": "..."})` or
   * `([[1, 1, "..."]])`. Instead of eval-ing them we strip the outer
   * parentheses (and an optional trailing ';') and parse the JSON inside.
   */
  function parseCspBody(text) {
    let body = String(text).trim();
    if (body.endsWith(';')) body = body.slice(0, -1).trim();
    if (body.startsWith('(') && body.endsWith(')')) body = body.slice(1, -1);
    return JSON.parse(body);
  }

  const documentCookie = () => (typeof document !== 'undefined' && document.cookie) || '';

  /**
   * POST `body` to `url` with XHR. Content-Type text/plain keeps it a "simple"
   * CORS request (no preflight). `callback(status, text)` gets status 0 on
   * network error / timeout. Returns a handle whose abort() silences the callback.
   * `credentials`: the browser sends its cookies for the server along (see the handshake).
   */
  function httpPost(url, body, timeoutMs, callback, credentials) {
    const xhr = new XMLHttpRequest();
    let done = false;
    const finish = (status, text) => { if (!done) { done = true; callback(status, text); } };
    xhr.open('POST', url, true);
    if (credentials) xhr.withCredentials = true;
    xhr.setRequestHeader('Content-Type', 'text/plain');
    if (timeoutMs) xhr.timeout = timeoutMs;
    xhr.onload = () => finish(xhr.status, xhr.responseText);
    xhr.onerror = xhr.ontimeout = xhr.onabort = () => finish(0, '');
    xhr.send(body);
    return { abort() { done = true; try { xhr.abort(); } catch (e) { /* ignore */ } } };
  }

  // -------------------------------------------------------------------------
  // Transports. Both implement the same tiny interface:
  //   open(), send(text), close()
  //   callbacks: onopen(), onmessage(text), onclose(reason), onerror(error)
  //   state:     opened (became usable at least once), closed, name
  // onclose fires exactly once, also after our own close(). Reasons:
  //   'ServerUnreachable' (never opened / handshake failed), 'ConnectionTimeout',
  //   'ConnectionClosedCleanly', 'ConnectionLost', 'ExpiredSession', 'ProtocolError'.
  // -------------------------------------------------------------------------

  class Transport {
    constructor(name, url) {
      this.name = name;
      this.url = url;
      this.opened = false;
      this.closed = false;
      this.onopen = this.onmessage = this.onclose = this.onerror = noop;
    }
  }

  const WS_OPEN_TIMEOUT = 10000;

  class WebSocketTransport extends Transport {
    constructor(url) {
      super('websocket', url);
      this._ws = null;
      this._decoder = new TextDecoder();
      this._openTimer = null;
    }

    open() {
      let ws;
      try {
        ws = this._ws = new root.WebSocket(this.url);
      } catch (e) { // e.g. SyntaxError for a bad URL: report like a failed open
        return setTimeout(() => this._finish('ServerUnreachable'), 0);
      }
      // Text frames arrive as strings; tolerate binary ones by decoding UTF-8.
      ws.binaryType = 'arraybuffer';
      ws.onopen = () => {
        clearTimeout(this._openTimer);
        this.opened = true;
        this.onopen();
      };
      ws.onmessage = (event) => {
        const data = event.data;
        const text = typeof data === 'string'
          ? data : this._decoder.decode(new Uint8Array(data), { stream: true });
        if (text && !this.closed) this.onmessage(text);
      };
      ws.onerror = (event) => this.onerror(event);
      ws.onclose = (event) => this._finish(!this.opened ? 'ServerUnreachable'
        : event.wasClean ? 'ConnectionClosedCleanly' : 'ConnectionLost', event.code);
      // A socket stuck in CONNECTING (some proxies) counts as a failed open.
      this._openTimer = setTimeout(() => {
        if (!this.opened) {
          try { ws.close(); } catch (e) { /* ignore */ }
          this._finish('ServerUnreachable');
        }
      }, WS_OPEN_TIMEOUT);
    }

    send(text) {
      if (!this.closed && this._ws && this._ws.readyState === 1) this._ws.send(text);
    }

    close() {
      if (this.closed) return;
      try { if (this._ws) this._ws.close(); } catch (e) { /* ignore */ }
      this._finish('ConnectionClosedCleanly');
    }

    _finish(reason, code) {
      if (this.closed) return;
      this.closed = true;
      clearTimeout(this._openTimer);
      if (this._ws) this._ws.onopen = this._ws.onmessage = this._ws.onclose = this._ws.onerror = null;
      this.onclose(reason, code);
    }
  }

  // CSP timing (see spec section 3.2): handshake gives up after 10 s; the session is
  // considered dead after 45 s without a successful comet/send response; failed
  // requests are retried with a backoff starting at 50 ms and doubling.
  const CSP_HANDSHAKE_TIMEOUT = 10000;
  const CSP_INACTIVITY_TIMEOUT = 45000;
  const CSP_REQUEST_TIMEOUT = 40000; // > the server's 30 s long poll
  const CSP_MAX_BACKOFF = 5000;

  class CspTransport extends Transport {
    /** `url` is the CSP prefix, e.g. http://host:8001/csp */
    constructor(url) {
      super('csp', url.replace(/\/+$/, ''));
      this._session = null;
      this._lastAck = 0;         // highest server packet id received
      this._sendId = 0;          // last client packet id used
      this._sendBuffer = '';     // text waiting for the next send request
      this._sending = false;     // one send request in flight at a time
      this._closeQueued = false; // our null packet still has to go out
      this._nullSent = false;
      this._request = null;      // handshake or comet request in flight
      this._timers = new Set();
      this._idleTimer = null;
      this._decoder = new TextDecoder();
      this._onPageHide = () => this._beaconClose();
    }

    open() {
      const started = Date.now();
      let backoff = 50;
      // The handshake carries the browser's cookies for hookbox (withCredentials), as a
      // WebSocket does: a session cookie the page cannot read (HttpOnly) reaches the connect
      // webhook when the server allows the page's origin. A server that does not allow
      // credentials (the original answers `*`) fails such a request: then every other
      // attempt goes without.
      let credentials = true;
      const attempt = () => {
        if (this.closed) return;
        const remaining = CSP_HANDSHAKE_TIMEOUT - (Date.now() - started);
        if (remaining <= 0) return this._finish('ServerUnreachable');
        const url = this.url + '/handshake?ct=application%2Fjavascript';
        this._request = httpPost(url, '{}', remaining, (status, text) => {
          this._request = null;
          if (this.closed) return;
          let key = null;
          try { key = status === 200 && parseCspBody(text).session; } catch (e) { /* retry below */ }
          if (key) return this._established(String(key));
          if (status === 404) return this._finish('ServerUnreachable');
          if (status === 0) credentials = !credentials;
          this._later(attempt, backoff);
          backoff = Math.min(backoff * 2, CSP_MAX_BACKOFF);
        }, credentials);
      };
      attempt();
    }

    send(text) {
      if (this.closed || this._closeQueued) return;
      this._sendBuffer += text;
      this._flushSend();
    }

    close() {
      if (this.closed) return;
      this._closeQueued = true;
      this._flushSend(); // delivers anything buffered, then our null packet
      this._finish('ConnectionClosedCleanly');
    }

    _established(key) {
      this._session = key;
      this.opened = true;
      this._touch();
      if (typeof addEventListener === 'function') addEventListener('pagehide', this._onPageHide);
      this.onopen();
      this._poll(50);
      this._flushSend();
    }

    _query() {
      return '?s=' + encodeURIComponent(this._session) + '&a=' + this._lastAck;
    }

    _later(fn, ms) {
      const timer = setTimeout(() => { this._timers.delete(timer); fn(); }, ms);
      this._timers.add(timer);
    }

    /** Any successful comet/send response proves the session is alive. */
    _touch() {
      clearTimeout(this._idleTimer);
      this._idleTimer = setTimeout(() => this._finish('ConnectionTimeout'), CSP_INACTIVITY_TIMEOUT);
    }

    /** Long-poll loop: one comet request at a time, re-issued after each answer. */
    _poll(backoff) {
      if (this.closed) return;
      this._request = httpPost(this.url + '/comet' + this._query(), '', CSP_REQUEST_TIMEOUT, (status, text) => {
        this._request = null;
        if (this.closed) return;
        if (status === 404) return this._finish('ExpiredSession');
        let packets = null;
        try { packets = status === 200 && parseCspBody(text); } catch (e) { /* retry below */ }
        if (!Array.isArray(packets)) {
          this._later(() => this._poll(Math.min(backoff * 2, CSP_MAX_BACKOFF)), backoff);
          return;
        }
        this._touch();
        this._receive(packets);
        this._poll(50);
      });
    }

    /** Handle a batch of [id, encoding, data] packets from the server. */
    _receive(packets) {
      for (const packet of packets) {
        if (this.closed) return;
        if (!Array.isArray(packet)) continue;
        const [id, encoding, data] = packet;
        if (id <= this._lastAck) continue; // already seen (re-delivery)
        if (id !== this._lastAck + 1) return this._finish('ProtocolError');
        this._lastAck = id;
        if (data === null) {
          // Server closed the session: answer with our own null, then report.
          this._closeQueued = true;
          this._flushSend();
          return this._finish('ConnectionClosedCleanly');
        }
        let text;
        try {
          text = encoding === 1 ? this._decoder.decode(base64UrlDecode(data), { stream: true }) : String(data);
        } catch (e) {
          return this._finish('ProtocolError');
        }
        if (text) this.onmessage(text);
      }
    }

    /**
     * Send what is buffered as one packet [id, 1, base64url(utf8)], or our
     * close packet [id, 0, null]. A failed request is retried with the same
     * packet id (the server skips ids it has already seen).
     */
    _flushSend(retry, backoff = 50) {
      if (!this._session || (this._sending && !retry)) return;
      let packet = retry;
      if (!packet) {
        if (this._sendBuffer) {
          packet = [++this._sendId, 1, base64UrlEncode(this._sendBuffer)];
          this._sendBuffer = '';
        } else if (this._closeQueued && !this._nullSent) {
          packet = [++this._sendId, 0, null];
          this._nullSent = true;
        } else {
          return;
        }
      }
      this._sending = true;
      httpPost(this.url + '/send' + this._query(), JSON.stringify([packet]), CSP_REQUEST_TIMEOUT, (status) => {
        if (status === 200 || status === 404 || packet[2] === null || this.closed) {
          this._sending = false;
          if (status === 404) return this._finish('ExpiredSession');
          if (status === 200 && !this.closed) this._touch();
          return this._flushSend();
        }
        this._later(() => this._flushSend(packet, Math.min(backoff * 2, CSP_MAX_BACKOFF)), backoff);
      });
    }

    /** Page is going away: tell the server now instead of letting it time out. */
    _beaconClose() {
      if (!this._session || this._nullSent || typeof navigator === 'undefined' || !navigator.sendBeacon) return;
      this._nullSent = true;
      navigator.sendBeacon(this.url + '/send' + this._query(), JSON.stringify([[++this._sendId, 0, null]]));
    }

    _finish(reason) {
      if (this.closed) return;
      this.closed = true;
      if (this._request) this._request.abort();
      this._request = null;
      for (const timer of this._timers) clearTimeout(timer);
      this._timers.clear();
      clearTimeout(this._idleTimer);
      if (typeof removeEventListener === 'function') removeEventListener('pagehide', this._onPageHide);
      this.onclose(reason);
    }
  }

  // -------------------------------------------------------------------------
  // Subscription: local view of one channel, created from our own SUBSCRIBE.
  // -------------------------------------------------------------------------

  class Subscription {
    constructor(connection, frame) {
      this._connection = connection;
      this.channelName = frame.channel_name;
      this.history = Array.isArray(frame.history) ? frame.history.slice() : [];
      this.historySize = frame.history_size;
      this.historyDuration = frame.history_duration;
      this.state = Object.assign({}, frame.state);
      this.presence = Array.isArray(frame.presence) ? frame.presence.slice() : [];
      this.initialData = frame.initial_data;
      // Position in the channel (servers that show it): what a reconnect recovers from.
      this.epoch = frame.epoch;
      this.offset = frame.offset;
      this.recovered = frame.recovered; // true / false after a recovery, else undefined
      this.canceled = false;
      // Callbacks, meant to be replaced by the application.
      this.onPublish = this.onSubscribe = this.onUnsubscribe = this.onState = noop;
    }

    /** Publish `data` (any JSON-able value) to this channel. */
    publish(data) {
      this._connection.publish(this.channelName, data);
    }

    /** Leave the channel (sends UNSUBSCRIBE unless already canceled). */
    cancel() {
      if (!this.canceled) this._connection._enqueue('unsubscribe', { channel_name: this.channelName });
    }

    _record(type, entry) {
      this.history.push([type, entry]);
      if (this.historySize && this.history.length > this.historySize) {
        this.history.splice(0, this.history.length - this.historySize);
      }
    }

    /** Channel traffic routed here by the connection. */
    _handle(name, frame) {
      switch (name) {
        case 'PUBLISH':
          if (typeof frame.offset === 'number') this.offset = frame.offset;
          this._record('PUBLISH', { user: frame.user, payload: frame.payload });
          this.onPublish(frame);
          break;
        case 'SUBSCRIBE': // someone else joined (presence)
          this.presence.push(frame.user);
          this._record('SUBSCRIBE', { user: frame.user });
          this.onSubscribe(frame);
          break;
        case 'UNSUBSCRIBE': {
          const index = this.presence.indexOf(frame.user);
          if (index !== -1) this.presence.splice(index, 1);
          this._record('UNSUBSCRIBE', { user: frame.user });
          this.onUnsubscribe(frame);
          break;
        }
        case 'STATE_UPDATE':
          for (const key of frame.deletes || []) delete this.state[key];
          Object.assign(this.state, frame.updates || {});
          this.onState(frame);
          break;
      }
    }
  }

  // -------------------------------------------------------------------------
  // Connection: RTJP framing, queueing, dispatch, fallback and reconnects.
  // -------------------------------------------------------------------------

  const CONNECTION_CALLBACKS = ['onOpen', 'onSubscribed', 'onUnsubscribed', 'onMessaged', 'onError',
    'onClose', 'onConnectionLost', 'onReconnecting'];
  const QUEUE_ORDER = ['subscribe', 'unsubscribe', 'publish', 'message'];
  const FRAME_NAMES = {
    subscribe: 'SUBSCRIBE', unsubscribe: 'UNSUBSCRIBE', publish: 'PUBLISH', message: 'MESSAGE' };
  const RECONNECT_INITIAL_DELAY = 500;
  const SUBSCRIBE_RETRY_DELAY = 1000;
  const RECONNECT_MAX_DELAY = 30000;

  class Connection {
    constructor(url, connectPayload, cookieString, options) {
      this.url = url;
      this.connectPayload = connectPayload;
      this._cookieExplicit = cookieString !== undefined && cookieString !== null;
      this.cookieString = this._cookieExplicit ? String(cookieString) : documentCookie();
      this.options = Object.assign({ reconnect: true, recover: true, resume: true, transport: 'auto' },
        options);
      this.username = null;
      this.connected = false;
      this.transportName = null;

      // Callbacks, meant to be replaced by the application.
      for (const cb of CONNECTION_CALLBACKS) this[cb] = noop;

      this._subscriptions = {}; // channel name -> Subscription
      this._previous = {};      // channel name -> Subscription lost with the last connection
      this._recovering = {};    // channel name -> id of the SUBSCRIBE that asked to recover
      this._sentSubscribes = {}; // frame id -> args of a SUBSCRIBE not answered yet
      this._queue = { subscribe: [], unsubscribe: [], publish: [], message: [] };
      this._transport = null;
      this._frameId = 0;
      this._buffer = '';
      this._disconnected = false; // disconnect() was called
      this._attempt = 0;          // reconnect attempts since the last CONNECTED
      this._reconnectTimer = null;
      this._webSocketWorked = false; // a WebSocket opened once: never fall back to CSP again
      this.resumed = false;
      this._ticket = null;        // the server's latest resume ticket, and when it lapses (ms)
      this._ticketExpires = 0;
      this._renewTimer = null;
      this._connectId = null;     // the CONNECT in flight, and whether it presented a ticket
      this._presentedTicket = false;
      this._open(false);
    }

    // --- public API --------------------------------------------------------

    subscribe(channelName) {
      // A subscribe of the application's own is answered like a first one.
      delete this._recovering[channelName];
      delete this._previous[channelName];
      this._enqueue('subscribe', { channel_name: channelName });
    }

    publish(channelName, data) {
      this._enqueue('publish', { channel_name: channelName, payload: JSON.stringify(data) });
    }

    message(name, payload) {
      this._enqueue('message', { name: name, payload: JSON.stringify(payload) });
    }

    /** Close the connection for good (no reconnect). onClose fires if we were connected. */
    disconnect() {
      this._disconnected = true;
      clearTimeout(this._reconnectTimer);
      this._dropTicket();
      const transport = this._transport;
      const wasConnected = this.connected;
      this._transport = null; // its onclose is now ignored
      this.connected = false;
      if (transport) transport.close();
      if (wasConnected) this._call('onClose');
    }

    // --- transport management ----------------------------------------------

    _open(forceCsp) {
      const mode = this.options.transport;
      const useWebSocket = !forceCsp && mode !== 'csp' && !!root.WebSocket;
      const transport = useWebSocket
        ? new WebSocketTransport(this.url.replace(/^http:/i, 'ws:').replace(/^https:/i, 'wss:') + 'ws')
        : new CspTransport(this.url + 'csp');
      this._transport = transport;
      this.transportName = transport.name;
      this._frameId = 0;
      this._sentSubscribes = {};
      this._buffer = '';
      transport.onopen = () => {
        if (transport.name === 'websocket') this._webSocketWorked = true;
        this._connectOver(transport);
      };
      transport.onmessage = (text) => this._receive(transport, text);
      transport.onerror = (error) => log.debug('transport error', error);
      transport.onclose = (reason, code) => this._transportClosed(transport, reason, code);
      log.debug('opening', transport.name, transport.url);
      transport.open();
    }

    _transportClosed(transport, reason, code) {
      if (transport !== this._transport) return; // stale or closed by disconnect()
      this._transport = null;
      const wasConnected = this.connected;
      this.connected = false;
      clearTimeout(this._renewTimer);
      log.debug('transport closed', transport.name, reason, code);

      // WebSocket never opened: fall back to CSP, as the original client does - unless a
      // WebSocket worked before (the server is restarting: wait for it rather than poll).
      if (transport.name === 'websocket' && !transport.opened && this.options.transport === 'auto'
          && !this._webSocketWorked) {
        log.info('WebSocket failed, falling back to CSP');
        return this._open(true);
      }
      // The server ended it on purpose (1000: the web app disconnected the user; 1008: a
      // policy, e.g. the client fell behind or was refused too often): no reconnect.
      const deliberate = code === 1000 || code === 1008;
      if (deliberate) this._dropTicket(); // the web app ended the session: its ticket with it
      // 1009: a message was far over the server's --max-message-size (one somewhat over it is
      // answered with an ERROR instead). Say so: the page would otherwise just reconnect.
      if (code === 1009) this._call('onError', { msg: reason || 'Message too large' });
      const again = this.options.reconnect && !this._disconnected && !deliberate;
      if (again) this._rememberSubscriptions();
      if (wasConnected) {
        if (again) {
          this._call('onConnectionLost', reason);
        } else {
          // Like the original: these two reasons are "lost", anything else is a close.
          const lost = reason === 'ServerUnreachable' || reason === 'ConnectionTimeout';
          if (lost) this._call('onConnectionLost', reason);
          else this._call('onClose');
        }
      }
      if (again) this._scheduleReconnect();
    }

    /** Queue SUBSCRIBE for every live channel so that a reconnect restores them; where the
     *  server showed a position, the SUBSCRIBE asks to recover from it. */
    _rememberSubscriptions() {
      // Channels still waiting for the answer to a recovery count too, with their old position.
      for (const c of Object.keys(this._recovering)) {
        if (!this._subscriptions[c] && this._previous[c]) this._subscriptions[c] = this._previous[c];
      }
      this._recovering = {};
      // SUBSCRIBEs sent but not answered when the connection went are sent again too.
      const unanswered = Object.values(this._sentSubscribes)
        .filter((args) => !this._subscriptions[args.channel_name] && !args.recover)
        .map((args) => args.channel_name);
      this._sentSubscribes = {};
      const channels = Object.keys(this._subscriptions).filter((c) => !this._subscriptions[c].canceled);
      const resubscribe = channels.map((c) => {
        const sub = this._subscriptions[c];
        const args = { channel_name: c };
        if (this.options.recover && typeof sub.epoch === 'string' && typeof sub.offset === 'number') {
          args.recover = { epoch: sub.epoch, offset: sub.offset };
          this._previous[c] = sub;
        }
        return args;
      });
      this._subscriptions = {};
      const pending = this._queue.subscribe.filter((args) => channels.indexOf(args.channel_name) === -1
        && unanswered.indexOf(args.channel_name) === -1);
      this._queue.subscribe = resubscribe
        .concat(unanswered.filter((c) => channels.indexOf(c) === -1).map((c) => ({ channel_name: c })))
        .concat(pending);
    }

    _scheduleReconnect() {
      this._attempt += 1;
      const base = Math.min(RECONNECT_MAX_DELAY, RECONNECT_INITIAL_DELAY * Math.pow(2, this._attempt - 1));
      const delay = Math.round(Math.min(RECONNECT_MAX_DELAY, base * (0.8 + Math.random() * 0.4)));
      this._call('onReconnecting', this._attempt, delay);
      if (this._disconnected) return; // disconnect() called from the callback
      clearTimeout(this._reconnectTimer);
      this._reconnectTimer = setTimeout(() => {
        this._reconnectTimer = null;
        if (!this._disconnected && !this._transport) this._open(false);
      }, delay);
    }

    // --- outgoing frames -----------------------------------------------------

    _sendFrame(name, args) {
      this._frameId += 1;
      if (name === 'SUBSCRIBE') this._sentSubscribes[this._frameId] = args;
      this._transport.send(JSON.stringify([this._frameId, name, args]) + '\r\n');
      return this._frameId;
    }

    /** A SUBSCRIBE the server refused as too fast (a reconnect re-subscribing many channels at
     *  once), or too busy to ask the web app (`retryAfter` seconds), is sent again after a
     *  pause, instead of being lost. */
    _retrySubscribe(args, retryAfter) {
      const delay = Math.round((retryAfter > 0 ? retryAfter * 1000 : SUBSCRIBE_RETRY_DELAY) * (1 + Math.random()));
      log.info('subscribing too fast: retrying', args.channel_name, 'in', delay, 'ms');
      setTimeout(() => {
        if (this._disconnected || this._subscriptions[args.channel_name]) return;
        this._enqueue('subscribe', args);
      }, delay);
    }

    /** CONNECT again on the same transport after `seconds` (the server's retry hint), plus up to
     *  as much again at random. */
    _retryConnect(seconds) {
      const transport = this._transport;
      const delay = Math.round(seconds * 1000 * (1 + Math.random()));
      log.info('server busy: connecting again in', delay, 'ms');
      setTimeout(() => {
        if (transport === this._transport && !this._disconnected && !this.connected) this._connectOver(transport);
      }, delay);
    }

    /** CONNECT on a transport that just opened: with `options.getPayload`, its answer (awaited)
     *  is the payload, asked anew before every connect and reconnect, so that a short-lived
     *  token is fresh each time. If it fails, the page hears it (onError) and the connection
     *  tries again later, as after any loss. */
    async _connectOver(transport) {
      if (typeof this.options.getPayload === 'function' && !this._usableTicket()) {
        let payload;
        try {
          payload = await this.options.getPayload();
        } catch (e) {
          if (transport !== this._transport) return;
          this._call('onError', { id: null, msg: 'getPayload failed: ' + ((e && e.message) || e) });
          transport.close();
          return;
        }
        if (transport !== this._transport) return; // closed while we waited
        this.connectPayload = payload;
      }
      this._sendConnect();
    }

    _sendConnect() {
      if (!this._cookieExplicit) this.cookieString = documentCookie();
      const args = { cookie_string: this.cookieString };
      if (this.connectPayload !== undefined) args.payload = JSON.stringify(this.connectPayload);
      if (this.options.recover) args.recovery = true; // show channel positions
      const ticket = this._usableTicket();
      if (this.options.resume) args.resume = ticket || true;
      this._presentedTicket = !!ticket;
      this._recovering = {};
      this._connectId = this._sendFrame('CONNECT', args);
    }

    // --- resume tickets --------------------------------------------------------

    /** The ticket to present, if one is held and has not lapsed (with a margin for clocks). */
    _usableTicket() {
      return this._ticket && Date.now() < this._ticketExpires - 1000 ? this._ticket : null;
    }

    /** Keep a ticket from CONNECTED or RESUME, and renew it halfway through its life. */
    _keepTicket(args) {
      clearTimeout(this._renewTimer);
      if (typeof args.resume !== 'string' || !(args.resume_ttl > 0)) return this._dropTicket();
      this._ticket = args.resume;
      this._ticketExpires = Date.now() + args.resume_ttl * 1000;
      const transport = this._transport;
      this._renewTimer = setTimeout(() => {
        if (this.connected && transport === this._transport) this._sendFrame('RESUME', {});
      }, args.resume_ttl * 500);
    }

    _dropTicket() {
      clearTimeout(this._renewTimer);
      this._ticket = null;
      this._ticketExpires = 0;
    }

    /** Send now if connected, else keep for the flush after CONNECTED. */
    _enqueue(kind, args) {
      if (this.connected && this._transport) this._sendFrame(FRAME_NAMES[kind], args);
      else this._queue[kind].push(args);
    }

    _flushQueues() {
      for (const kind of QUEUE_ORDER) {
        const items = this._queue[kind];
        this._queue[kind] = [];
        for (const args of items) {
          const id = this._sendFrame(FRAME_NAMES[kind], args);
          if (args.recover) this._recovering[args.channel_name] = id;
        }
      }
    }

    // --- incoming frames -----------------------------------------------------

    /** Buffer transport text and dispatch every complete "\r\n"-terminated frame. */
    _receive(transport, text) {
      if (transport !== this._transport) return;
      this._buffer += text;
      let end;
      while ((end = this._buffer.indexOf('\r\n')) !== -1) {
        const line = this._buffer.slice(0, end);
        this._buffer = this._buffer.slice(end + 2);
        if (!line.trim()) continue;
        let frame = null;
        try { frame = JSON.parse(line); } catch (e) { /* reported below */ }
        if (!Array.isArray(frame) || typeof frame[1] !== 'string') {
          log.warn('ignoring malformed frame', line);
          continue;
        }
        log.debug('<-', frame);
        try {
          this._dispatch(frame[1], frame[2] || {});
        } catch (e) { // usually an exception in an application callback
          log.error('error while handling', frame[1], e);
        }
        if (transport !== this._transport) return; // disconnect() from a callback
      }
    }

    _dispatch(name, args) {
      const sub = this._subscriptions[args.channel_name];
      switch (name) {
        case 'CONNECTED':
          this.connected = true;
          this.username = args.name;
          this.resumed = args.resumed === true;
          this._attempt = 0;
          this._connectId = null;
          if (this.options.resume) this._keepTicket(args);
          this._flushQueues();
          this._call('onOpen', args);
          break;
        case 'SUBSCRIBE':
          if (args.user === this.username) {
            const channel = args.channel_name;
            for (const id of Object.keys(this._sentSubscribes)) {
              if (this._sentSubscribes[id].channel_name === channel) delete this._sentSubscribes[id];
            }
            // Until the answer to our recover (the frame with `recovered`), the channel stays
            // unsubscribed here: a replayed own SUBSCRIBE for a new tab and the publications
            // after it are ignored, since the answer is followed by every one of them.
            if (channel in this._recovering && args.recovered === undefined && args.epoch !== undefined) break;
            delete this._recovering[channel];
            const before = this._previous[channel];
            delete this._previous[channel];
            const subscription = new Subscription(this, args);
            if (args.recovered === true && before) subscription.history = before.history;
            this._subscriptions[channel] = subscription;
            this._call('onSubscribed', channel, subscription, args);
          } else if (sub) {
            sub._handle(name, args);
          }
          break;
        case 'UNSUBSCRIBE':
          if (!sub) {
            // Left (or the channel went) before the answer to a recovery: none will come.
            if (args.user === this.username) {
              delete this._recovering[args.channel_name];
              delete this._previous[args.channel_name];
            }
            break;
          }
          if (args.user === this.username) {
            // Only our own unsubscribe ends the subscription.
            sub.canceled = true;
            delete this._subscriptions[args.channel_name];
          }
          sub._handle(name, args);
          if (args.user === this.username) this._call('onUnsubscribed', sub, args);
          break;
        case 'PUBLISH':
        case 'STATE_UPDATE':
          if (sub) sub._handle(name, args);
          break;
        case 'MESSAGE':
          this._call('onMessaged', args);
          break;
        case 'RESUME':
          if (this.options.resume) this._keepTicket(args);
          break;
        case 'ERROR': {
          if (args.id !== null && args.id === this._connectId && args.retry_after > 0) {
            // The server was too busy to ask the web app (a reconnect storm): come back when it
            // says, with jitter so that the crowd does not return in step.
            this._connectId = null;
            this._retryConnect(args.retry_after);
            break;
          }
          if (args.id !== null && args.id === this._connectId && this._presentedTicket) {
            // The server did not take the ticket and the web app refused the CONNECT without a
            // fresh payload: forget the ticket and connect as the first time.
            this._connectId = null;
            this._dropTicket();
            this._connectOver(this._transport);
            break;
          }
          for (const c of Object.keys(this._recovering)) {
            if (this._recovering[c] === args.id) delete this._recovering[c];
          }
          const refused = this._sentSubscribes[args.id];
          delete this._sentSubscribes[args.id];
          if (refused && (/^Subscribing too fast/.test(args.msg || '') || args.retry_after > 0)) {
            this._retrySubscribe(refused, args.retry_after);
            break;
          }
          this._call('onError', args);
          break;
        }
        case 'SET_COOKIE':
          if (typeof document !== 'undefined') document.cookie = args.cookie;
          break;
        default:
          log.debug('ignoring frame', name); // e.g. CHANNEL_INIT from old servers
      }
    }

    /** Invoke an application callback; its exceptions are logged, not propagated. */
    _call(callbackName, ...args) {
      try { this[callbackName](...args); } catch (e) { log.error('exception in ' + callbackName, e); }
    }
  }

  // -------------------------------------------------------------------------
  // Public entry point.
  // -------------------------------------------------------------------------

  const hookbox = {
    version: '0.3.4a1',
    logging: logging,

    /**
     * connect(url, connectPayload?, cookieString?, options?) -> Connection
     * url: server base URL ("http://host:8001"); connectPayload: any JSON-able value for the
     * connect webhook; cookieString: defaults to document.cookie; options: see file header.
     */
    connect(url, connectPayload, cookieString, options) {
      const base = String(url).endsWith('/') ? String(url) : url + '/';
      return new Connection(base, connectPayload, cookieString, options);
    },

    Connection: Connection,
    Subscription: Subscription,
    transports: { WebSocketTransport: WebSocketTransport, CspTransport: CspTransport },
    util: { base64UrlEncode: base64UrlEncode, base64UrlDecode: base64UrlDecode, parseCspBody: parseCspBody },
  };

  root.hookbox = hookbox;
  if (typeof module === 'object' && module && module.exports) module.exports = hookbox;
})(typeof globalThis !== 'undefined' ? globalThis : this);
