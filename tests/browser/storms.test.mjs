// /static/hookbox.js in a reconnect storm. Resume tickets: when the web app's connect reply has
// resume_ttl, the page keeps the server's ticket and, after a server restart, comes back and
// into its channels without the web app being asked again (nor getPayload called). When the
// restarted server does not take the ticket (another --resume-secret), the page connects as the
// first time, with a fresh payload, and the user sees no error. A server too busy to ask the web
// app answers with a retry hint, which the page honours without an error.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import { startHookbox, launchBrowser, startWebApp } from './harness.mjs';

const pages = {};
let web;
let browser;
let tokens;
let issued = 0;
const used = new Set();

before(async () => {
  web = await startWebApp({
    hooks: {
      // Single-use tokens: a CONNECT that the web app is asked about needs a fresh one.
      connect: (form) => {
        const token = JSON.parse(form.payload || 'null');
        if (!token || used.has(token)) return [false, { error: 'token expired' }];
        used.add(token);
        return [true, { name: 'ticket-user', resume_ttl: 300 }];
      },
      create_channel: () => [true, { moderated_subscribe: true }],
    },
    pages,
  });
  tokens = http.createServer((req, res) => {
    issued += 1;
    res.writeHead(200, { 'Content-Type': 'application/json', 'Access-Control-Allow-Origin': '*' });
    res.end(JSON.stringify('token-' + issued));
  });
  tokens.listen(0, '127.0.0.1');
  await once(tokens, 'listening');
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await web?.close();
  tokens?.close();
});

const count = (action) => web.calls.filter((c) => c.form.action === action).length;

/** A page on `server` that joins `room` and records what happens. */
async function openPage(server, name) {
  pages[`/${name}`] = {
    html: `<!doctype html><meta charset="utf-8"><title>t</title>
<script src="${server.url}/static/hookbox.js"></script><script>
  window.events = [];
  window.payloads = 0;
  const tokens = 'http://127.0.0.1:${tokens.address().port}/';
  const conn = hookbox.connect('${server.url}', null, null, {
    getPayload: async () => { payloads += 1; return (await fetch(tokens)).json(); },
  });
  window.conn = conn;
  conn.onOpen = (args) => {
    events.push(['open', args.name, conn.resumed]);
    if (!conn.resumed && !window.joined) { window.joined = true; conn.subscribe('room'); }
  };
  conn.onSubscribed = (channel, sub) => {
    events.push(['subscribed', channel]);
    sub.onPublish = (frame) => events.push(['publish', frame.payload]);
  };
  conn.onError = (args) => events.push(['error', args.msg]);
  conn.onConnectionLost = () => events.push(['lost']);
</script>`,
  };
  const tab = await (await browser.newContext()).newPage();
  await tab.goto(`${web.url}/${name}`);
  await tab.waitForFunction(() => events.some((e) => e[0] === 'subscribed'));
  return tab;
}

async function publish(server, payload) {
  const resp = await fetch(`${server.url}/web/publish`, {
    method: 'POST',
    body: new URLSearchParams({ security_token: 'tok', channel_name: 'room', payload: JSON.stringify(payload) }),
  });
  assert.equal((await resp.json())[0], true);
}

const args = (port, secret) => ['--cbport', String(port), '-r', 'tok', '--resume-secret', secret];

test('a page comes back through a server restart with its ticket, asking the web app nothing', async () => {
  const secret = 'one secret for both runs';
  let server = await startHookbox(args(web.port, secret));
  const serverPort = server.ports.main;
  try {
    const tab = await openPage(server, 'restart');
    assert.equal(count('connect'), 1);
    assert.equal(count('subscribe'), 1);
    // The ticket that names `room` has come (a RESUME after the SUBSCRIBE).
    await tab.waitForFunction(() => conn._ticket
      && JSON.parse(atob(conn._ticket.split('.')[0].replace(/-/g, '+').replace(/_/g, '/'))).ch.includes('room'));
    await server.stop();
    await tab.waitForFunction(() => events.some((e) => e[0] === 'lost'));
    server = await startHookbox([...args(web.port, secret), '-p', String(serverPort)]);
    await tab.waitForFunction(() => events.filter((e) => e[0] === 'subscribed').length === 2, null,
      { timeout: 60000 });
    await publish(server, 'after the restart');
    await tab.waitForFunction(() => events.some((e) => e[0] === 'publish'));
    const events = await tab.evaluate(() => window.events);
    const opens = events.filter((e) => e[0] === 'open');
    assert.deepEqual(opens, [['open', 'ticket-user', false], ['open', 'ticket-user', true]]);
    assert.deepEqual(events.filter((e) => e[0] === 'publish'), [['publish', 'after the restart']]);
    assert.ok(!events.some((e) => e[0] === 'error'), JSON.stringify(events));
    // Neither the CONNECT nor the SUBSCRIBE asked the web app again; no new token was needed.
    assert.equal(count('connect'), 1);
    assert.equal(count('subscribe'), 1);
    assert.equal(await tab.evaluate(() => window.payloads), 1);
    await tab.close();
  } finally {
    await server.stop();
  }
});

