// The built-in demo as a newcomer uses it: two tabs, each with its own name, chatting, with
// presence and history.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { startHookbox, launchBrowser, screenshotPath } from './harness.mjs';

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
  // The demo's session is an HttpOnly cookie, as a real app's: the page cannot read it, and it
  // reached the demo's connect webhook all the same.
  assert.equal(await alice.evaluate(() => document.cookie), '');

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
  await alice.screenshot({ path: screenshotPath('demo.png') });

  // An empty message is refused by the demo's publish webhook, and the page says so.
  await bob.evaluate(() => { document.getElementById('text').value = '   '; });
  await bob.click('#send');
  await bob.waitForFunction(() => document.getElementById('error').textContent === 'Not sent: Empty message');
  // So is one over 2,000 characters (messages used to be cut at 500 without a word).
  await bob.fill('#text', 'y'.repeat(2001));
  await bob.click('#send');
  await bob.waitForFunction(() => document.getElementById('error').textContent === 'Not sent: Message too long: 2001 characters (at most 2000)');

  // A 2,000-character word wraps: the page is no wider than the window, presence stays in view.
  const word = 'w'.repeat(2000);
  await alice.fill('#text', word);
  await alice.click('#send');
  await bob.waitForFunction((w) => document.getElementById('log').textContent.includes(w), word);
  const layout = await bob.evaluate(() => ({
    page: document.documentElement.scrollWidth,
    window: window.innerWidth,
    presenceRight: document.getElementById('presence').getBoundingClientRect().right,
  }));
  assert.ok(layout.page <= layout.window, JSON.stringify(layout));
  assert.ok(layout.presenceRight <= layout.window, JSON.stringify(layout));

  // History: a third visitor sees the earlier message.
  const late = await (await browser.newContext()).newPage();
  await late.goto(demo);
  await late.waitForFunction(() => document.getElementById('log').textContent.includes('héllo ☃ 😀'));
  await late.close();

  // hookbox restarts: each tab reconnects by itself, over WebSocket, with its own name (a tab
  // used to come back with the name of whichever tab loaded last), both in presence.
  const ports = hookbox.ports;
  await hookbox.stop();
  await alice.waitForFunction(() => /^(connection lost|reconnecting)/.test(document.getElementById('status').textContent));
  hookbox = await startHookbox(['--demo', '--demo-port', String(ports.demo), '-p', String(ports.main)]);
  const backAs = (tab, me, other) => tab.waitForFunction(([me, other]) => {
    const presence = document.getElementById('presence').textContent;
    return document.getElementById('me').textContent === me
      && document.getElementById('status').textContent === 'connected via websocket'
      && presence.includes(me) && presence.includes(other);
  }, [me, other], { timeout: 60000 });
  await backAs(alice, name, bobName);
  await backAs(bob, bobName, name);
  // The page says why the conversation is gone (it was in the restarted hookbox's memory).
  await alice.waitForFunction(() => document.getElementById('log').textContent.includes('hookbox restarted'));

  // A 70,000-character message: the page refuses it before sending.
  await bob.fill('#text', 'z'.repeat(70000));
  await bob.click('#send');
  await bob.waitForFunction(() => document.getElementById('error').textContent
    === 'Not sent: Message too long: 70000 characters (at most 2000)');
  // Sent anyway (a page without that check): hookbox refuses it with an ERROR that says why,
  // instead of closing the socket; the tab stays connected under its own name.
  await bob.evaluate(() => window.demoConnection.publish('lobby', { text: 'z'.repeat(70000) }));
  await bob.waitForFunction(() => document.getElementById('error').textContent
    .startsWith('Not sent: Message too large: '));
  assert.equal(await bob.textContent('#me'), bobName);
  assert.equal(await bob.textContent('#status'), 'connected via websocket');

  // Leaving updates presence for the others.
  await bob.close();
  await alice.waitForFunction((n) => !document.getElementById('presence').textContent.includes(n), bobName);
});
