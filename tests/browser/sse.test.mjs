// Server-sent events from a real browser: a page on the web app's origin listens to hookbox's
// /sse with EventSource (its cookies go along: withCredentials), the stream is cut by the web app,
// and Chromium's own reconnect sends Last-Event-ID, from which the new stream replays exactly the
// publications the page missed.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { startHookbox, launchBrowser, startWebApp } from './harness.mjs';

const pages = {};
let web;
let hookbox;
let browser;
// While set, a connect webhook waits for it: the test holds the page's reconnect until it has
// published what the page is to miss.
let connectGate = null;

before(async () => {
  web = await startWebApp({
    hooks: {
      connect: async (form, headers) => {
        if (connectGate) await connectGate.promise;
        const m = /(?:^|; )sid=([^;]+)/.exec(headers.cookie || '');
        return m ? [true, { name: m[1] }] : [false, { error: 'no session cookie' }];
      },
      create_channel: () => [true, { moderated: false, history_size: 5 }],
      // The channel outlives its only subscriber's disconnect: its history is what is replayed.
      destroy_channel: () => [false, {}],
    },
    pages,
  });
  // The page is on the web app's origin: /sse lets a page on another origin read the stream its
  // cookies open only when the origin is listed.
  hookbox = await startHookbox(['--cbport', String(web.port), '-r', 'tok', '--allowed-origins', web.url]);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await hookbox?.stop();
  await web?.close();
});

async function api(method, params) {
  const resp = await fetch(`${hookbox.url}/web/${method}`, {
    method: 'POST',
    body: new URLSearchParams({ security_token: 'tok', ...params }),
  });
  const body = await resp.json();
  assert.equal(body[0], true, `${method}: ${JSON.stringify(body)}`);
  return body[1];
}

const publish = (payload) => api('publish', { channel_name: 'sse-feed', payload: JSON.stringify(payload) });

test('EventSource reconnects with Last-Event-ID and gets exactly what it missed', async () => {
  pages['/listen'] = {
    headers: { 'Set-Cookie': 'sid=sse_user; Path=/' },
    html: `<!doctype html><meta charset="utf-8"><title>sse</title><script>
      window.events = [];
      window.ids = [];
      const es = new EventSource('${hookbox.url}/sse?channel=sse-feed', { withCredentials: true });
      es.addEventListener('CONNECTED', (e) => events.push(['connected', JSON.parse(e.data).name]));
      es.addEventListener('SUBSCRIBE', (e) => {
        const a = JSON.parse(e.data);
        events.push(['subscribed', a.recovered === undefined ? null : a.recovered]);
      });
      es.addEventListener('PUBLISH', (e) => { events.push(['publish', JSON.parse(e.data).payload]); ids.push(e.lastEventId); });
      es.addEventListener('close', (e) => events.push(['close', JSON.parse(e.data).reason]));
    </script>`,
  };
  const tab = await (await browser.newContext()).newPage();
  await tab.goto(`${web.url}/listen`);
  await tab.waitForFunction(() => events.length === 2);
  await publish('a');
  await tab.waitForFunction(() => events.length === 3);

  // The web app cuts the user off and holds the page's reconnect while two publications pass.
  let release;
  connectGate = { promise: new Promise((resolve) => { release = resolve; }) };
  const connects = () => web.calls.filter((c) => c.form.action === 'connect').length;
  const before = connects();
  await api('disconnect', { name: 'sse_user' });
  await web.waitFor((c) => c.form.action === 'disconnect' && c.form.name === 'sse_user', 'disconnect webhook');
  await publish('b');
  await publish('c');
  await web.waitFor(() => connects() > before, 'the reconnect');
  connectGate = null;
  release();

  await tab.waitForFunction(() => events.filter((e) => e[0] === 'subscribed').length === 2, null, { timeout: 30000 });
  await publish('d');
  await tab.waitForFunction(() => events.some((e) => e[1] === 'd'));
  assert.deepEqual(await tab.evaluate(() => window.events), [
    ['connected', 'sse_user'],
    ['subscribed', null],
    ['publish', 'a'],
    ['close', 'disconnected by the web application'],
    ['connected', 'sse_user'],
    ['subscribed', true],
    ['publish', 'b'],
    ['publish', 'c'],
    ['publish', 'd'],
  ]);
  // The reconnect carried the id of the last event the page had seen.
  const reconnect = web.calls.filter((c) => c.form.action === 'connect')[1];
  assert.match(reconnect.headers.cookie, /sid=sse_user/);
  // Every publication, replayed ones included, moved the position the page would resume from.
  const ids = await tab.evaluate(() => window.ids);
  const offsets = ids.map((id) => JSON.parse(id)['sse-feed'][1]);
  assert.equal(new Set(ids.map((id) => JSON.parse(id)['sse-feed'][0])).size, 1);
  assert.deepEqual(offsets, [...offsets].sort((x, y) => x - y));
  assert.equal(new Set(offsets).size, 4, `${ids}`);
  await tab.close();
});

test('a stream the web app refuses stays closed, as EventSource does on an HTTP error', async () => {
  pages['/anon'] = {
    html: `<!doctype html><meta charset="utf-8"><title>anon</title><script>
      window.states = [];
      const es = new EventSource('${hookbox.url}/sse?channel=sse-feed', { withCredentials: true });
      es.onerror = () => states.push(es.readyState);
    </script>`,
  };
  const tab = await (await browser.newContext()).newPage();
  await tab.goto(`${web.url}/anon`);
  await tab.waitForFunction(() => states.length > 0);
  // CLOSED (2): the browser does not retry a 403.
  assert.deepEqual(await tab.evaluate(() => window.states), [2]);
  await tab.close();
});
