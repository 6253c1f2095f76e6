// Signature checks and event parsing on known vectors, and against the official
// `standardwebhooks` package signing: what verifyWebhook accepts and what it refuses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import {
  verifyWebhook, verifySignature, parseWebhook, parseCookies, WebhookSignatureError,
  WebhookFormatError, WebhookError, HookboxError,
} from 'hookbox-sdk';

const SECRET = 'a plain secret';
const sign = (body, secret = SECRET) => `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
const formHeaders = (body, extra = {}) => ({
  'content-type': 'application/x-www-form-urlencoded', 'x-hookbox-signature': sign(body), ...extra,
});

test("hookbox's own scheme: the vector of hookbox's signing tests", () => {
  const headers = { 'X-Hookbox-Signature': 'sha256=23768322bdf7c3ae364493ff7f06fac2ac757c123e25317d411bd5c9a57bb29b' };
  assert.equal(verifySignature({ body: 'action=connect', headers, secret: 's' }), null);
  assert.throws(() => verifySignature({ body: 'action=connecT', headers, secret: 's' }), WebhookSignatureError);
  assert.throws(() => verifySignature({ body: 'action=connect', headers, secret: 'S' }), WebhookSignatureError);
});

test('Standard Webhooks: the example of the specification', () => {
  const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
  const headers = {
    'webhook-id': 'msg_p5jXN8AQM9LWM0D4loKWxJek',
    'webhook-timestamp': '1614265330',
    'webhook-signature': 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
  };
  const body = '{"test": 2432232314}';
  const now = 1614265330 * 1000;
  assert.equal(verifySignature({ body, headers, secret, now }), 'msg_p5jXN8AQM9LWM0D4loKWxJek');
  // One of several signatures (a key rotation), unknown versions skipped.
  const list = { ...headers, 'webhook-signature': `v2,abc v1,AAAA ${headers['webhook-signature']}` };
  assert.equal(verifySignature({ body, headers: list, secret, now }), 'msg_p5jXN8AQM9LWM0D4loKWxJek');
  // Within five minutes either way, not beyond.
  assert.ok(verifySignature({ body, headers, secret, now: now + 299_000 }));
  assert.ok(verifySignature({ body, headers, secret, now: now - 299_000 }));
  assert.throws(() => verifySignature({ body, headers, secret, now: now + 301_000 }), /tolerance/);
  assert.throws(() => verifySignature({ body, headers, secret, now: now - 301_000 }), /tolerance/);
  assert.ok(verifySignature({ body, headers, secret, now: now + 3_000_000, toleranceSeconds: 3600 }));
  // Any change of body, id or timestamp breaks it.
  assert.throws(() => verifySignature({ body: body.replace('2', '3'), headers, secret, now }), /No matching/);
  assert.throws(() => verifySignature({ body, headers: { ...headers, 'webhook-id': 'msg_x' }, secret, now }), /No matching/);
  assert.throws(() => verifySignature({ body, headers: { ...headers, 'webhook-timestamp': '1614265331' }, secret, now }), /No matching/);
  assert.throws(() => verifySignature({ body, headers: { ...headers, 'webhook-signature': 'v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=' }, secret, now }), /No matching/);
  for (const missing of Object.keys(headers)) {
    const partial = { ...headers };
    delete partial[missing];
    assert.throws(() => verifySignature({ body, headers: partial, secret, now }), /Missing/);
  }
});

test('Standard Webhooks: requests signed by the official standardwebhooks package verify', () => {
  const secret = 'whsec_' + Buffer.from('a key of thirty-two bytes, or so').toString('base64');
  const official = new Webhook(secret);
  const body = Buffer.from('action=publish&channel_name=news&payload=%7B%22text%22%3A+%22h%5Cu00e9%22%7D');
  const timestamp = new Date();
  const headers = new Headers({
    'webhook-id': 'msg_1',
    'webhook-timestamp': String(Math.floor(timestamp / 1000)),
    'webhook-signature': official.sign('msg_1', timestamp, body),
  });
  const event = verifyWebhook({ body, headers, secret });
  assert.equal(event.action, 'publish');
  assert.deepEqual(event.payload, { text: 'hé' });
  assert.equal(event.webhookId, 'msg_1');
});

test('a whsec_ secret accepts only Standard Webhooks (no downgrade to the untimed scheme)', () => {
  const secret = 'whsec_' + Buffer.from('k').toString('base64');
  const body = 'action=disconnect&name=alice';
  assert.throws(() => verifyWebhook({ body, headers: { 'x-hookbox-signature': sign(body, secret) }, secret }),
    (e) => e instanceof WebhookSignatureError && /Missing webhook-id/.test(e.message));
});

test('bad signatures are refused with WebhookSignatureError', () => {
  const body = 'action=disconnect&name=alice';
  const refused = (headers, b = body) => assert.throws(() => verifyWebhook({ body: b, headers, secret: SECRET }),
    (e) => e instanceof WebhookSignatureError && e instanceof WebhookError && e instanceof HookboxError);
  refused({});
  refused({ 'x-hookbox-signature': '' });
  refused({ 'x-hookbox-signature': sign(body).toUpperCase() });
  refused({ 'x-hookbox-signature': sign(body).slice(0, -1) });
  refused({ 'x-hookbox-signature': sign(body, 'another secret') });
  refused({ 'x-hookbox-signature': sign(body) }, body + '&name=mallory');
  refused({ 'x-hookbox-signature': sign(body) }, Buffer.from(body.replace('alice', 'alicf')));
  // A parsed body cannot be verified: a programming error, said at once.
  assert.throws(() => verifyWebhook({ body: { action: 'disconnect' }, headers: formHeaders(body), secret: SECRET }), TypeError);
  assert.throws(() => verifyWebhook({ body, headers: formHeaders(body), secret: '' }), TypeError);
});

test('form bodies: every hook as a typed event, cookies parsed, X-Real-IP', () => {
  const cases = [
    ['action=connect&conn_id=0123456789abcdef0123456789abcdef&payload=%7B%22room%22%3A+42%7D&secret=x',
      { action: 'connect', conn_id: '0123456789abcdef0123456789abcdef', payload: { room: 42 } }],
    ['action=connect&conn_id=0123456789abcdef0123456789abcdef&payload=null', { action: 'connect', payload: null }],
    ['action=disconnect&name=alice', { action: 'disconnect', name: 'alice' }],
    ['action=create_channel&channel_name=news', { action: 'create_channel', channel_name: 'news' }],
    ['action=destroy_channel&channel_name=news', { action: 'destroy_channel', channel_name: 'news' }],
    ['action=subscribe&channel_name=news&user=alice', { action: 'subscribe', channel_name: 'news', user: 'alice' }],
    ['action=unsubscribe&channel_name=news&user=alice', { action: 'unsubscribe', user: 'alice' }],
    ['action=publish&channel_name=news&payload=%22hi%22&originator=alice', { action: 'publish', payload: 'hi', originator: 'alice' }],
    ['action=publish&channel_name=news&payload=%5B1%2C2%5D', { action: 'publish', payload: [1, 2], originator: undefined }],
    ['action=message&sender=alice&recipient=bob&recipient_exists=True&payload=1', { action: 'message', recipient_exists: true, payload: 1 }],
    ['action=message&sender=alice&recipient=bob&recipient_exists=False&payload=1', { action: 'message', recipient_exists: false }],
    ['feed=news&page=2&secret=x', { action: 'poll', form: { feed: 'news', page: '2' } }],
  ];
  for (const [body, expected] of cases) {
    const event = verifyWebhook({
      body,
      headers: formHeaders(body, { cookie: 'sid=s%201; theme="dark"; sid=shadowed; flag', 'x-real-ip': '10.1.2.3' }),
      secret: SECRET,
    });
    for (const [key, value] of Object.entries(expected)) assert.deepEqual(event[key], value, `${body}: ${key}`);
    assert.deepEqual(event.cookies, { sid: 's 1', theme: 'dark' });
    assert.equal(event.cookieHeader, 'sid=s%201; theme="dark"; sid=shadowed; flag');
    assert.equal(event.realIp, '10.1.2.3');
    assert.equal(event.webhookId, null);
    assert.equal(event.raw.secret, undefined, 'the secret is kept out of the event');
  }
  const bare = parseWebhook({ body: 'action=disconnect&name=alice', headers: {} });
  assert.deepEqual([bare.cookies, bare.cookieHeader, bare.realIp], [{}, '', null]);
});

test('JSON bodies (--webhook-format json): the same keys with their types', () => {
  const body = JSON.stringify({
    action: 'message', sender: 'alice', recipient: 'bob', recipient_exists: false,
    payload: { text: 'hé' }, secret: 'x',
  });
  const event = verifyWebhook({
    body, headers: { 'content-type': 'application/json', 'x-hookbox-signature': sign(body) }, secret: SECRET,
  });
  assert.deepEqual(
    { ...event, raw: undefined },
    { action: 'message', sender: 'alice', recipient: 'bob', recipient_exists: false, payload: { text: 'hé' },
      cookieHeader: '', cookies: {}, realIp: null, webhookId: null, raw: undefined },
  );
  // A JSON string payload stays a string (it is not JSON text to decode again).
  const connect = JSON.stringify({ action: 'connect', conn_id: 'c', payload: '{"a": 1}' });
  assert.equal(parseWebhook({ body: connect, headers: { 'Content-Type': 'application/json' } }).payload, '{"a": 1}');
});

test('signed bodies that are not hookbox requests: WebhookFormatError', () => {
  const bad = [
    ['action=launch&x=1', /Unknown webhook action "launch"/],
    ['action=subscribe&channel_name=news', /subscribe webhook without user/],
    ['action=publish&channel_name=news&payload=%7Bnot', /payload is not JSON/],
    ['action=message&sender=a&recipient=b&recipient_exists=maybe&payload=1', /recipient_exists/],
  ];
  for (const [body, message] of bad) {
    assert.throws(() => verifyWebhook({ body, headers: formHeaders(body), secret: SECRET }),
      (e) => e instanceof WebhookFormatError && message.test(e.message), body);
  }
  const json = (body) => verifyWebhook({
    body, headers: { 'content-type': 'application/json', 'x-hookbox-signature': sign(body) }, secret: SECRET,
  });
  assert.throws(() => json('[1, 2]'), /not a JSON object/);
  assert.throws(() => json('{"action": "disconnect", "name": 7}'), /name is not a string/);
});

test('parseCookies', () => {
  assert.deepEqual(parseCookies(undefined), {});
  assert.deepEqual(parseCookies('a=1;b=2; c = 3 ;d=%E2%98%83;e=%zz; =x; f'), { a: '1', b: '2', c: '3', d: '☃', e: '%zz' });
  const odd = parseCookies('__proto__=x; toString=y');
  assert.equal(odd.__proto__, 'x');
  assert.equal(Object.getPrototypeOf(odd), Object.prototype);
  assert.equal(odd.toString, 'y');
});
