// The Express adapter end to end: the real hookbox calls a real Express app's webhooks, as a
// real WebSocket client (a browser stand-in) connects, subscribes, publishes and messages. Run
// for both body formats and both signature schemes; with Standard Webhooks, the official
// `standardwebhooks` package checks every request hookbox signed as well.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import express from 'express';
import { once } from 'node:events';
import { createHmac } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import {
  allowConnect, allowCreateChannel, allowMessage, allowPublish, allowSubscribe, allowUnsubscribe,
  deny, pollReply, WebhookSignatureError, HookboxClient,
} from 'hookbox-sdk';
import { hookboxWebhooks } from 'hookbox-sdk/express';
import { startHookbox } from './helpers/hookbox.mjs';
import { startApp, Recorder } from './helpers/app.mjs';
import { RtjpClient } from './helpers/rtjp.mjs';

const PLAIN = 'a plain webhook secret';
const STANDARD = `whsec_${Buffer.from('thirty-two bytes of webhook key!').toString('base64')}`;

/** The web app's answers, the same in every configuration. */
function handlers(appUrl) { // appUrl(): where the app listens
  return {
    connect(event, req, res, { sessions }) {
      const user = sessions.get(event.cookies.sid);
      if (!user) return deny('Please log in');
      return allowConnect({ name: user, override_payload: { welcome: user }, auto_subscribe: ['announcements'] });
    },
    create_channel(event) {
      if (event.channel_name === 'feed') {
        return allowCreateChannel({
          polling: { mode: 'persistent', url: `${appUrl()}/hookbox/feed`, interval: 0.2, form: { feed: 'world', page: 1 } },
        });
      }
      return allowCreateChannel({ history_size: 5, presenceful: true });
    },
    subscribe: (event) => allowSubscribe({ initial_data: { motd: `hi ${event.user}` } }),
    unsubscribe: () => allowUnsubscribe(),
    publish(event) {
      if (!event.payload?.text) return deny('Empty message');
      return allowPublish({ override_payload: { text: event.payload.text.toUpperCase(), by: event.originator } });
    },
    message(event) {
      if (!event.recipient_exists) return deny(`No user ${event.recipient}`);
      return allowMessage({ override_payload: { ...event.payload, screened: true } });
    },
    destroy_channel: () => [true, {}],
    disconnect: () => {},
    poll: (event) => pollReply({ payload: { headline: `news for ${event.form.feed}, page ${event.form.page}` } }),
  };
}

const configurations = [
  { format: 'form', secret: PLAIN },
  { format: 'json', secret: PLAIN, isNew: true },
  { format: 'form', secret: STANDARD, isNew: true },
  { format: 'json', secret: STANDARD, isNew: true },
];

