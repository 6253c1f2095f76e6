// HookboxClient against the real hookbox binary: every Web API method, what browsers then
// receive, the server's error texts, throttling, timeouts and transport errors.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import {
  HookboxClient, HookboxError, HookboxRefusedError, HookboxThrottledError, HookboxTimeoutError,
  HookboxTransportError, allow, allowConnect, allowCreateChannel, allowPublish, deny,
} from 'hookbox-sdk';
import { startHookbox } from './helpers/hookbox.mjs';
import { startApp } from './helpers/app.mjs';
import { RtjpClient } from './helpers/rtjp.mjs';

const TOKEN = 'api-token';
const SECRET = 'webhook-secret';
let app;
let hookbox;
let client;
let alice;
let bob;

before(async () => {
  app = await startApp({
    secret: SECRET,
    handlers: {
      connect: (event, req, res, { sessions }) => {
        const user = sessions.get(event.cookies.sid);
        return user ? allowConnect({ name: user }) : deny('Please log in');
      },
      create_channel: () => allowCreateChannel({ moderated: false, history_size: 5, presenceful: true }),
      publish: (event) => (event.payload?.text
        ? allowPublish({ override_payload: { ...event.payload, checked: true } })
        : deny('Empty message')),
      message: () => allow(),
      disconnect: () => {}, // its reply is ignored: a handler may return nothing
    },
  });
  hookbox = await startHookbox(['--cbport', String(app.port), '-r', TOKEN, '-s', SECRET]);
  client = new HookboxClient({ url: hookbox.url, token: TOKEN });
  alice = await RtjpClient.connect(hookbox.url, { cookie_string: `sid=${app.login('alice')}` });
  bob = await RtjpClient.connect(hookbox.url, { cookie_string: `sid=${app.login('bob')}` });
});

after(async () => {
  alice?.close();
  bob?.close();
  await hookbox?.stop();
  await app?.close();
});

/** Resolves with the server's refusal of `promise`, checking its class and text. */
async function refusal(promise, msg) {
  const error = await promise.then(() => assert.fail('expected a refusal'), (e) => e);
  assert.ok(error instanceof HookboxRefusedError && error instanceof HookboxError, String(error));
  assert.equal(error.msg, msg);
  return error;
}

test('getServerInfo lists the connections', async () => {
  const info = await client.getServerInfo();
  assert.deepEqual(info.channels, []);
  assert.equal(info.connections.length, 2);
  assert.match(info.connections[0], /^[0-9a-f]{32}$/);
});

test('createChannel, getChannelInfo, setChannelOptions', async () => {
  assert.deepEqual(await client.createChannel({ channel_name: 'scores', history_size: 10, presenceful: true, state: { period: 1 } }), {});
  let info = await client.getChannelInfo({ channel_name: 'scores' });
  assert.equal(info.name, 'scores');
  assert.deepEqual([info.options.history_size, info.options.presenceful, info.options.state], [10, true, { period: 1 }]);
  assert.deepEqual(info.subscribers, []);
  await client.setChannelOptions({ channel_name: 'scores', history_size: 3, reflective: false });
  info = await client.getChannelInfo({ channel_name: 'scores' });
  assert.deepEqual([info.options.history_size, info.options.reflective], [3, false]);

  await refusal(client.createChannel({ channel_name: 'scores' }), 'Channel scores already exists');
  await refusal(client.createChannel({ channel_name: 'odd', history_size: 'ten' }), 'Invalid type for history_size (should be int)');
  await refusal(client.call('create_channel', { channel_name: 'odd', colour: 'red' }), 'Invalid keyword argument colour');
  await refusal(client.getChannelInfo({ channel_name: 'nope' }), "Channel nope doesn't exist");
  await refusal(client.setChannelOptions({ channel_name: 'nope', history_size: 1 }), "Channel nope doesn't exist");
});

