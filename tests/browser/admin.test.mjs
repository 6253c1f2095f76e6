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

    // The webhook log lists the calls, the secret-free form among them.
    await admin.goto(`${hookbox.url}/admin/#/webhooks`);
    await admin.waitForSelector('#webhook-log td');
    assert.match(await admin.textContent('#webhook-log'), /connect/);
  } finally {
    pageServer.close();
  }
});