for (const { format, secret, isNew } of configurations) {
  const scheme = secret === STANDARD ? 'Standard Webhooks' : 'X-Hookbox-Signature';
  describe(`--webhook-format ${format}, ${scheme}${isNew ? ' (new in hookbox)' : ''}`, () => {
    let app;
    let hookbox;
    let alice;
    let bob;
    let bobSid;
    const official = new Recorder();

    before(async () => {
      // With Standard Webhooks, express.raw() hands the exact bytes to the official package
      // first; the adapter then verifies the same Buffer.
      const before = secret === STANDARD ? [express.raw({ type: () => true }), (req, res, next) => {
        try {
          new Webhook(secret).verify(req.body, req.headers, { jsonParse: false });
          official.push({ ok: true, id: req.headers['webhook-id'] });
        } catch (error) {
          official.push({ ok: false, error });
        }
        next();
      }] : [];
      app = await startApp({ secret, handlers: handlers(() => app.url), before });
      hookbox = await startHookbox(['--cbport', String(app.port), '-r', 'token', '-s', secret,
        ...(format === 'json' ? ['--webhook-format', 'json'] : [])]);
    });

    after(async () => {
      alice?.close();
      bob?.close();
      await hookbox?.stop();
      await app?.close();
    });

    test('connect: the handler reads the app\'s own session from the forwarded cookie', async () => {
      const sid = app.login('alice');
      alice = await RtjpClient.connect(hookbox.url, { cookie_string: `theme=dark; sid=${sid}`, payload: { room: 42 } });
      const event = await app.events.hook('connect');
      assert.match(event.conn_id, /^[0-9a-f]{32}$/);
      assert.deepEqual(event.payload, { room: 42 });
      assert.deepEqual(event.cookies, { theme: 'dark', sid });
      assert.equal(event.cookieHeader, `theme=dark; sid=${sid}`);
      assert.equal(event.realIp, '127.0.0.1');
      if (secret === STANDARD) assert.match(event.webhookId, /^msg_/);
      else assert.equal(event.webhookId, null);
      assert.deepEqual(alice.connected, { name: 'alice', payload: { welcome: 'alice' } });
      // auto_subscribe from the reply: create_channel asked, no subscribe webhook.
      assert.equal((await app.events.hook('create_channel')).channel_name, 'announcements');
      await alice.next((n, a) => n === 'SUBSCRIBE' && a.channel_name === 'announcements');

      const refused = await RtjpClient.connect(hookbox.url, { cookie_string: 'sid=forged' }).catch((e) => e);
      assert.equal(refused.msg, 'Please log in');
      assert.equal((await app.events.hook('connect')).payload, null);
      bobSid = app.login('bob');
      bob = await RtjpClient.connect(hookbox.url, { cookie_string: `sid=${bobSid}` });
    });

    test('create_channel and subscribe replies shape the channel', async () => {
      alice.send('SUBSCRIBE', { channel_name: 'room' });
      assert.equal((await app.events.hook('create_channel')).channel_name, 'room');
      const subscribe = await app.events.hook('subscribe');
      assert.deepEqual([subscribe.channel_name, subscribe.user, subscribe.realIp], ['room', 'alice', '127.0.0.1']);
      const [, own] = await alice.next((n, a) => n === 'SUBSCRIBE' && a.channel_name === 'room');
      assert.deepEqual([own.history_size, own.presence, own.initial_data], [5, ['alice'], { motd: 'hi alice' }]);
      bob.send('SUBSCRIBE', { channel_name: 'room' });
      await bob.next((n, a) => n === 'SUBSCRIBE' && a.channel_name === 'room');
    });

    test('publish: the payload decoded, overridden by the reply, or refused', async () => {
      alice.send('PUBLISH', { channel_name: 'room', payload: JSON.stringify({ text: 'héllo ☃ 😀' }) });
      const event = await app.events.hook('publish');
      assert.deepEqual([event.channel_name, event.payload, event.originator], ['room', { text: 'héllo ☃ 😀' }, 'alice']);
      const [, frame] = await bob.next('PUBLISH');
      assert.deepEqual([frame.payload, frame.user], [{ text: 'HÉLLO ☃ 😀', by: 'alice' }, 'alice']);

      const id = alice.send('PUBLISH', { channel_name: 'room', payload: JSON.stringify({ text: '' }) });
      assert.deepEqual((await alice.next('ERROR'))[1], { id, msg: 'Empty message' });
    });

    test('message: recipient_exists, and the reply screens the payload', async () => {
      alice.send('MESSAGE', { name: 'bob', payload: JSON.stringify({ text: 'psst' }) });
      const event = await app.events.hook('message');
      assert.deepEqual([event.sender, event.recipient, event.recipient_exists, event.payload],
        ['alice', 'bob', true, { text: 'psst' }]);
      const [, frame] = await bob.next('MESSAGE');
      assert.deepEqual([frame.sender, frame.payload], ['alice', { text: 'psst', screened: true }]);

      const id = alice.send('MESSAGE', { name: 'ghost', payload: '1' });
      assert.equal((await app.events.hook('message')).recipient_exists, false);
      assert.deepEqual((await alice.next('ERROR'))[1], { id, msg: 'No user ghost' });
    });

    test('poll: a channel poller\'s request, answered with pollReply', async () => {
      alice.send('SUBSCRIBE', { channel_name: 'feed' });
      const poll = await app.events.hook('poll');
      assert.deepEqual(poll.form, { feed: 'world', page: '1' });
      const [, frame] = await alice.next((n, a) => n === 'PUBLISH' && a.channel_name === 'feed');
      assert.deepEqual([frame.payload, frame.user], [{ headline: 'news for world, page 1' }, '']);
      alice.send('UNSUBSCRIBE', { channel_name: 'feed' }); // the last one out: the poller stops
      assert.equal((await app.events.hook('destroy_channel', (e) => e.channel_name === 'feed')).channel_name, 'feed');
    });

    test('unsubscribe, then a closing connection: unsubscribe, destroy_channel, disconnect', async () => {
      alice.send('UNSUBSCRIBE', { channel_name: 'room' });
      const leave = await app.events.hook('unsubscribe', (e) => e.channel_name === 'room');
      assert.equal(leave.user, 'alice');
      await alice.next((n, a) => n === 'UNSUBSCRIBE' && a.channel_name === 'room');

      const bobCookie = `sid=${bobSid}`;
      await bob.close();
      const forced = await app.events.hook('unsubscribe', (e) => e.user === 'bob' && e.channel_name === 'room');
      assert.equal(forced.channel_name, 'room');
      assert.equal(forced.cookieHeader, bobCookie, 'the closing connection\'s cookie');
      assert.equal((await app.events.hook('destroy_channel', (e) => e.channel_name === 'room')).channel_name, 'room');
      const gone = await app.events.hook('disconnect');
      assert.deepEqual([gone.name, gone.cookieHeader], ['bob', bobCookie]);
      bob = undefined;
    });

    if (secret === STANDARD) {
      test('the official standardwebhooks package verified every request hookbox signed', () => {
        assert.ok(official.all.length >= app.events.all.length, `${official.all.length} checks, ${app.events.all.length} events`);
        assert.deepEqual(official.all.filter((c) => !c.ok), []);
        assert.equal(new Set(official.all.map((c) => c.id)).size, official.all.length, 'a webhook-id per call');
        assert.deepEqual(app.refusals.all, []);
      });
    }
  });
}

