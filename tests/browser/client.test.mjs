// /static/hookbox.js as a page uses it when the world misbehaves: the server restarts (the page
// reconnects by itself, over WebSocket again, and is back in its channels), the web app
// disconnects the user (no reconnect), an https: page (wss:), the ES module build, and recovery
// of what a page missed while its connection was down.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { startHookbox, launchBrowser, startWebApp } from './harness.mjs';

const pages = {};
let web;
let hookbox;
let browser;
let port;

before(async () => {
  web = await startWebApp({
    hooks: {
      connect: (form, headers) => {
        const m = /(?:^|; )sid=([^;]+)/.exec(headers.cookie || '');
        return m ? [true, { name: m[1] }] : [false, { error: 'no session cookie' }];
      },
      // rec-* channels keep history and are never destroyed (the recovery tests' channels
      // outlive their only subscriber's disconnect).
      create_channel: (form) => [true, form.channel_name.startsWith('rec-')
        ? { moderated: false, history_size: 3 } : { moderated: false }],
      destroy_channel: (form) => [!form.channel_name.startsWith('rec-'), {}],
    },
    pages,
  });
  hookbox = await startHookbox(['--cbport', String(web.port), '-r', 'tok']);
  port = hookbox.ports.main;
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await hookbox?.stop();
  await web?.close();
});

/** Serves a page as user `sid` whose script is `body` (hookbox.js loaded first). */
async function open(sid, body, init) {
  pages[`/${sid}`] = {
    headers: { 'Set-Cookie': `sid=${sid}; Path=/` },
    html: `<!doctype html><meta charset="utf-8"><title>t</title>
<script src="${hookbox.url}/static/hookbox.js"></script><script>${body}</script>`,
  };
  const tab = await (await browser.newContext()).newPage();
  if (init) await tab.addInitScript(init);
  await tab.goto(`${web.url}/${sid}`);
  return tab;
}

async function publish(channel, payload) {
  const resp = await fetch(`${hookbox.url}/web/publish`, {
    method: 'POST',
    body: new URLSearchParams({ security_token: 'tok', channel_name: channel, payload: JSON.stringify(payload) }),
  });
  return (await resp.json())[0];
}

const watcher = (channel) => `
  window.events = [];
  const conn = hookbox.connect('${hookbox.url}');
  conn.onOpen = (args) => { events.push(['open', conn.transportName]); conn.subscribe('${channel}'); };
  conn.onSubscribed = (name, sub) => {
    events.push(['subscribed', name]);
    sub.onPublish = (f) => events.push(['publish', f.payload]);
  };
  conn.onConnectionLost = (reason) => events.push(['lost']);
  conn.onClose = () => events.push(['close']);
`;

test('after a server restart the page reconnects over WebSocket and is back in its channel', async () => {
  // Counts WebSocket attempts that failed before opening (the server was down).
  const countFailures = () => {
    window.wsFailures = 0;
    const Real = window.WebSocket;
    window.WebSocket = function (url, protocols) {
      const ws = new Real(url, protocols);
      let opened = false;
      ws.addEventListener('open', () => { opened = true; });
      ws.addEventListener('close', () => { if (!opened) window.wsFailures += 1; });
      return ws;
    };
  };
  const tab = await open('restart_user', watcher('news'), countFailures);
  await tab.waitForFunction(() => events.some((e) => e[0] === 'subscribed'));

  await hookbox.stop();
  await tab.waitForFunction(() => events.some((e) => e[0] === 'lost'));
  // A reconnect attempt failed while the server was down: a client that then falls back to CSP
  // would stay on it once the server is back.
  await tab.waitForFunction(() => window.wsFailures > 0, null, { timeout: 30000 });
  hookbox = await startHookbox(['--cbport', String(web.port), '-r', 'tok', '-p', String(port)]);
  await tab.waitForFunction(() => events.filter((e) => e[0] === 'subscribed').length === 2, null, { timeout: 60000 });
  assert.equal(await publish('news', 'after the restart'), true);
  await tab.waitForFunction(() => events.some((e) => e[0] === 'publish'));
  const events = await tab.evaluate(() => window.events);
  assert.deepEqual(events, [
    ['open', 'websocket'],
    ['subscribed', 'news'],
    ['lost'],
    ['open', 'websocket'],
    ['subscribed', 'news'],
    ['publish', 'after the restart'],
  ]);
  await tab.close();
});

test('a user the web app disconnects stays disconnected', async () => {
  const tab = await open('kicked_user', watcher('kick'));
  await tab.waitForFunction(() => events.some((e) => e[0] === 'subscribed'));
  const resp = await fetch(`${hookbox.url}/web/disconnect`, {
    method: 'POST',
    body: new URLSearchParams({ security_token: 'tok', name: 'kicked_user' }),
  });
  assert.deepEqual(await resp.json(), [true, { connections: 1 }]);
  await tab.waitForFunction(() => events.some((e) => e[0] === 'close'));
  await web.waitFor((c) => c.form.action === 'disconnect' && c.form.name === 'kicked_user', 'disconnect webhook');
  // A reconnect would have sent a second CONNECT: the web app saw one.
  assert.equal(web.calls.filter((c) => c.form.action === 'connect' && c.headers.cookie === 'sid=kicked_user').length, 1);
  await tab.close();
});

