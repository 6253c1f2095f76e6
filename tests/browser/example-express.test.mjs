// examples/express as a newcomer runs it: its one command (run.sh, on free ports, with the built
// binary), the app's own login form in Chromium, a chat between two people. The session cookie
// the app sets is HttpOnly (the page's script cannot see it); the connect webhook reads it all
// the same, because the browser sends it with the WebSocket's upgrade and hookbox forwards it.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { launchBrowser, repo, screenshotPath } from './harness.mjs';

let browser;
let example;
let output = '';

async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Resolves once run.sh's output matches `pattern`. */
function printed(pattern, timeoutMs = 120_000) {
  return new Promise((resolve, reject) => {
    const check = () => {
      if (pattern.test(output)) {
        clearTimeout(timer);
        example.stdout.off('data', check);
        resolve();
      }
    };
    const timer = setTimeout(() => reject(new Error(`run.sh never printed ${pattern}:\n${output}`)), timeoutMs);
    example.stdout.on('data', check);
    check();
  });
}

let appUrl;

before(async () => {
  browser = await launchBrowser();
  const [appPort, hookboxPort] = [await freePort(), await freePort()];
  appUrl = `http://127.0.0.1:${appPort}`;
  example = spawn(path.join(repo, 'examples', 'express', 'run.sh'), [], {
    env: {
      ...process.env,
      APP_PORT: String(appPort),
      HOOKBOX_PORT: String(hookboxPort),
      HOOKBOX_BIN: process.env.HOOKBOX_BIN || path.join(repo, 'target', 'debug', 'hookbox'),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  example.stdout.on('data', (chunk) => { output += chunk; });
  example.stderr.on('data', (chunk) => { output += chunk; });
  await printed(/Ready: open http:\/\/127\.0\.0\.1:\d+\//);
});

after(async () => {
  await browser?.close();
  if (example && example.exitCode === null) {
    const exited = new Promise((resolve) => example.once('exit', resolve));
    example.kill('SIGTERM'); // run.sh stops the app and hookbox it started
    await exited;
  }
});

async function signIn(user, password) {
  const tab = await (await browser.newContext()).newPage();
  await tab.goto(appUrl);
  await tab.fill('input[name=user]', user);
  await tab.fill('input[name=password]', password);
  await tab.click('#login');
  await tab.waitForFunction((name) => document.getElementById('status')?.textContent === `connected to hookbox as ${name}`, user);
  return tab;
}

test('sign in through the app, chat through hookbox on the HttpOnly session', async () => {
  // A wrong password stays on the form.
  const stranger = await (await browser.newContext()).newPage();
  await stranger.goto(appUrl);
  await stranger.fill('input[name=user]', 'alice');
  await stranger.fill('input[name=password]', 'guess');
  await stranger.click('#login');
  await stranger.waitForSelector('#error');
  assert.equal(await stranger.textContent('#error'), 'Wrong name or password.');

  const alice = await signIn('alice', 'wonderland');
  // The session cookie is HttpOnly: invisible to the page's script...
  assert.doesNotMatch(await alice.evaluate(() => document.cookie), /sid=/);
  const [cookie] = await alice.context().cookies(appUrl);
  assert.deepEqual([cookie.name, cookie.httpOnly, cookie.sameSite], ['sid', true, 'Lax']);
  // ...yet the connect webhook saw it (the app logs the names of the cookies it got).
  await printed(/connect webhook: alice \(cookies: sid\)/);

  const bob = await signIn('bob', 'builder');
  await printed(/connect webhook: bob \(cookies: sid\)/);
  await alice.waitForFunction(() => document.getElementById('presence').textContent === 'Here: alice, bob');
  // The app told the room through the Web API.
  await alice.waitForFunction(() => document.getElementById('log').textContent.includes('the app: bob signed in'));

  await alice.fill('#text', 'héllo bob ☃');
  await alice.click('#send');
  await bob.waitForFunction(() => document.getElementById('log').textContent.includes('alice: héllo bob ☃'));
  await bob.fill('#text', 'hi alice');
  await bob.click('#send');
  await alice.waitForFunction(() => document.getElementById('log').textContent.includes('bob: hi alice'));
  // The app's publish webhook refuses an empty message; the page says so.
  await bob.fill('#text', '   ');
  await bob.click('#send');
  await bob.waitForFunction(() => document.getElementById('error').textContent === 'Empty message');
  await alice.screenshot({ path: screenshotPath('example-express.png') });

  // Signing out: bob leaves the room.
  await bob.click('text=Sign out');
  await bob.waitForSelector('#login');
  await alice.waitForFunction(() => document.getElementById('presence').textContent === 'Here: alice');
});
