// examples/django-chat as a visitor uses it: the example's own run script on free ports, two users
// logging in through Django's login form in Chromium, chatting and announcing. The browser
// connects with nothing but `hookbox.connect(url)`: the connect webhook names the user from the
// HttpOnly Django session cookie, which the page's script cannot read, so a name on the page
// proves the browser's real cookie reached the webhook.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { launchBrowser, repo, screenshotPath } from './harness.mjs';

let chat;
let browser;
let state;

async function freePort() {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  await once(server, 'close');
  return port;
}

/** Starts examples/django-chat/run.sh; resolves when it says the chat is ready. */
async function startChat() {
  const djangoPort = await freePort();
  const hookboxPort = await freePort();
  state = mkdtempSync(path.join(os.tmpdir(), 'django-chat-'));
  const child = spawn(path.join(repo, 'examples', 'django-chat', 'run.sh'), [], {
    env: {
      ...process.env,
      DJANGO_PORT: String(djangoPort),
      HOOKBOX_PORT: String(hookboxPort),
      HOOKBOX_BIN: process.env.HOOKBOX_BIN || path.join(repo, 'target', 'debug', 'hookbox'),
      CHAT_STATE_DIR: state,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // its own process group: run.sh, Django and hookbox stop together
  });
  let output = '';
  const waiters = [];
  const onData = (chunk) => {
    output += chunk;
    waiters.splice(0).forEach((w) => w());
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const exited = once(child, 'exit');
  const ready = new RegExp(`Chat ready: open http://127\\.0\\.0\\.1:${djangoPort}/`);
  await new Promise((resolve, reject) => {
    // The first run installs Django and the SDK into target/django-chat-venv.
    const guard = setTimeout(() => reject(new Error('the chat did not start:\n' + output)), 300000);
    exited.then(([code]) => reject(new Error(`run.sh exited with ${code}:\n${output}`)));
    const check = () => {
      if (ready.test(output)) {
        clearTimeout(guard);
        resolve();
      } else {
        waiters.push(check);
      }
    };
    check();
  });
  return {
    url: `http://127.0.0.1:${djangoPort}`,
    output: () => output,
    /** Resolves once the example's output matches `pattern`. */
    waitForOutput(pattern) {
      return new Promise((resolve, reject) => {
        const guard = setTimeout(() => reject(new Error(`no ${pattern} in:\n${output}`)), 15000);
        const check = () => {
          if (pattern.test(output)) {
            clearTimeout(guard);
            resolve();
          } else {
            waiters.push(check);
          }
        };
        check();
      });
    },
    async stop() {
      if (child.exitCode === null) {
        process.kill(-child.pid, 'SIGTERM');
        await exited;
      }
    },
  };
}

before(async () => {
  chat = await startChat();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await chat?.stop();
  if (state) rmSync(state, { recursive: true, force: true });
});

async function logIn(name, password) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(chat.url + '/');
  await page.waitForSelector('#id_username'); // Django's login_required sent us to the form
  await page.fill('#id_username', name);
  await page.fill('#id_password', password);
  await page.click('#login');
  await page.waitForFunction((n) => document.getElementById('me')?.textContent === n, name);
  await page.waitForFunction(() => document.getElementById('status')?.textContent === 'connected via websocket');
  return { context, page };
}

const logText = (page) => page.evaluate(() => document.getElementById('log').textContent);

test('two users log in with Django, chat and get an announcement over hookbox', async () => {
  const alice = await logIn('alice', 'wonderland');

  // The session cookie is HttpOnly: the page's script cannot see it, yet the connect webhook
  // named the user from it (the browser sent it with the WebSocket, hookbox forwarded it).
  const session = (await alice.context.cookies()).find((c) => c.name === 'sessionid');
  assert.ok(session && session.httpOnly, 'Django set an HttpOnly sessionid');
  assert.ok(!(await alice.page.evaluate(() => document.cookie)).includes('sessionid'));
  await chat.waitForOutput(/connect: alice, by the session cookie \(sessionid present\)/);

  const bob = await logIn('bob', 'builder');
  await chat.waitForOutput(/connect: bob, by the session cookie \(sessionid present\)/);
  for (const { page } of [alice, bob]) {
    await page.waitForFunction(() => {
      const here = document.getElementById('presence').textContent;
      return here.includes('alice') && here.includes('bob');
    });
  }

  // A message goes through the Django publish hook to both.
  await bob.page.fill('#text', 'hello from bob ☃');
  await bob.page.click('#send');
  await alice.page.waitForFunction(() => document.getElementById('log').textContent.includes('bob: hello from bob ☃'));
  await bob.page.waitForFunction(() => document.getElementById('log').textContent.includes('bob: hello from bob ☃'));

  // The publish hook refuses an empty one, and the page says so.
  await bob.page.evaluate(() => { document.getElementById('text').value = '   '; });
  await bob.page.click('#send');
  await bob.page.waitForFunction(() => document.getElementById('error').textContent === 'Not sent: Empty message');

  // Only staff may announce: the form is alice's, and Django publishes through the Web API.
  assert.equal(await bob.page.$('#announce'), null);
  await alice.page.fill('#announcement', 'Doors close at six');
  await alice.page.click('#announce');
  await bob.page.waitForFunction(() => [...document.querySelectorAll('#log .announcement')]
    .some((p) => p.textContent === 'Announcement from alice: Doors close at six'));
  await alice.page.screenshot({ path: screenshotPath('example-django.png') });

  // History: a newcomer's page shows what was said.
  const late = await logIn('bob', 'builder');
  await late.page.waitForFunction(() => document.getElementById('log').textContent.includes('hello from bob ☃'));
  assert.ok((await logText(late.page)).includes('Doors close at six'));

  // Leaving updates presence for the others.
  await bob.context.close();
  await late.context.close();
  await alice.page.waitForFunction(() => !document.getElementById('presence').textContent.includes('bob'));
  await alice.context.close();
});

test('a visitor without a session is sent to the login form, and a wrong password refused', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(chat.url + '/');
  await page.waitForSelector('#id_username');
  await page.fill('#id_username', 'alice');
  await page.fill('#id_password', 'not-her-password');
  await page.click('#login');
  await page.waitForSelector('#login-error');
  await context.close();
});
