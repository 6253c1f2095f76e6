// A real Express app answering hookbox's webhooks through hookbox-sdk/express, with a session
// store of its own (session id → user name) that the connect handler reads from the forwarded
// Cookie header. Every event its handlers see is recorded.
import express from 'express';
import { once } from 'node:events';
import { randomUUID } from 'node:crypto';
import { hookboxWebhooks } from 'hookbox-sdk/express';

export async function startApp({ secret, handlers = {}, before = [] }) {
  const sessions = new Map();
  const events = new Recorder();
  const refusals = new Recorder();
  const recorded = Object.fromEntries(Object.entries(handlers).map(([hook, handler]) => [
    hook,
    (event, req, res) => {
      events.push(event);
      return handler(event, req, res, { sessions });
    },
  ]));
  const app = express();
  app.use('/hookbox', ...before, hookboxWebhooks({
    secret,
    handlers: recorded,
    onError: (error) => refusals.push(error),
  }));
  const server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = server.address().port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    events,
    refusals,
    /** The app's own login: a new session for `user`; returns its id (the `sid` cookie). */
    login(user) {
      const sid = randomUUID();
      sessions.set(sid, user);
      return sid;
    },
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); }),
  };
}

/** A list that can be awaited: `next(pred)` resolves with the first unclaimed item matching. */
export class Recorder {
  all = [];
  #claimed = new Set();
  #waiters = [];

  push(item) {
    this.all.push(item);
    for (const waiter of [...this.#waiters]) this.#offer(waiter);
  }

  next(pred = () => true, what = 'event') {
    return new Promise((resolve, reject) => {
      const waiter = { pred, resolve };
      waiter.timer = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
        reject(new Error(`no ${what} within 10 s`));
      }, 10_000);
      this.#waiters.push(waiter);
      this.#offer(waiter);
    });
  }

  /** The next unclaimed event of hook `action` (and matching `pred`). */
  hook(action, pred = () => true) {
    return this.next((e) => e.action === action && pred(e), `${action} event`);
  }

  #offer(waiter) {
    const item = this.all.find((x) => !this.#claimed.has(x) && waiter.pred(x));
    if (item === undefined || !this.#waiters.includes(waiter)) return;
    this.#claimed.add(item);
    clearTimeout(waiter.timer);
    this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
    waiter.resolve(item);
  }
}
