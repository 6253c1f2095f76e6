// The admin console in a real browser, steering a real server that a real client page uses:
// log in (after a wrong password), see the page's channel appear, edit its options, publish to
// the page, disconnect its user. Screenshots: see `screenshotPath` in harness.mjs.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { startHookbox, startWebApp, launchBrowser, screenshotPath } from './harness.mjs';

const PASSWORD = 'console-test-password';
let web;
let hookbox;
let browser;

before(async () => {
  web = await startWebApp({
    hooks: {
      connect: () => [true, { name: 'pat' }],
      create_channel: () => [true, { moderated: false, history_size: 10, presenceful: true }],
    },
    pages: {},
  });
  hookbox = await startHookbox(['--cbport', String(web.port), '-a', PASSWORD, '-r', 'tok']);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await hookbox?.stop();
  await web?.close();
});

/** A page of the web app's that connects to hookbox and subscribes to `news`. */
function clientPage() {
  return `<!doctype html><meta charset="utf-8"><title>client</title>
<script src="${hookbox.url}/static/hookbox.js"></script>
<ul id="got"></ul><p id="state">connecting</p>
<script>
  window.gotClose = false;
  var conn = hookbox.connect('${hookbox.url}', null, null, {reconnect: false});
  conn.onOpen = function () { conn.subscribe('news'); };
  conn.onSubscribed = function (name, sub) {
    document.getElementById('state').textContent = 'subscribed';
    sub.onPublish = function (f) {
      var li = document.createElement('li');
      li.textContent = JSON.stringify(f.payload);
      document.getElementById('got').append(li);
    };
  };
  conn.onClose = function () { window.gotClose = true; document.getElementById('state').textContent = 'closed'; };
</script>`;
}

test('an operator watches and steers a live server from the console', async () => {
  const http = await import('node:http');
  // The client page is served by a small server of its own (another origin than hookbox).
  const pageServer = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(clientPage());
  });
  await new Promise((r) => pageServer.listen(0, '127.0.0.1', r));
  try {
    const admin = await (await browser.newContext({ viewport: { width: 1200, height: 800 } })).newPage();
    await admin.goto(`${hookbox.url}/admin/`);
    await admin.waitForSelector('#login-form:not([hidden])');

    // A wrong password is refused, and says so.
    await admin.fill('#password', 'not it');
    await admin.click('#login-form button');
    await admin.waitForFunction(() => document.getElementById('login-error').textContent.includes('wrong password'));
    assert.equal(await admin.isVisible('#app'), false);

    await admin.fill('#password', PASSWORD);
    await admin.click('#login-form button');
    await admin.waitForSelector('#app:not([hidden])');
    await admin.waitForFunction(() => document.getElementById('live').textContent === 'live');

    // A client page subscribes: the console's overview and channel list show it.
    const client = await (await browser.newContext()).newPage();
    await client.goto(`http://127.0.0.1:${pageServer.address().port}/`);
    await client.waitForFunction(() => document.getElementById('state').textContent === 'subscribed');
    await admin.waitForFunction(() => document.getElementById('users') && document.getElementById('users').textContent === '1');
    await admin.screenshot({ path: screenshotPath('admin-overview.png') });
    await admin.goto(`${hookbox.url}/admin/#/channels`);
    await admin.waitForSelector('#channel-list a');
    assert.match(await admin.textContent('#channel-list'), /news/);

    // The channel view: edit an option; the server has it.
    await admin.click('#channel-list a');
    await admin.waitForSelector('#options');
    const options = JSON.parse(await admin.inputValue('#options'));
    assert.equal(options.history_size, 10);
    options.history_size = 7;
    await admin.fill('#options', JSON.stringify(options, null, 2));
    await admin.click('#save-options');
    await admin.waitForFunction(() => document.getElementById('flash').textContent === 'Options saved');
    const info = await (await fetch(`${hookbox.url}/web/get_channel_info`, {
      method: 'POST',
      body: new URLSearchParams({ security_token: 'tok', channel_name: 'news' }),
    })).json();
    assert.equal(info[1].options.history_size, 7);

    // Publish from the console: the client page shows it, and the live events list too.
    await admin.fill('#payload', '{"text": "from the console"}');
    await admin.click('#publish');
    await client.waitForFunction(() => document.getElementById('got').textContent.includes('from the console'));
    await admin.waitForFunction(() => document.getElementById('events').textContent.includes('from the console'));
    await admin.screenshot({ path: screenshotPath('admin-channel.png'), fullPage: true });

    // The user view: disconnect; the client page hears its close.
    await admin.goto(`${hookbox.url}/admin/#/users/pat`);
    await admin.waitForSelector('#connections td');
    assert.match(await admin.textContent('#connections'), /websocket/);
    await admin.click('#disconnect');
    await client.waitForFunction(() => window.gotClose === true);
    await web.waitFor((c) => c.form.action === 'disconnect' && c.form.name === 'pat', 'disconnect webhook');

    // The webhook log: one compact line per call, with its duration, filtered by hook and text,
    // updated while it is shown.
    await admin.goto(`${hookbox.url}/admin/#/webhooks`);
    await admin.waitForSelector('#webhook-log td');
    assert.match(await admin.textContent('#webhook-log'), /connect/);
    const rows = await admin.$$eval('#webhook-log tr.call', (trs) => trs.map((tr) => ({
      height: tr.getBoundingClientRect().height,
      ms: tr.querySelector('td.num').textContent,
    })));
    assert.ok(rows.length >= 3, JSON.stringify(rows));
    for (const r of rows) {
      assert.ok(r.height < 40, 'one line per call: ' + JSON.stringify(r));
      assert.match(r.ms, /^\d+\.\d$/);
    }
    assert.ok(rows.some((r) => r.ms !== '0.0'), 'durations are measured: ' + JSON.stringify(rows));
    await admin.selectOption('#filter-hook', 'disconnect');
    await admin.waitForFunction(() => {
      const hooks = [...document.querySelectorAll('#webhook-log tr.call td:nth-child(2)')].map((td) => td.textContent);
      return hooks.length === 1 && hooks[0] === 'disconnect';
    });
    await admin.selectOption('#filter-hook', '');
    await admin.fill('#filter-text', 'late-comer');
    await admin.waitForFunction(() => document.querySelectorAll('#webhook-log tr.call').length === 0);
    // A call made while the view is open shows up by itself: an /sse stream opens on a new
    // channel (connect and create_channel webhooks).
    const stream = new AbortController();
    const sse = await fetch(`${hookbox.url}/sse?channel=late-comer`, {
      headers: { Accept: 'text/event-stream' }, signal: stream.signal,
    });
    assert.equal(sse.status, 200);
    await admin.waitForFunction(() => document.querySelectorAll('#webhook-log tr.call').length > 0);

    // The stream counts in the overview's transport cards, as in /metrics.
    await admin.goto(`${hookbox.url}/admin/#/`);
    await admin.waitForFunction(() => document.getElementById('transport-sse')
      && document.getElementById('transport-sse').textContent === '1');
    stream.abort();

    // On a phone-sized screen nothing is wider than the window.
    await admin.setViewportSize({ width: 420, height: 800 });
    for (const hash of ['#/', '#/webhooks', '#/channels']) {
      await admin.goto(`${hookbox.url}/admin/${hash}`);
      await admin.waitForSelector('#view > *');
      const widths = await admin.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
      assert.ok(widths[0] <= widths[1], hash + ': ' + JSON.stringify(widths));
    }
  } finally {
    pageServer.close();
  }
});
