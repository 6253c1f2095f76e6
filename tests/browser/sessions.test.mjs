// An HttpOnly session cookie (the default of Django, Rails, Laravel…) reaches the connect
// webhook over every transport in real Chromium, although the page's script cannot read it: the
// WebSocket upgrade, the CSP handshake (withCredentials) and the EventSource request carry the
// browser's cookies, and hookbox forwards them for pages on the web app's origin. A page on
// another origin of the same host (cookies ignore ports, so the browser sends the session
// there too) gets nothing of it.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import { startHookbox, launchBrowser, startWebApp } from './harness.mjs';

const pages = {};
let web;
let hookbox;
let browser;
let foreign;

/** The page: logs in (the web app sets an HttpOnly session), then connects over `transport`. */
const page = (transport) => `<!doctype html><meta charset="utf-8"><title>t</title>
<script src="${hookbox.url}/static/hookbox.js"></script>
<script>
  window.result = null;
  window.visible = document.cookie;
  if (${JSON.stringify(transport)} === 'sse') {
    const events = new EventSource('${hookbox.url}/sse?channel=feed', { withCredentials: true });
    events.addEventListener('CONNECTED', (e) => { window.result = ['open', JSON.parse(e.data).name]; });
    events.onerror = () => { if (!window.result) window.result = ['error', 'refused']; events.close(); };
  } else {
    const conn = hookbox.connect('${hookbox.url}', null, undefined,
      { transport: ${JSON.stringify(transport)}, reconnect: false });
    conn.onOpen = (args) => { window.result = ['open', args.name, conn.transportName]; };
    conn.onError = (args) => { window.result = ['error', args.msg]; };
  }
</script>`;

before(async () => {
  web = await startWebApp({
    hooks: {
      connect: (form, headers) => {
        const m = /(?:^|; )session=([^;]+)/.exec(headers.cookie || '');
        return m ? [true, { name: m[1] }] : [false, { error: 'no session' }];
      },
      create_channel: () => [true, { moderated: false }],
    },
    pages,
  });
  // Webhooks to the web app: its origin may hand its cookies over (no --allowed-origins needed).
  hookbox = await startHookbox(['--cbport', String(web.port)]);
  // The same pages from another port of the same host: another origin.
  foreign = http.createServer((req, res) => {
    const p = pages[new URL(req.url, 'http://x').pathname];
    res.writeHead(p ? 200 : 404, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(p ? p.html : '');
  });
  foreign.listen(0, '127.0.0.1');
  await once(foreign, 'listening');
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await hookbox?.stop();
  await web?.close();
  foreign?.close();
});

async function visit(url, user, transport) {
  pages[`/${transport}`] = { html: page(transport) };
  pages['/login'] = {
    headers: { 'Set-Cookie': `session=${user}; Path=/; HttpOnly; SameSite=Lax` },
    html: '<!doctype html><title>logged in</title>',
  };
  const context = await browser.newContext();
  const tab = await context.newPage();
  await tab.goto(`${web.url}/login`);
  await tab.goto(`${url}/${transport}`);
  await tab.waitForFunction(() => window.result !== null, null, { timeout: 20000 });
  const got = await tab.evaluate(() => ({ result: window.result, visible: window.visible }));
  await context.close();
  return got;
}

for (const transport of ['websocket', 'csp', 'sse']) {
  test(`an HttpOnly session reaches the connect webhook over ${transport}`, async () => {
    const user = `user-${transport}`;
    const { result, visible } = await visit(web.url, user, transport);
    assert.equal(visible, '', 'the script cannot see the session');
    assert.deepEqual(result.slice(0, 2), ['open', user]);
    if (transport !== 'sse') assert.equal(result[2], transport);
    const connect = web.calls.filter((c) => c.form.action === 'connect').at(-1);
    assert.match(connect.headers.cookie, new RegExp(`(^|; )session=${user}(;|$)`));
  });

  test(`a page on another origin gets nothing of the session over ${transport}`, async () => {
    const { result } = await visit(`http://127.0.0.1:${foreign.address().port}`, 'victim', transport);
    if (transport === 'sse') {
      // Refused before any webhook: the stream does not open.
      assert.deepEqual(result, ['error', 'refused']);
    } else {
      assert.deepEqual(result, ['error', 'no session']);
    }
    assert.ok(!web.calls.some((c) => /session=victim/.test(c.headers.cookie || '')),
      'no webhook saw the session');
  });
}
