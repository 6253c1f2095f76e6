#!/usr/bin/env bash
# Refreshes the pictures in docs/screenshots/ from the browser tests that take them (the admin
# console and the demo). The test command (scripts/test.sh) writes its screenshots to a
# temporary folder instead, so that a test run leaves the checkout as it found it.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked --bin hookbox
cd tests/browser
npm ci --no-audit --no-fund --loglevel=error
HOOKBOX_SCREENSHOTS=docs/screenshots node --test --test-concurrency=1 admin.test.mjs demo.test.mjs
