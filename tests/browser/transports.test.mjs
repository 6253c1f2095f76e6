// /static/hookbox.js over each transport in real Chromium: WebSocket, CSP when window.WebSocket
// is missing, and the automatic fallback to CSP when the WebSocket fails before opening. Each
// time the page's cookie reaches the webhooks and non-ASCII payloads survive the round trip.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { startHookbox, launchBrowser, startWebApp } from './harness.mjs';

const pages = {};
let web;
let hookbox;
let browser;

const TEXT = 'Grüße, 世界 ☃ 🚀';

const page = (hookboxUrl, room) => `<!doctype html><meta charset="utf-8"><title>t</title>
<script src="${hookboxUrl}/static/hookbox.js"></script>
<script>
  window.events = [];
  const conn = hookbox.connect('${hookboxUrl}', {hello: 'wörld'});
  conn.onOpen = (args) => { events.push(['open', args.name, conn.transportName]); conn.subscribe('${room}'); };
  conn.onSubscribed = (name, sub) => {
    events.push(['subscribed', name, sub.presence, sub.historySize]);
    sub.onPublish = (frame) => events.push(['publish', frame.user, frame.payload]);
    sub.publish({text: '${TEXT}'});
  };
  conn.onError = (args) => events.push(['error', args.msg]);
</script>`;

before(async () => {
  web = await startWebApp({
    hooks: {
      connect: (form, headers) => {
        const m = /(?:^|; )sid=([^;]+)/.exec(headers.cookie || '');
        return m ? [true, { name: m[1] }] : [false, { error: 'no session cookie' }];
      },
      create_channel: () => [true, { reflective: true, presenceful: true, history_size: 5, moderated: false, moderated_publish: true }],
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

/** Opens the test page as user `sid` with `init` run before any page script. */
async function run(sid, init) {
  pages[`/${sid}`] = { headers: { 'Set-Cookie': `sid=${sid}; Path=/` }, html: page(hookbox.url, `room-${sid}`) };
  const tab = await (await browser.newContext()).newPage();
  if (init) await tab.addInitScript(init);
  await tab.goto(`${web.url}/${sid}`);
  await tab.waitForFunction(() => window.events.some((e) => e[0] === 'publish' || e[0] === 'error'));
  const events = await tab.evaluate(() => window.events);
  const publish = await web.waitFor((c) => c.form.action === 'publish' && c.form.channel_name === `room-${sid}`);
  const connect = web.calls.find((c) => c.form.action === 'connect' && c.headers.cookie === `sid=${sid}`);
  assert.ok(connect, 'the connect webhook saw the page cookie');
  assert.equal(connect.form.payload, '{"hello":"wörld"}');
  assert.equal(publish.headers.cookie, `sid=${sid}`);
  assert.equal(publish.form.originator, sid);
  assert.deepEqual(JSON.parse(publish.form.payload), { text: TEXT });
  await tab.close();
  return events;
}

test('WebSocket transport', async () => {
  const events = await run('ws_user');
  assert.deepEqual(events, [
    ['open', 'ws_user', 'websocket'],
    ['subscribed', 'room-ws_user', ['ws_user'], 5],
    ['publish', 'ws_user', { text: TEXT }],
  ]);
});

test('CSP when window.WebSocket is missing', async () => {
  const events = await run('csp_user', () => { delete window.WebSocket; window.WebSocket = undefined; });
  assert.deepEqual(events, [
    ['open', 'csp_user', 'csp'],
    ['subscribed', 'room-csp_user', ['csp_user'], 5],
    ['publish', 'csp_user', { text: TEXT }],
  ]);
});

test('falls back to CSP when the WebSocket fails before opening', async () => {
  // A real failing socket: the page's WebSocket points at a closed port.
  const events = await run('fallback_user', () => {
    const Real = window.WebSocket;
    window.WebSocket = function (url, protocols) {
      return new Real(url.replace(/^ws:\/\/[^/]+/, 'ws://127.0.0.1:9'), protocols);
    };
  });
  assert.deepEqual(events, [
    ['open', 'fallback_user', 'csp'],
    ['subscribed', 'room-fallback_user', ['fallback_user'], 5],
    ['publish', 'fallback_user', { text: TEXT }],
  ]);
});
