// The hand-written declarations as a TypeScript user meets them: what they accept, what they
// refuse (each @ts-expect-error must be an error), and what they narrow to. Compiled by
// types.test.mjs; never run.
import express from 'express';
import {
  HookboxClient, HookboxRefusedError, HookboxThrottledError, HookboxTransportError,
  allow, allowConnect, allowCreateChannel, allowMessage, allowPublish, allowSubscribe, deny,
  pollReply, verifyWebhook, type ChannelInfo, type Json, type Reply, type WebhookEvent,
} from 'hookbox-sdk';
import { hookboxWebhooks, DEFAULT_REPLIES } from 'hookbox-sdk/express';

export async function client(): Promise<void> {
  const hookbox = new HookboxClient({ url: 'http://127.0.0.1:8001', token: 't', retries: 0 });
  await hookbox.publish({ channel_name: 'news', payload: { text: 'hi', n: [1, null] }, send_hook: true });
  await hookbox.publishMulti({ channel_names: ['a', 'b'], payload: 1, idempotency_key: 'k' });
  await hookbox.createChannel({ channel_name: 'c', history_size: 5, polling: { mode: 'simple', url: 'http://x/' } });
  const info: ChannelInfo = await hookbox.getChannelInfo({ channel_name: 'c' });
  const size: number = info.options.history_size;
  const subscribers: string[] = info.subscribers;
  const closed: number = (await hookbox.disconnect({ name: 'alice' })).connections;
  const { channels, connections } = await hookbox.getServerInfo({ timeoutMs: 500 });
  const reflective: boolean = (await hookbox.getUserInfo({ user_name: 'alice' })).options.reflective;
  await hookbox.setConfig({ cbport: 8000, webhook_secret: null });
  await hookbox.stateSetKey({ channel_name: 'c', key: 'k', val: [1, 'two'] });
  void [size, subscribers, closed, channels, connections, reflective];

  // @ts-expect-error channel_name is required
  await hookbox.publish({ payload: 1 });
  // @ts-expect-error not a channel option
  await hookbox.createChannel({ channel_name: 'c', colour: 'red' });
  // @ts-expect-error history_size is a number
  await hookbox.setChannelOptions({ channel_name: 'c', history_size: '5' });
  // @ts-expect-error a payload is JSON
  await hookbox.publish({ channel_name: 'c', payload: () => 1 });

  try {
    await hookbox.getServerInfo();
  } catch (error) {
    if (error instanceof HookboxRefusedError) { const msg: string = error.msg; void msg; }
    if (error instanceof HookboxThrottledError) { const s: number | undefined = error.retryAfterSeconds; void s; }
    if (error instanceof HookboxTransportError) { const s: number | undefined = error.status; void s; }
  }
}

export function events(body: Buffer, headers: Record<string, string>): Reply<object> {
  const event: WebhookEvent = verifyWebhook({ body, headers, secret: 's' });
  const ip: string | null = event.realIp;
  const sid: string | undefined = event.cookies.sid;
  void [ip, sid];
  switch (event.action) {
    case 'connect': {
      const id: string = event.conn_id;
      const payload: Json = event.payload;
      void [id, payload];
      return allowConnect({ name: 'alice', auto_subscribe: ['news'], reflective: false });
    }
    case 'message': {
      const exists: boolean = event.recipient_exists;
      void exists;
      return allowMessage({ override_recipient_name: event.recipient });
    }
    case 'publish': {
      const originator: string | undefined = event.originator;
      void originator;
      // @ts-expect-error publish events have no conn_id
      void event.conn_id;
      return allowPublish({ override_payload: null, only_to_sender: true });
    }
    case 'poll':
      return pollReply({ payload: event.form.feed ?? null, history_size: 1 });
    case 'create_channel':
      return allowCreateChannel({ presenceful: true });
    case 'subscribe':
      return allowSubscribe({ initial_data: { motd: 'hi' } });
    default:
      return event.action === 'disconnect' ? allow() : deny({ code: 7 });
  }
}

export function replies(): void {
  // @ts-expect-error name is required
  allowConnect({});
  // @ts-expect-error create_channel takes channel options only
  allowCreateChannel({ error: 'no' });
  // @ts-expect-error not a publish option
  allowPublish({ initial_data: 1 });
  const reply: Reply<object> = DEFAULT_REPLIES.connect;
  void reply;
}

export function adapter(): void {
  const app = express();
  app.use('/hookbox', hookboxWebhooks({ secret: 's', handlers: { connect: () => allowConnect({ name: 'a' }) } }));
  // Express's own request type in the handlers.
  app.use('/typed', hookboxWebhooks<express.Request, express.Response>({
    secret: 's',
    handlers: {
      connect: (event, req, res) => {
        res.cookie('seen', '1');
        return req.ip && event.cookies.sid ? allowConnect({ name: event.cookies.sid }) : deny();
      },
      publish: async (event) => (event.payload ? allowPublish() : deny('Empty')),
      disconnect: () => {},
      poll: (event) => pollReply({ payload: event.form }),
    },
    onError: (error, req) => console.warn(error.message, req.ip),
  }));
  // @ts-expect-error no hook is called conect
  hookboxWebhooks({ secret: 's', handlers: { conect: () => allow() } });
  // @ts-expect-error a handler returns a reply
  hookboxWebhooks({ secret: 's', handlers: { publish: () => 'yes' } });
}