test('an https: server URL uses wss:', async () => {
  const tab = await open('tls_user', `
    window.urls = [];
    window.WebSocket = function (url) { urls.push(url); throw new Error('not here'); };
    hookbox.connect('https://hookbox.example:8443');
  `);
  await tab.waitForFunction(() => window.urls.length > 0);
  assert.deepEqual(await tab.evaluate(() => window.urls), ['wss://hookbox.example:8443/ws']);
  await tab.close();
});

test('the ES module build connects like the script', async () => {
  pages['/esm_user'] = {
    headers: { 'Set-Cookie': 'sid=esm_user; Path=/' },
    html: `<!doctype html><meta charset="utf-8"><title>t</title>
<script type="module">
  import hookbox, { connect } from '${hookbox.url}/static/hookbox.mjs';
  window.events = [typeof hookbox.connect, typeof connect];
  const conn = connect('${hookbox.url}');
  conn.onOpen = (args) => { events.push(args.name); conn.subscribe('esm'); };
  conn.onSubscribed = (name) => events.push(name);
</script>`,
  };
  const tab = await (await browser.newContext()).newPage();
  await tab.goto(`${web.url}/esm_user`);
  await tab.waitForFunction(() => window.events && window.events.length === 4);
  assert.deepEqual(await tab.evaluate(() => window.events), ['function', 'function', 'esm_user', 'esm']);
  const types = await fetch(`${hookbox.url}/static/hookbox.d.ts`);
  assert.equal(types.status, 200);
  assert.match(await types.text(), /export interface Connection/);
  await tab.close();
});

/** A page subscribed to `channel` whose WebSocket the test can cut and hold down: while
 *  `hold` is set, every new WebSocket goes to a closed port and fails. */
const recoverer = (channel) => `
  window.hold = false;
  window.sockets = [];
  window.failed = 0;
  const Real = window.WebSocket;
  window.WebSocket = function (url, protocols) {
    const ws = new Real(window.hold ? 'ws://127.0.0.1:1/' : url, protocols);
    if (window.hold) ws.addEventListener('close', () => { window.failed += 1; });
    sockets.push(ws);
    return ws;
  };
  window.cut = () => { window.hold = true; sockets[sockets.length - 1].close(); };
  window.events = [];
  const conn = hookbox.connect('${hookbox.url}');
  conn.onOpen = () => { if (!window.sub) conn.subscribe('${channel}'); };
  conn.onSubscribed = (name, sub) => {
    window.sub = sub;
    events.push(['subscribed', sub.recovered === undefined ? null : sub.recovered]);
    sub.onPublish = (f) => events.push(['publish', f.payload]);
  };
  conn.onConnectionLost = () => events.push(['lost']);
`;

/** Cuts the page's connection and holds it down until the server saw it go and `whileDown` ran. */
async function cutAndHold(tab, sid, whileDown) {
  const disconnects = () => web.calls.filter((c) => c.form.action === 'disconnect' && c.form.name === sid).length;
  const before = disconnects();
  await tab.evaluate(() => window.cut());
  await tab.waitForFunction(() => window.failed > 0, null, { timeout: 30000 });
  await web.waitFor(() => disconnects() > before, 'disconnect webhook');
  await whileDown();
  await tab.evaluate(() => { window.hold = false; });
}

test('after a lost connection the page gets exactly what it missed, in order', async () => {
  const tab = await open('recover_user', recoverer('rec-feed'));
  await tab.waitForFunction(() => events.length === 1);
  assert.equal(await publish('rec-feed', 'a'), true);
  await tab.waitForFunction(() => events.length === 2);
  await cutAndHold(tab, 'recover_user', async () => {
    for (const p of ['b', 'c']) assert.equal(await publish('rec-feed', p), true);
  });
  await tab.waitForFunction(() => events.filter((e) => e[0] === 'subscribed').length === 2, null, { timeout: 30000 });
  assert.equal(await publish('rec-feed', 'd'), true);
  await tab.waitForFunction(() => events.some((e) => e[1] === 'd'));
  assert.deepEqual(await tab.evaluate(() => window.events), [
    ['subscribed', null],
    ['publish', 'a'],
    ['lost'],
    ['subscribed', true],
    ['publish', 'b'],
    ['publish', 'c'],
    ['publish', 'd'],
  ]);
  // The history the page keeps goes on across the gap (history_size 3).
  assert.deepEqual(await tab.evaluate(() => sub.history.map((e) => e[1].payload)), ['b', 'c', 'd']);
  await tab.close();
});

