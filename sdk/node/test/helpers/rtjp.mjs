// A browser stand-in speaking RTJP over a real WebSocket: frames are `[id, "NAME", {args}]\r\n`.
import WebSocket from 'ws';

const WAIT_MS = 10_000;

export class RtjpClient {
  #ws;
  #nextId = 1;
  #unread = [];
  #waiters = [];
  #buffer = '';

  /** Opens `<hookbox>/ws`; `headers` go on the upgrade request (as a browser's Origin, Cookie). */
  static async open(hookboxUrl, { headers = {} } = {}) {
    const ws = new WebSocket(hookboxUrl.replace(/^http/, 'ws') + '/ws', { headers });
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
      ws.once('unexpected-response', (_, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
    });
    return new RtjpClient(ws);
  }

  /** Opens a socket and sends CONNECT; resolves with the client and its CONNECTED frame's args. */
  static async connect(hookboxUrl, { cookie_string = '', payload, headers } = {}) {
    const client = await RtjpClient.open(hookboxUrl, { headers });
    const args = { cookie_string };
    if (payload !== undefined) args.payload = JSON.stringify(payload);
    client.send('CONNECT', args);
    const [name, reply] = await client.next((n) => n === 'CONNECTED' || n === 'ERROR');
    if (name === 'ERROR') {
      client.close();
      throw Object.assign(new Error(`CONNECT refused: ${reply.msg}`), { msg: reply.msg });
    }
    client.connected = reply;
    return client;
  }

  constructor(ws) {
    this.#ws = ws;
    this.closed = new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: String(reason) })));
    ws.on('message', (data) => {
      this.#buffer += data.toString();
      const lines = this.#buffer.split('\r\n');
      this.#buffer = lines.pop();
      for (const line of lines.filter(Boolean)) {
        const [, name, args] = JSON.parse(line);
        this.#unread.push([name, args]);
      }
      this.#wake();
    });
  }

  /** Sends a frame; returns its id. */
  send(name, args = {}) {
    const id = this.#nextId++;
    this.#ws.send(JSON.stringify([id, name, args]) + '\r\n');
    return id;
  }

  /**
   * The first unread frame for which `match(name, args)` holds, waiting for it if needed; the
   * frames before it stay unread. `match` may be a frame name.
   */
  next(match, what = String(match)) {
    const test = typeof match === 'string' ? (name) => name === match : match;
    return new Promise((resolve, reject) => {
      const waiter = { test, resolve };
      waiter.timer = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
        reject(new Error(`no ${what} frame within ${WAIT_MS} ms; unread: ${JSON.stringify(this.#unread)}`));
      }, WAIT_MS);
      this.#waiters.push(waiter);
      this.#wake();
    });
  }

  /** Every unread frame, taken. */
  drain() {
    return this.#unread.splice(0);
  }

  #wake() {
    for (const waiter of [...this.#waiters]) {
      const index = this.#unread.findIndex(([name, args]) => waiter.test(name, args));
      if (index < 0) continue;
      const [frame] = this.#unread.splice(index, 1);
      clearTimeout(waiter.timer);
      this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
      waiter.resolve(frame);
    }
  }

  close() {
    this.#ws.close();
    return this.closed;
  }
}