test('subscribe and unsubscribe a connected user', async () => {
  await client.subscribe({ channel_name: 'scores', name: 'alice' });
  const [, own] = await alice.next((n, a) => n === 'SUBSCRIBE' && a.channel_name === 'scores');
  assert.deepEqual([own.user, own.history_size, own.state], ['alice', 3, { period: 1 }]);
  // An unknown channel is created through the create_channel webhook.
  await client.subscribe({ channel_name: 'lobby', name: 'bob' });
  await bob.next((n, a) => n === 'SUBSCRIBE' && a.channel_name === 'lobby');
  assert.equal((await app.events.hook('create_channel')).channel_name, 'lobby');
  await client.subscribe({ channel_name: 'lobby', name: 'alice' });
  await alice.next((n, a) => n === 'SUBSCRIBE' && a.channel_name === 'lobby' && a.user === 'alice');

  await client.unsubscribe({ channel_name: 'lobby', name: 'alice' });
  await alice.next((n, a) => n === 'UNSUBSCRIBE' && a.channel_name === 'lobby' && a.user === 'alice');
  await refusal(client.subscribe({ channel_name: 'scores', name: 'carol' }), "User carol doesn't exist");
  await refusal(client.subscribe({ channel_name: 'scores' }), 'Missing name');
  await refusal(client.unsubscribe({ channel_name: 'nope', name: 'alice' }), "Channel nope doesn't exist");
});

test('publish and publishMulti reach the subscribers, JSON-encoded for you', async () => {
  await client.publish({ channel_name: 'scores', payload: { home: 2, note: 'héllo ☃' }, originator: 'desk' });
  const [, frame] = await alice.next('PUBLISH');
  assert.deepEqual([frame.channel_name, frame.payload, frame.user], ['scores', { home: 2, note: 'héllo ☃' }, 'desk']);

  await client.publishMulti({ channel_names: ['scores', 'lobby', 'missing'], payload: [1, 2] });
  const [, toAlice] = await alice.next('PUBLISH');
  const [, toBob] = await bob.next('PUBLISH');
  assert.deepEqual([toAlice.channel_name, toAlice.payload, toAlice.user], ['scores', [1, 2], null]);
  assert.deepEqual([toBob.channel_name, toBob.payload], ['lobby', [1, 2]]);

  await refusal(client.publish({ channel_name: 'nope', payload: 1 }), "Channel nope doesn't exist");
  await refusal(client.publishMulti({ channel_names: '' }), 'Missing channel_names');
});

test('send_hook: the publish webhook decides, and its denial is the error text', async () => {
  await client.createChannel({ channel_name: 'guarded', moderated_publish: true });
  await client.subscribe({ channel_name: 'guarded', name: 'bob' });
  await bob.next((n, a) => n === 'SUBSCRIBE' && a.channel_name === 'guarded');
  await client.publish({ channel_name: 'guarded', payload: { text: 'hi' }, originator: 'desk', send_hook: true });
  const event = await app.events.hook('publish');
  assert.deepEqual([event.channel_name, event.payload, event.originator, event.cookieHeader, event.realIp],
    ['guarded', { text: 'hi' }, 'desk', '', null]);
  assert.deepEqual((await bob.next('PUBLISH'))[1].payload, { text: 'hi', checked: true });

  await refusal(client.publish({ channel_name: 'guarded', payload: { text: '' }, send_hook: true }), 'Empty message');
  // Without send_hook no webhook is asked.
  await client.publish({ channel_name: 'guarded', payload: { text: '' } });
  assert.deepEqual((await bob.next('PUBLISH'))[1].payload, { text: '' });
});

