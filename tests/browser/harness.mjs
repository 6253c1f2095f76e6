// Shared pieces of the browser tests: start the real hookbox binary, launch Debian's Chromium
// through playwright-core, and a tiny in-test web application that answers hookbox's webhooks
// and serves test pages.
import { spawn } from 'node:child_process';
import http from 'node:http';
import { once } from 'node:events';
import path from 'node:path';
import os from 'node:os';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repo = path.resolve(here, '..', '..');
const binary = process.env.HOOKBOX_BIN || path.join(repo, 'target', 'debug', 'hookbox');

/**
 * Where the tests' screenshots go: a temporary folder, so that a test run leaves the checkout as
 * it found it. `HOOKBOX_SCREENSHOTS=docs/screenshots npm test` (from the repository root:
 * `scripts/screenshots.sh`) refreshes the documentation's pictures on purpose.
 */
export function screenshotPath(name) {
  const dir = process.env.HOOKBOX_SCREENSHOTS
    ? path.resolve(repo, process.env.HOOKBOX_SCREENSHOTS)
    : path.join(os.tmpdir(), 'hookbox-screenshots');
  mkdirSync(dir, { recursive: true });
  return path.join(dir, name);
}

/** Starts hookbox with `args`; resolves once its startup lines name the bound ports. */
export async function startHookbox(args) {
  const child = spawn(binary, ['-i', '127.0.0.1', '-p', '0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const ports = {};
  await new Promise((resolve, reject) => {
    const guard = setTimeout(() => reject(new Error('hookbox did not start:\n' + output)), 15000);
    const onData = (chunk) => {
      output += chunk;
      const main = output.match(/Listening to hookbox on http:\/\/[\d.]+:(\d+)/);
      const demo = output.match(/Demo chat: open http:\/\/127\.0\.0\.1:(\d+)\//);
      if (main) ports.main = Number(main[1]);
      if (demo) ports.demo = Number(demo[1]);
      if (ports.main && (!args.includes('--demo') || ports.demo)) {
        clearTimeout(guard);
        resolve();
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => reject(new Error(`hookbox exited with ${code}:\n${output}`)));
  });
  return {
    ports,
    url: `http://127.0.0.1:${ports.main}`,
    output: () => output,
    async stop() {
      child.kill('SIGTERM');
      await once(child, 'exit');
    },
  };
}

export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
      '--no-first-run', '--disable-component-update', '--disable-sync'],
  });
}

/**
 * An in-test web application: records every webhook (path, headers, form) and answers with
 * `hooks[action](form, headers)` (default `[true, {}]`; may return a promise, to hold a webhook
 * until the test lets it go); serves `pages[path]` as HTML.
 */
export async function startWebApp({ hooks = {}, pages = {} } = {}) {
  const calls = [];
  const waiters = [];
  const server = http.createServer(async (req, res) => {
    let body = '';
    for await (const chunk of req) body += chunk;
    const url = new URL(req.url, 'http://x');
    if (req.method === 'GET' && pages[url.pathname]) {
      const page = pages[url.pathname];
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', ...(page.headers || {}) });
      res.end(page.html);
      return;
    }
    if (req.method !== 'POST') {
      res.writeHead(404);
      res.end();
      return;
    }
    const form = Object.fromEntries(new URLSearchParams(body));
    const call = { path: url.pathname, headers: req.headers, form };
    calls.push(call);
    waiters.splice(0).forEach((w) => w());
    const answer = await (hooks[form.action] || (() => [true, {}]))(form, req.headers);
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(answer));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = server.address().port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    calls,
    /** Resolves with the first recorded call matching `pred`, waiting for it if needed. */
    async waitFor(pred, what = 'webhook') {
      const deadline = Date.now() + 15000;
      for (;;) {
        const found = calls.find(pred);
        if (found) return found;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((resolve) => { waiters.push(resolve); setTimeout(resolve, 1000); });
      }
    },
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); }),
  };
}
