// The README's quick example, run as a newcomer would: its web app (extracted from README.md,
// only its ports changed to free ones), hookbox with the README's flags, the page in Chromium,
// and the README's publish call. The page's session cookie is HttpOnly: it reaches the connect
// webhook all the same.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startHookbox, launchBrowser, repo } from './harness.mjs';

let browser;
let hookbox;
let webapp;

async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Resolves once something accepts connections on `port`. */
async function listening(port) {
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => { s.end(); resolve(true); });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listens on ${port}`);
}

before(async () => {
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await hookbox?.stop();
  webapp?.kill();
});

test("the README's quick example works as written", async () => {
  const readme = readFileSync(path.join(repo, 'README.md'), 'utf8');
  const example = readme.slice(readme.indexOf('## A quick example'));
  const code = /```python\n([\s\S]*?)```/.exec(example)[1];
  const commands = /```sh\n([\s\S]*?)```/.exec(example)[1];
  assert.match(code, /HttpOnly/, 'the example uses an HttpOnly session');
  const appPort = await freePort();
  hookbox = await startHookbox(['--cbport', String(appPort), '-r', 'mytoken']);
  // The README's flags, as written.
  assert.match(commands, /--cbport 8000 -r mytoken/);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'hookbox-readme-'));
  const script = path.join(dir, 'webapp.py');
  writeFileSync(script, code
    .replaceAll('http://127.0.0.1:8001', hookbox.url)
    .replace("('127.0.0.1', 8000)", `('127.0.0.1', ${appPort})`));
  webapp = spawn('python3', [script], { stdio: 'ignore' });
  await listening(appPort);

  const page = await (await browser.newContext()).newPage();
  await page.goto(`http://127.0.0.1:${appPort}/`);
  assert.equal(await page.evaluate(() => document.cookie), '', 'the session is HttpOnly');
  // The README's curl: it answers [true, {}] once the page has subscribed (before, the channel
  // does not exist yet, as the README says).
  const form = new URLSearchParams({
    security_token: 'mytoken', channel_name: 'news', originator: 'newsdesk', payload: '{"text": "hello"}',
  });
  assert.match(commands, /-d security_token=mytoken -d channel_name=news -d originator=newsdesk/);
  assert.match(commands, /--data-urlencode 'payload=\{"text": "hello"\}'/);
  // Polled: nothing else tells when the page has subscribed.
  let answer;
  for (let i = 0; i < 200; i++) {
    const resp = await fetch(`${hookbox.url}/web/publish`, { method: 'POST', body: form });
    answer = await resp.json();
    if (answer[0] === true) break;
    assert.deepEqual(answer, [false, { msg: "Channel news doesn't exist" }]);
    await page.waitForTimeout(50);
  }
  assert.deepEqual(answer, [true, {}]);
  await page.waitForFunction(() => document.body.textContent.includes('newsdesk: {"text":"hello"}'));
});