test('stateSetKey and stateDeleteKey update the subscribers', async () => {
  await client.stateSetKey({ channel_name: 'scores', key: 'period', val: 'second half' });
  let [, update] = await alice.next('STATE_UPDATE');
  assert.deepEqual([update.updates, update.deletes], [{ period: 'second half' }, []]);
  await client.stateDeleteKey({ channel_name: 'scores', key: 'period' });
  [, update] = await alice.next('STATE_UPDATE');
  assert.deepEqual([update.updates, update.deletes], [{}, ['period']]);
  assert.deepEqual((await client.getChannelInfo({ channel_name: 'scores' })).options.state, {});
  await refusal(client.stateSetKey({ channel_name: 'scores', key: 'k' }), "Missing 'val' argument");
  await refusal(client.stateDeleteKey({ channel_name: 'scores' }), 'Missing key');
});

test('message, setUserOptions, getUserInfo', async () => {
  await client.message({ sender_name: 'alice', recipient_name: 'bob', payload: { text: 'psst' } });
  const [, frame] = await bob.next('MESSAGE');
  assert.deepEqual([frame.sender, frame.recipient, frame.payload], ['alice', 'bob', { text: 'psst' }]);
  await refusal(client.message({ sender_name: 'alice', recipient_name: 'nobody', payload: 1 }), 'Invalid user name');
  await refusal(client.message({ sender_name: 'carol', recipient_name: 'bob' }), "User carol doesn't exist");

  await client.setUserOptions({ user_name: 'alice', reflective: false, auto_subscribe: ['news'] });
  const info = await client.getUserInfo({ user_name: 'alice' });
  assert.equal(info.name, 'alice');
  assert.deepEqual(info.channels, ['scores']);
  assert.equal(info.connections.length, 1);
  assert.deepEqual([info.options.reflective, info.options.auto_subscribe], [false, ['news']]);
  await refusal(client.setUserOptions({ user_name: 'alice', colour: 'red' }), 'Invalid keyword argument colour');
  await refusal(client.getUserInfo({ user_name: 'carol' }), "User carol doesn't exist");
});

test('setConfig', async () => {
  assert.deepEqual(await client.setConfig({ cbsendhookboxversion: true, webhook_secret: SECRET }), {});
  await refusal(client.setConfig({ cbhost: 'elsewhere.example' }),
    'set_config may not change where webhooks go (cbhost): start hookbox with --allow-set-config-webhooks');
  await refusal(client.setConfig({ cbhttps: 'yes' }), 'Invalid type for cbhttps (should be bool)');
  await refusal(client.call('set_config', { colour: 'red' }), 'Invalid config key colour');
});

test('disconnect and destroyChannel', async () => {
  assert.deepEqual(await client.disconnect({ name: 'bob' }), { connections: 1 });
  const closed = await bob.closed;
  assert.deepEqual(closed, { code: 1000, reason: 'disconnected by the web application' });
  // The close handling runs after the reply; its last step is the disconnect webhook.
  assert.equal((await app.events.hook('disconnect')).name, 'bob');
  await refusal(client.disconnect({ name: 'bob' }), "User bob doesn't exist");

  await client.destroyChannel({ channel_name: 'scores' });
  await alice.next((n, a) => n === 'UNSUBSCRIBE' && a.channel_name === 'scores');
  await refusal(client.destroyChannel({ channel_name: 'scores' }), "Channel scores doesn't exist");
  assert.ok(!(await client.getServerInfo()).channels.includes('scores'));
});

test('a wrong token is refused with the server\'s text', async () => {
  const wrong = new HookboxClient({ url: hookbox.url, token: 'wrong' });
  await refusal(wrong.getServerInfo(), 'Invalid Security Token');
});

