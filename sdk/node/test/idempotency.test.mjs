// Retries with idempotency keys against the real hookbox, through a proxy that loses answers,
// fails with 502 or resets connections: a publish, publish_multi or message is delivered once
// however often it is tried, and nothing else is retried.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { HookboxClient, HookboxTransportError, allowConnect, allowCreateChannel } from 'hookbox-sdk';
import { startHookbox } from './helpers/hookbox.mjs';
import { startApp } from './helpers/app.mjs';
import { startFaultyProxy } from './helpers/proxy.mjs';
import { RtjpClient } from './helpers/rtjp.mjs';

const TOKEN = 'api-token';
const SECRET = 'webhook-secret';
let app;
let hookbox;
let proxy;
let client;
let alice;
let bob;

before(async () => {
  app = await startApp({
    secret: SECRET,
    handlers: {
      connect: (event, req, res, { sessions }) => allowConnect({ name: sessions.get(event.cookies.sid) }),
      create_channel: () => allowCreateChannel({ moderated: false }),
    },
  });
  hookbox = await startHookbox(['--cbport', String(app.port), '-r', TOKEN, '-s', SECRET]);
  proxy = await startFaultyProxy(hookbox.url);
  client = new HookboxClient({ url: proxy.url, token: TOKEN, timeoutMs: 1000, retries: 2, retryDelayMs: 20 });
  alice = await RtjpClient.connect(hookbox.url, { cookie_string: `sid=${app.login('alice')}` });
  bob = await RtjpClient.connect(hookbox.url, { cookie_string: `sid=${app.login('bob')}` });
  for (const channel of ['news', 'sport']) {
    alice.send('SUBSCRIBE', { channel_name: channel });
    await alice.next((n, a) => n === 'SUBSCRIBE' && a.channel_name === channel);
  }
});

after(async () => {
  alice?.close();
  bob?.close();
  await proxy?.close();
  await hookbox?.stop();
  await app?.close();
});

/**
 * The frames `who` received up to a marker published after everything else: channel frames
 * arrive in order, so any duplicate comes before it.
 */
async function receivedUntilMarker(who, send) {
  const marker = `marker-${Math.random()}`;
  await send(marker);
  await who.next((n, a) => a.payload === marker, 'marker');
  return who.drain();
}

const payloads = (frames, name) => frames.filter(([n]) => n === name).map(([, a]) => a.payload);

test('the same key twice is applied once: publish, publishMulti, message', async () => {
  const direct = new HookboxClient({ url: hookbox.url, token: TOKEN, retries: 0 });
  await direct.publish({ channel_name: 'news', payload: 'once', idempotency_key: 'k-publish' });
  await direct.publish({ channel_name: 'news', payload: 'once', idempotency_key: 'k-publish' });
  await direct.publishMulti({ channel_names: ['news', 'sport'], payload: 'multi', idempotency_key: 'k-multi' });
  await direct.publishMulti({ channel_names: ['news', 'sport'], payload: 'multi', idempotency_key: 'k-multi' });
  const frames = await receivedUntilMarker(alice, (m) => direct.publish({ channel_name: 'news', payload: m }));
  assert.deepEqual(payloads(frames, 'PUBLISH'), ['once', 'multi', 'multi']);

  await direct.message({ sender_name: 'alice', recipient_name: 'bob', payload: 'psst', idempotency_key: 'k-message' });
  await direct.message({ sender_name: 'alice', recipient_name: 'bob', payload: 'psst', idempotency_key: 'k-message' });
  const messages = await receivedUntilMarker(bob, (m) => direct.message({ sender_name: 'alice', recipient_name: 'bob', payload: m }));
  assert.deepEqual(payloads(messages, 'MESSAGE'), ['psst']);
});

test('an answer lost on the way back: the retry carries the same key, delivered once', async () => {
  proxy.fail('lost-answer');
  const before = proxy.requests.length;
  assert.deepEqual(await client.publish({ channel_name: 'news', payload: 'lost answer' }), {});
  const tries = proxy.requests.slice(before);
  assert.equal(tries.length, 2);
  assert.equal(tries[0].form.idempotency_key, tries[1].form.idempotency_key);
  const frames = await receivedUntilMarker(alice, (m) => client.publish({ channel_name: 'news', payload: m }));
  assert.deepEqual(payloads(frames, 'PUBLISH'), ['lost answer']);

  proxy.fail('lost-answer', 'lost-answer');
  await client.message({ sender_name: 'alice', recipient_name: 'bob', payload: 'lost twice' });
  const messages = await receivedUntilMarker(bob, (m) => client.message({ sender_name: 'alice', recipient_name: 'bob', payload: m }));
  assert.deepEqual(payloads(messages, 'MESSAGE'), ['lost twice']);
});

test('a 502 or a reset connection is retried', async () => {
  proxy.fail('bad-gateway', 'reset');
  await client.publishMulti({ channel_names: ['sport'], payload: 'third time' });
  const frames = await receivedUntilMarker(alice, (m) => client.publish({ channel_name: 'sport', payload: m }));
  assert.deepEqual(payloads(frames, 'PUBLISH'), ['third time']);
});

test('only publish, publishMulti and message are retried; the rest fail at once', async () => {
  proxy.fail('bad-gateway');
  const before = proxy.requests.length;
  const error = await client.createChannel({ channel_name: 'weather' }).catch((e) => e);
  assert.ok(error instanceof HookboxTransportError, String(error));
  assert.equal(error.status, 502);
  assert.equal(proxy.requests.length - before, 1);
  assert.equal(proxy.requests.at(-1).form.idempotency_key, undefined);
  // Out of retries: the last error is the caller's.
  proxy.fail('bad-gateway', 'bad-gateway', 'bad-gateway');
  assert.equal((await client.publish({ channel_name: 'news', payload: 'never' }).catch((e) => e)).status, 502);
  // retries: 0 sends no key unless given one.
  const once = new HookboxClient({ url: proxy.url, token: TOKEN, retries: 0 });
  await once.publish({ channel_name: 'news', payload: 'plain' });
  assert.equal(proxy.requests.at(-1).form.idempotency_key, undefined);
  await alice.next((n, a) => a.payload === 'plain');
});