describe('refusals by the adapter', () => {
  let app;
  let hookbox;
  after(async () => {
    await hookbox?.stop();
    await app?.close();
  });

  test('hookbox signing with another secret is answered 401: nobody connects', async () => {
    app = await startApp({ secret: PLAIN, handlers: { connect: () => allowConnect({ name: 'anyone' }) } });
    hookbox = await startHookbox(['--cbport', String(app.port), '-s', 'not the app\'s secret']);
    const refused = await RtjpClient.connect(hookbox.url, { cookie_string: '' }).catch((e) => e);
    assert.equal(refused.msg, 'failure: HTTP 401');
    assert.ok((await app.refusals.next()) instanceof WebhookSignatureError);
    assert.deepEqual(app.events.all, [], 'no handler ran');
  });

  test('forged, tampered and malformed requests to the app itself', async () => {
    const post = (body, headers) => fetch(`${app.url}/hookbox/connect`, { method: 'POST', body, headers });
    const body = 'action=connect&conn_id=0123456789abcdef0123456789abcdef&payload=null';
    const signature = `sha256=${createHmac('sha256', PLAIN).update(body).digest('hex')}`;
    const form = { 'Content-Type': 'application/x-www-form-urlencoded' };
    assert.equal((await post(body, form)).status, 401);
    assert.equal((await post(body + 'x', { ...form, 'X-Hookbox-Signature': signature })).status, 401);
    const signed = await post(body, { ...form, 'X-Hookbox-Signature': signature });
    assert.deepEqual([signed.status, await signed.json()], [200, [true, { name: 'anyone' }]]);
    const odd = 'action=launch';
    const oddSigned = await post(odd, { ...form, 'X-Hookbox-Signature': `sha256=${createHmac('sha256', PLAIN).update(odd).digest('hex')}` });
    assert.deepEqual([oddSigned.status, await oddSigned.text()], [400, 'Unknown webhook action "launch"']);
    assert.equal((await fetch(`${app.url}/hookbox/connect`)).status, 404, 'GET is not a webhook: next()');
  });

  test('unhandled hooks: grants denied, reports approved', async () => {
    // Only connect is handled: create_channel is refused by default.
    const sid = 'ignored';
    const alice = await RtjpClient.connect(hookbox.url, { cookie_string: `sid=${sid}` }).catch((e) => e);
    assert.equal(alice.msg, 'failure: HTTP 401', 'still the wrong secret');
    await hookbox.stop();
    hookbox = await startHookbox(['--cbport', String(app.port), '-s', PLAIN]);
    const anyone = await RtjpClient.connect(hookbox.url, { cookie_string: '' });
    const id = anyone.send('SUBSCRIBE', { channel_name: 'room' });
    assert.deepEqual((await anyone.next('ERROR'))[1], { id, msg: 'No handler for create_channel' });
    anyone.close();
  });

  test('a body parser before the adapter is reported, not silently mis-verified', async () => {
    const broken = express();
    broken.use(express.urlencoded({ extended: false }));
    broken.use('/hookbox', hookboxWebhooks({ secret: PLAIN }));
    const errors = [];
    broken.use((error, req, res, next) => { errors.push(error); res.status(500).end(); });
    const server = broken.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const res = await fetch(`http://127.0.0.1:${server.address().port}/hookbox/x`, {
        method: 'POST', body: 'action=disconnect&name=a', headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      });
      assert.equal(res.status, 500);
      assert.match(errors[0].message, /a body parser already read this request/);
    } finally {
      server.close();
    }
    assert.throws(() => hookboxWebhooks({ handlers: {} }), /secret is required/);
    assert.throws(() => hookboxWebhooks({ secret: PLAIN, handlers: { conect() {} } }), /no hook is called conect/);
  });
});

