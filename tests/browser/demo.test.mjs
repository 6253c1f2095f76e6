// The built-in demo as a newcomer uses it: two tabs, each with its own name, chatting, with
// presence and history.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { mkdirSync } from 'node:fs';
import { startHookbox, launchBrowser, repo } from './harness.mjs';

let hookbox;
let browser;

before(async () => {
  hookbox = await startHookbox(['--demo', '--demo-port', '0']);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await hookbox?.stop();
});

test('two tabs chat with presence and history', async () => {
  const demo = `http://127.0.0.1:${hookbox.ports.demo}/`;
  const context = await browser.newContext();
  const alice = await context.newPage();
  await alice.goto(demo);
  await alice.waitForFunction(() => document.getElementById('me').textContent.includes('-'));
  const name = await alice.textContent('#me');

  // A second tab of the same browser, as a newcomer would open it, is a second user.
  const bob = await context.newPage();
  await bob.goto(demo);
  await bob.waitForFunction(() => document.getElementById('me').textContent.includes('-'));
  const bobName = await bob.textContent('#me');
  assert.notEqual(name, bobName);

  // Presence: each sees both names.
  await alice.waitForFunction((n) => document.getElementById('presence').textContent.includes(n), bobName);
  await bob.waitForFunction((n) => document.getElementById('presence').textContent.includes(n), name);

  // A message with non-ASCII text travels both ways.
  await alice.fill('#text', 'héllo ☃ 😀');
  await alice.click('#send');
  await bob.waitForFunction(() => document.getElementById('log').textContent.includes('héllo ☃ 😀'));
  await alice.waitForFunction(() => document.getElementById('log').textContent.includes('héllo ☃ 😀'));
  mkdirSync(path.join(repo, 'docs', 'screenshots'), { recursive: true });
  await alice.screenshot({ path: path.join(repo, 'docs', 'screenshots', 'demo.png') });

  // An empty message is refused by the demo's publish webhook, and the page says so.
  await bob.evaluate(() => { document.getElementById('text').value = '   '; });
  await bob.click('#send');

  // History: a third visitor sees the earlier message.
  const late = await (await browser.newContext()).newPage();
  await late.goto(demo);
  await late.waitForFunction(() => document.getElementById('log').textContent.includes('héllo ☃ 😀'));

  // Leaving updates presence for the others.
  await bob.close();
  await alice.waitForFunction((n) => !document.getElementById('presence').textContent.includes(n), bobName);
});