test('HTTP 429: HookboxThrottledError with Retry-After', async () => {
  // Loopback is never held back; an address forwarded by a trusted proxy (loopback) is.
  const guesser = new HookboxClient({
    url: hookbox.url, token: 'guess', headers: { 'X-Forwarded-For': '203.0.113.7' },
  });
  let error;
  for (let i = 0; i < 20 && !error; i++) {
    error = await guesser.getServerInfo().then(() => assert.fail('a wrong token passed'), (e) => (e instanceof HookboxThrottledError ? e : undefined));
  }
  assert.ok(error instanceof HookboxThrottledError, 'never throttled');
  assert.match(error.msg, /^Too many wrong tokens from your address: try again in \d+ s$/);
  assert.ok(error.retryAfterSeconds > 0);
  // An idempotent call is not retried when the server asks for a longer wait than maxRetryDelayMs...
  const impatient = new HookboxClient({
    url: hookbox.url, token: TOKEN, headers: { 'X-Forwarded-For': '203.0.113.7' }, maxRetryDelayMs: 1000,
  });
  await client.createChannel({ channel_name: 'throttled' });
  let started = Date.now();
  await assert.rejects(impatient.publish({ channel_name: 'throttled', payload: 1 }), HookboxThrottledError);
  assert.ok(Date.now() - started < 1000);
  // ...and waits for Retry-After when it may: then the right token gets through.
  const patient = new HookboxClient({
    url: hookbox.url, token: TOKEN, headers: { 'X-Forwarded-For': '203.0.113.7' }, maxRetryDelayMs: 10_000,
  });
  started = Date.now();
  assert.deepEqual(await patient.publish({ channel_name: 'throttled', payload: 1 }), {});
  assert.ok(Date.now() - started >= (error.retryAfterSeconds - 1) * 1000);
});

test('a call without an answer in time is a HookboxTimeoutError; only idempotent ones are retried', async () => {
  const silent = http.createServer(() => {});
  const seen = [];
  silent.on('request', (req) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => seen.push(Object.fromEntries(new URLSearchParams(body))));
  });
  silent.listen(0, '127.0.0.1');
  await once(silent, 'listening');
  try {
    const slow = new HookboxClient({ url: `http://127.0.0.1:${silent.address().port}`, token: TOKEN, timeoutMs: 150, retryDelayMs: 10 });
    const error = await slow.getServerInfo().catch((e) => e);
    assert.ok(error instanceof HookboxTimeoutError, String(error));
    assert.equal(error.timeoutMs, 150);
    await assert.rejects(slow.publish({ channel_name: 'lobby', payload: 1 }), HookboxTimeoutError);
    assert.equal(seen.length, 4, 'one get_server_info, then publish tried 1 + 2 times');
    const keys = seen.slice(1).map((form) => form.idempotency_key);
    assert.match(keys[0], /^[0-9a-f-]{36}$/);
    assert.deepEqual(new Set(keys).size, 1, 'every try carries the same idempotency key');
    // The caller's own signal cancels, without retries.
    const controller = new AbortController();
    const call = slow.publish({ channel_name: 'lobby', payload: 1 }, { signal: controller.signal, timeoutMs: 10_000 });
    controller.abort(new Error('changed my mind'));
    await assert.rejects(call, /changed my mind/);
  } finally {
    silent.closeAllConnections();
    silent.close();
  }
});

test('an unreachable server is a HookboxTransportError', async () => {
  const closed = http.createServer();
  closed.listen(0, '127.0.0.1');
  await once(closed, 'listening');
  const { port } = closed.address();
  await new Promise((resolve) => closed.close(resolve));
  const nowhere = new HookboxClient({ url: `http://127.0.0.1:${port}`, token: TOKEN, retries: 0 });
  const error = await nowhere.getServerInfo().catch((e) => e);
  assert.ok(error instanceof HookboxTransportError, String(error));
  assert.equal(error.status, undefined);
  assert.match(error.message, /could not reach hookbox \(ECONNREFUSED\)/);
  // A page that is not the Web API (here: hookbox's 404 for an unknown method).
  const odd = await client.call('no_such_method').catch((e) => e);
  assert.ok(odd instanceof HookboxTransportError);
  assert.equal(odd.status, 404);
});

test('constructor checks', () => {
  assert.throws(() => new HookboxClient({ token: 't' }), /url is required/);
  assert.throws(() => new HookboxClient({ url: hookbox.url }), /token is required/);
});
