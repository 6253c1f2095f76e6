#!/usr/bin/env bash
# Runs every hookbox test on a fresh machine: installs what the tests need (Debian's Chromium for
# the browser tests, the npm packages that drive it, django-hookbox 0.3 and its Python 2.7
# dependencies from PyPI), checks formatting and lints, then runs the Rust unit and integration
# tests, django-hookbox's own test suite against the binary, and the headless-browser tests.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing ${missing[*]} (apt)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy"
cargo clippy --all-targets --locked -- -D warnings

echo "==> cargo test"
cargo test --all-targets --locked

cargo build --locked --bin hookbox

echo "==> django-hookbox 0.3 (PyPI) test suite against hookbox"
DJANGO_TEST_NO_BUILD=1 bash tests/django/run.sh

echo "==> browser tests (headless Chromium)"
(
  cd tests/browser
  npm ci --no-audit --no-fund --loglevel=error
  npm test
)
