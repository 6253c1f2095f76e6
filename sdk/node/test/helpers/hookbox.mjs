// The real hookbox binary on a free port: HOOKBOX_BIN, default <repo>/target/debug/hookbox.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
export const binary = process.env.HOOKBOX_BIN || path.join(repo, 'target', 'debug', 'hookbox');

/** Starts hookbox with `args`; resolves once its first line names the port it listens on. */
export async function startHookbox(args = []) {
  const child = spawn(binary, ['-i', '127.0.0.1', '-p', '0', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let output = '';
  const port = await new Promise((resolve, reject) => {
    const onData = (chunk) => {
      output += chunk;
      const first = output.split('\n')[0];
      const match = first.match(/- hookbox - INFO - Listening to hookbox on http:\/\/127\.0\.0\.1:(\d+)/);
      if (match) resolve(Number(match[1]));
      else if (output.includes('\n')) reject(new Error(`hookbox's first line is not where it listens:\n${output}`));
    };
    child.stderr.on('data', onData);
    child.on('error', reject);
    child.on('exit', (code) => reject(new Error(`hookbox exited with ${code}:\n${output}`)));
  });
  child.stderr.on('data', (chunk) => { output += chunk; });
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    output: () => output,
    async stop() {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      await once(child, 'exit');
    },
  };
}