describe('the browser\'s own cookies on the WebSocket (new in hookbox)', () => {
  let app;
  let hookbox;
  after(async () => {
    await hookbox?.stop();
    await app?.close();
  });

  test('an HttpOnly session cookie of an allowed origin reaches the connect webhook', async () => {
    app = await startApp({
      secret: PLAIN,
      handlers: {
        connect: (event, req, res, { sessions }) => {
          const user = sessions.get(event.cookies.sid);
          return user ? allowConnect({ name: user }) : deny('Please log in');
        },
      },
    });
    hookbox = await startHookbox(['--cbport', String(app.port), '-s', PLAIN, '--allowed-origins', app.url]);
    const sid = app.login('carol');
    // What a browser sends for a page of the app: its Origin, and every cookie of the host
    // (HttpOnly ones too) on the upgrade request; the page's script cannot see sid.
    const carol = await RtjpClient.connect(hookbox.url, {
      cookie_string: 'theme=dark',
      headers: { Origin: app.url, Cookie: `sid=${sid}; theme=dark` },
    });
    assert.equal(carol.connected.name, 'carol');
    assert.equal((await app.events.hook('connect')).cookies.sid, sid);
    carol.close();
    // A page elsewhere does not get in at all.
    await assert.rejects(RtjpClient.connect(hookbox.url, { headers: { Origin: 'http://127.0.0.2:1', Cookie: `sid=${sid}` } }), /upgrade refused: 403/);
  });
});

test('the client and the adapter in one app: a Web API publish with send_hook', async () => {
  const app = await startApp({ secret: PLAIN, handlers: { publish: (event) => allowPublish({ override_payload: { seen: event.payload } }) } });
  const hookbox = await startHookbox(['--cbport', String(app.port), '-s', PLAIN, '-r', 'tok']);
  try {
    const client = new HookboxClient({ url: hookbox.url, token: 'tok' });
    await client.createChannel({ channel_name: 'c' });
    await client.publish({ channel_name: 'c', payload: 7, send_hook: true });
    const event = await app.events.hook('publish');
    assert.deepEqual([event.payload, event.originator, event.cookies, event.realIp], [7, undefined, {}, null]);
  } finally {
    await hookbox.stop();
    await app.close();
  }
});
