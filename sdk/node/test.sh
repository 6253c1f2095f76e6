#!/usr/bin/env bash
# The tests of hookbox-sdk, run on the package as a user installs it (packed with `npm pack`,
# the tarball installed into the test project sdk/node/test/), against the real hookbox binary
# (HOOKBOX_BIN, default <repo>/target/debug/hookbox), a real Express app and a real WebSocket
# client. Exits non-zero if any test fails. Leaves the checkout as it found it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
HOOKBOX_BIN="${HOOKBOX_BIN:-$repo/target/debug/hookbox}"
# Absolute: the tests run from another folder.
HOOKBOX_BIN="$(realpath -m "$HOOKBOX_BIN")"
export HOOKBOX_BIN
if [ ! -x "$HOOKBOX_BIN" ]; then
  echo "test.sh: no hookbox binary at $HOOKBOX_BIN: run 'cargo build --bin hookbox' or set HOOKBOX_BIN" >&2
  exit 1
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

cd "$here/test"
npm ci --no-audit --no-fund --loglevel=error
# The package as published: whatever `files` and `exports` leave out, the tests do not see.
tarball="$(cd "$here" && npm pack --pack-destination "$tmp" --loglevel=error | tail -n 1)"
npm install --no-save --no-audit --no-fund --loglevel=error "$tmp/$tarball"

node --test --test-concurrency=1 --test-reporter=spec "$@" ./*.test.mjs