test('a ticket the restarted server does not take falls back to a fresh connect', async () => {
  let server = await startHookbox(args(web.port, 'the first secret here'));
  const serverPort = server.ports.main;
  const connects = count('connect');
  try {
    const tab = await openPage(server, 'fallback');
    await server.stop();
    await tab.waitForFunction(() => events.some((e) => e[0] === 'lost'));
    server = await startHookbox([...args(web.port, 'a different secret!'), '-p', String(serverPort)]);
    await tab.waitForFunction(() => events.filter((e) => e[0] === 'open').length === 2, null,
      { timeout: 60000 });
    const events = await tab.evaluate(() => window.events);
    assert.deepEqual(events.filter((e) => e[0] === 'open')[1], ['open', 'ticket-user', false]);
    assert.ok(!events.some((e) => e[0] === 'error'), JSON.stringify(events));
    // The ticket's CONNECT carried the old token and was refused; then a fresh token was used.
    assert.equal(await tab.evaluate(() => window.payloads), 2);
    assert.equal(count('connect') - connects, 3);
    await tab.close();
  } finally {
    await server.stop();
  }
});

test('a CONNECT refused as too busy comes back after the retry hint, without an error', async () => {
  let release;
  const held = new Promise((resolve) => { release = resolve; });
  const app = await startWebApp({
    hooks: {
      connect: async (form) => {
        const who = JSON.parse(form.payload).name;
        if (who === 'first') await held;
        return [true, { name: who }];
      },
    },
    pages: {},
  });
  // One webhook slot and no queue: while `first` holds it, any other CONNECT is refused.
  const server = await startHookbox(['--cbport', String(app.port), '--webhook-max-concurrency', '1',
    '--webhook-queue', '0']);
  try {
    const page = (name) => `<!doctype html><meta charset="utf-8"><title>t</title>
<script src="${server.url}/static/hookbox.js"></script><script>
  window.events = [];
  const conn = hookbox.connect('${server.url}', { name: '${name}' });
  conn.onOpen = (args) => events.push(['open', args.name]);
  conn.onError = (args) => events.push(['error', args.msg]);
</script>`;
    const first = await (await browser.newContext()).newPage();
    pages['/first'] = { html: page('first') };
    pages['/second'] = { html: page('second') };
    await first.goto(`${web.url}/first`);
    await app.waitFor((c) => c.form.action === 'connect', 'the first connect');
    const second = await (await browser.newContext()).newPage();
    const hints = [];
    let hinted;
    const hint = new Promise((resolve) => { hinted = resolve; });
    second.on('websocket', (ws) => ws.on('framereceived', ({ payload }) => {
      if (String(payload).includes('retry_after')) {
        hints.push(JSON.parse(payload));
        hinted();
      }
    }));
    await second.goto(`${web.url}/second`);
    // The hint came; only then is the slot let go.
    await hint;
    assert.equal(hints.length, 1, 'one retry hint');
    assert.equal(hints[0][1], 'ERROR');
    assert.equal(hints[0][2].retry_after, 1);
    release();
    await second.waitForFunction(() => events.some((e) => e[0] === 'open'), null, { timeout: 15000 });
    await first.waitForFunction(() => events.some((e) => e[0] === 'open'));
    assert.deepEqual(await second.evaluate(() => window.events), [['open', 'second']]);
    const asked = app.calls.filter((c) => c.form.action === 'connect').map((c) => JSON.parse(c.form.payload).name);
    assert.deepEqual(asked, ['first', 'second'], 'the refused CONNECT never reached the web app');
    await first.close();
    await second.close();
  } finally {
    await server.stop();
    await app.close();
  }
});