test('when what the page missed is gone, it is told so', async () => {
  const tab = await open('gap_user', recoverer('rec-short'));
  await tab.waitForFunction(() => events.length === 1);
  // Four publications into a history of three: the first one the page missed is gone.
  await cutAndHold(tab, 'gap_user', async () => {
    for (const p of ['1', '2', '3', '4']) assert.equal(await publish('rec-short', p), true);
  });
  await tab.waitForFunction(() => events.filter((e) => e[0] === 'subscribed').length === 2, null, { timeout: 30000 });
  assert.equal(await publish('rec-short', 'live'), true);
  await tab.waitForFunction(() => events.some((e) => e[1] === 'live'));
  assert.deepEqual(await tab.evaluate(() => window.events), [
    ['subscribed', null],
    ['lost'],
    ['subscribed', false],
    ['publish', 'live'],
  ]);
  await tab.close();
});

test('subscriptions the server refuses as too fast are sent again, none lost', async () => {
  // A server that lets a connection subscribe twice at once, then four times a second.
  const strict = await startHookbox(['--cbport', String(web.port), '--subscribe-burst', '2',
    '--subscribe-rate', '4']);
  try {
    const channels = ['t1', 't2', 't3', 't4', 't5', 't6'];
    pages['/burst_user'] = {
      headers: { 'Set-Cookie': 'sid=burst_user; Path=/' },
      html: `<!doctype html><meta charset="utf-8"><title>t</title>
<script src="${strict.url}/static/hookbox.js"></script><script>
  window.subscribed = []; window.errors = [];
  const conn = hookbox.connect('${strict.url}');
  conn.onOpen = () => { for (const c of ${JSON.stringify(channels)}) conn.subscribe(c); };
  conn.onSubscribed = (name) => subscribed.push(name);
  conn.onError = (e) => errors.push(e.msg);
</script>`,
    };
    const tab = await (await browser.newContext()).newPage();
    await tab.goto(`${web.url}/burst_user`);
    await tab.waitForFunction((n) => window.subscribed.length === n, channels.length, { timeout: 30000 });
    assert.deepEqual((await tab.evaluate(() => window.subscribed)).sort(), channels);
    assert.deepEqual(await tab.evaluate(() => window.errors), []);
    await tab.close();
  } finally {
    await strict.stop();
  }
});

test('getPayload gives every connect and reconnect a fresh token, through a server restart', async () => {
  // A web app whose connect tokens are good for one connect: a reconnect with the payload of
  // the first connect would be refused for good ("token expired").
  let issued = 0;
  const used = new Set();
  const app = await startWebApp({
    hooks: {
      connect: (form) => {
        const token = JSON.parse(form.payload || 'null');
        if (!token || used.has(token)) return [false, { error: 'token expired' }];
        used.add(token);
        return [true, { name: 'token-user' }];
      },
    },
    pages: {},
  });
  const tokenServer = (await import('node:http')).createServer((req, res) => {
    issued += 1;
    res.writeHead(200, { 'Content-Type': 'application/json', 'Access-Control-Allow-Origin': '*' });
    res.end(JSON.stringify('token-' + issued));
  });
  tokenServer.listen(0, '127.0.0.1');
  await (await import('node:events')).once(tokenServer, 'listening');
  const tokens = `http://127.0.0.1:${tokenServer.address().port}/`;
  let server = await startHookbox(['--cbport', String(app.port)]);
  const serverPort = server.ports.main;
  try {
    pages['/token_user'] = {
      html: `<!doctype html><meta charset="utf-8"><title>t</title>
<script src="${server.url}/static/hookbox.js"></script><script>
  window.events = [];
  const conn = hookbox.connect('${server.url}', null, null, {
    getPayload: async () => (await fetch('${tokens}')).json(),
  });
  conn.onOpen = (args) => events.push(['open', args.name, conn.connectPayload]);
  conn.onError = (args) => events.push(['error', args.msg]);
  conn.onConnectionLost = () => events.push(['lost']);
</script>`,
    };
    const tab = await (await browser.newContext()).newPage();
    await tab.goto(`${web.url}/token_user`);
    await tab.waitForFunction(() => events.some((e) => e[0] === 'open'));
    await server.stop();
    await tab.waitForFunction(() => events.some((e) => e[0] === 'lost'));
    server = await startHookbox(['--cbport', String(app.port), '-p', String(serverPort)]);
    await tab.waitForFunction(() => events.filter((e) => e[0] === 'open').length === 2, null, { timeout: 60000 });
    const events = await tab.evaluate(() => window.events);
    const opens = events.filter((e) => e[0] === 'open');
    assert.deepEqual(opens.map((e) => e[1]), ['token-user', 'token-user']);
    assert.notEqual(opens[0][2], opens[1][2], 'a fresh token for the reconnect');
    assert.ok(!events.some((e) => e[0] === 'error'), JSON.stringify(events));
    await tab.close();
  } finally {
    await server.stop();
    await app.close();
    tokenServer.close();
  }
});
