// /static/hookbox.js in a real browser: a page from the web app's origin sets a cookie, loads the
// client from hookbox, and goes connect → subscribe → publish → receive with non-ASCII payloads;
// the webhooks see the page's cookie.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { startHookbox, launchBrowser, startWebApp } from './harness.mjs';

const pages = {};
let web;
let hookbox;
let browser;

const page = (hookboxUrl) => `<!doctype html><meta charset="utf-8"><title>t</title>
<script src="${hookboxUrl}/static/hookbox.js"></script>
<script>
  window.events = [];
  const conn = hookbox.connect('${hookboxUrl}', {greeting: 'grüß dich'});
  conn.onOpen = (args) => { events.push(['open', args]); conn.subscribe('room'); };
  conn.onSubscribed = (name, sub, args) => {
    events.push(['subscribed', name, sub.presence, sub.historySize]);
    sub.onPublish = (frame) => events.push(['publish', frame.user, frame.payload]);
    sub.publish({text: 'naïve café ☕ 🚀'});
  };
  conn.onError = (args) => events.push(['error', args.msg]);
</script>`;

before(async () => {
  web = await startWebApp({
    hooks: {
      connect: (form, headers) => {
        const m = /(?:^|; )sid=([^;]+)/.exec(headers.cookie || '');
        return m ? [true, { name: 'user_' + m[1] }] : [false, { error: 'no session' }];
      },
      create_channel: () => [true, { history_size: 5, presenceful: true, reflective: true }],
    },
    pages,
  });
  hookbox = await startHookbox(['--cbport', String(web.port), '--cbpath', '/hookbox']);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await hookbox?.stop();
  await web?.close();
});

test('connect, subscribe, publish and receive over WebSocket with the page cookie', async () => {
  // The page comes from the web app's origin with a session cookie its script can read.
  pages['/page'] = { headers: { 'Set-Cookie': 'sid=alice; Path=/' }, html: page(hookbox.url) };
  const tab = await (await browser.newContext()).newPage();
  await tab.goto(`${web.url}/page`);
  await tab.waitForFunction(() => window.events.some((e) => e[0] === 'publish'));
  const events = await tab.evaluate(() => window.events);
  assert.deepEqual(events[0], ['open', { name: 'user_alice', payload: '{"greeting":"grüß dich"}' }]);
  assert.deepEqual(events[1], ['subscribed', 'room', ['user_alice'], 5]);
  assert.deepEqual(events[2], ['publish', 'user_alice', { text: 'naïve café ☕ 🚀' }]);

  const connect = await web.waitFor((c) => c.form.action === 'connect');
  assert.equal(connect.headers.cookie, 'sid=alice');
  assert.equal(connect.form.payload, '{"greeting":"grüß dich"}');
  const publish = await web.waitFor((c) => c.form.action === 'publish');
  assert.equal(publish.headers.cookie, 'sid=alice');
  assert.deepEqual(JSON.parse(publish.form.payload), { text: 'naïve café ☕ 🚀' });
  assert.equal(publish.form.originator, 'user_alice');
});
