// Every example of docs/sdk-node.md, run as written against the real hookbox: scripts print what
// their `// → …` comments say, servers answer real webhooks, the TypeScript compiles. An example
// without a check here fails the test.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startHookbox, repo } from './helpers/hookbox.mjs';
import { RtjpClient } from './helpers/rtjp.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
// Inside the test project, so that `import 'hookbox-sdk'` finds the installed package.
const dir = path.join(here, '.doc-examples');
const TOKEN = 'doc-token';
const examples = new Map();
const checked = new Set();
let hookbox;

before(async () => {
  const page = readFileSync(path.join(repo, 'docs', 'sdk-node.md'), 'utf8');
  for (const [, lang, code] of page.matchAll(/^```(js|ts)\n([\s\S]*?)^```/gm)) {
    const name = /^\/\/ (\S+\.(?:mjs|ts))\b/.exec(code)?.[1];
    assert.ok(name, `a ${lang} example without a "// <file>" first line:\n${code}`);
    examples.set(name, code);
  }
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir);
  for (const [name, code] of examples) writeFileSync(path.join(dir, name), code);
  hookbox = await startHookbox(['-r', TOKEN]);
});

after(async () => {
  await hookbox?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** The lines an example's `// → …` comments promise, in order. */
const promised = (name) => [...examples.get(name).matchAll(/\/\/ → (.*)$/gm)].map((m) => m[1]);

/** Runs a script example to its end; resolves with its stdout lines. */
async function run(name, env) {
  const { stdout } = await promisify(execFile)(process.execPath, [path.join(dir, name)], {
    env: { ...process.env, ...env }, timeout: 30_000,
  });
  checked.add(name);
  return stdout.trimEnd().split('\n');
}

async function freePort() {
  const server = net.createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Starts a server example on a free port; resolves once it printed its first line. */
async function serve(name, env) {
  const port = await freePort();
  const child = spawn(process.execPath, [path.join(dir, name)], {
    env: { ...process.env, ...env, PORT: String(port) }, stdio: ['ignore', 'pipe', 'inherit'],
  });
  const [first] = await once(child.stdout, 'data');
  assert.match(String(first), new RegExp(`port ${port}`));
  checked.add(name);
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    async stop() {
      child.kill();
      await once(child, 'exit');
    },
  };
}

const clientEnv = () => ({ HOOKBOX_URL: hookbox.url, HOOKBOX_API_TOKEN: TOKEN });

test('publish.mjs', async () => {
  assert.deepEqual(await run('publish.mjs', clientEnv()), promised('publish.mjs'));
});

test('errors.mjs', async () => {
  assert.deepEqual(await run('errors.mjs', clientEnv()), promised('errors.mjs'));
});

test('once.mjs', async () => {
  assert.deepEqual(await run('once.mjs', clientEnv()), promised('once.mjs'));
});

test('webhook-server.mjs: a Standard Webhooks secret, no framework', async () => {
  const secret = `whsec_${Buffer.from('thirty-two bytes of the doc key!').toString('base64')}`;
  const server = await serve('webhook-server.mjs', { HOOKBOX_WEBHOOK_SECRET: secret });
  const hb = await startHookbox(['--cbport', String(server.port), '-s', secret]);
  try {
    const guest = await RtjpClient.connect(hb.url, { payload: { guest: true } });
    assert.match(guest.connected.name, /^guest-[0-9a-f]{6}$/);
    guest.send('SUBSCRIBE', { channel_name: 'news' });
    await guest.next((n, a) => n === 'SUBSCRIBE' && a.channel_name === 'news');
    guest.close();
    const stranger = await RtjpClient.connect(hb.url).catch((e) => e);
    assert.equal(stranger.msg, 'Who are you?');
    // Signed with another secret: 401, shown to the page as a failure.
    await hb.stop();
    const other = await startHookbox(['--cbport', String(server.port), '-s', 'whsec_b3RoZXI=']);
    assert.equal((await RtjpClient.connect(other.url, { payload: { guest: true } }).catch((e) => e)).msg, 'failure: HTTP 401');
    await other.stop();
  } finally {
    await hb.stop();
    await server.stop();
  }
});

test('app.mjs: the Express adapter on the app\'s own HttpOnly session', async () => {
  const secret = 'the doc app secret';
  const app = await serve('app.mjs', { HOOKBOX_WEBHOOK_SECRET: secret });
  const hb = await startHookbox(['--cbport', String(app.port), '-s', secret, '--allowed-origins', app.url]);
  try {
    const login = await fetch(`${app.url}/login`, { method: 'POST', body: new URLSearchParams({ user: 'alice', password: 'x' }) });
    const cookie = login.headers.get('set-cookie');
    assert.match(cookie, /^sid=[\w-]+; Path=\/; HttpOnly; SameSite=Lax$/);
    const sid = cookie.split(';')[0];
    // As a browser on the app's page: its Origin, and the HttpOnly cookie on the upgrade only.
    const alice = await RtjpClient.connect(hb.url, { cookie_string: '', headers: { Origin: app.url, Cookie: sid } });
    assert.equal(alice.connected.name, 'alice');
    alice.send('SUBSCRIBE', { channel_name: 'chat' });
    const [, own] = await alice.next((n, a) => n === 'SUBSCRIBE' && a.channel_name === 'chat');
    assert.deepEqual([own.history_size, own.presence], [20, ['alice']]);
    alice.send('PUBLISH', { channel_name: 'chat', payload: JSON.stringify({ text: '  hello  ' }) });
    assert.deepEqual((await alice.next('PUBLISH'))[1].payload, { text: 'hello' });
    alice.send('PUBLISH', { channel_name: 'chat', payload: JSON.stringify({ text: ' ' }) });
    assert.equal((await alice.next('ERROR'))[1].msg, 'Empty message');
    alice.send('SUBSCRIBE', { channel_name: 'elsewhere' });
    assert.equal((await alice.next('ERROR'))[1].msg, 'No such room');
    alice.close();
    const nobody = await RtjpClient.connect(hb.url, { headers: { Origin: app.url } }).catch((e) => e);
    assert.equal(nobody.msg, 'Please sign in');
  } finally {
    await hb.stop();
    await app.stop();
  }
});

test('decide.ts compiles against the declarations', async () => {
  const tsc = path.join(here, 'node_modules', 'typescript', 'bin', 'tsc');
  await promisify(execFile)(process.execPath, [tsc, '--noEmit', '--strict', '--module', 'nodenext',
    '--moduleResolution', 'nodenext', '--target', 'es2022', '--types', 'node', path.join(dir, 'decide.ts')],
  { cwd: here }).catch((e) => assert.fail(`tsc:\n${e.stdout}${e.stderr}`));
  checked.add('decide.ts');
});

test('every example of the page was run', () => {
  assert.deepEqual([...examples.keys()].filter((name) => !checked.has(name)), []);
  assert.ok(examples.size >= 6);
});
