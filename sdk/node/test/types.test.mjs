// The hand-written declarations compile, accept what the SDK accepts and refuse what it
// refuses (test/types/usage.ts, each @ts-expect-error must be an error), as installed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const here = path.dirname(fileURLToPath(import.meta.url));

test('tsc --strict on types/usage.ts', async () => {
  const tsc = path.join(here, 'node_modules', 'typescript', 'bin', 'tsc');
  await promisify(execFile)(process.execPath, [tsc, '-p', path.join(here, 'types', 'tsconfig.json')])
    .catch((e) => assert.fail(`tsc:\n${e.stdout}${e.stderr}`));
});
