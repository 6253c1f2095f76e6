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
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing ${missing[*]} (apt)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy"
cargo clippy --all-targets --locked -- -D warnings

# A private redis-server on a free loopback port, stopped when this script exits.
redis_dir=$(mktemp -d)
redis_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$redis_dir" --daemonize yes --pidfile "$redis_dir/redis.pid" --logfile "$redis_dir/redis.log"
trap 'kill "$(cat "$redis_dir/redis.pid" 2>/dev/null)" 2>/dev/null; rm -rf "$redis_dir"' EXIT
for _ in $(seq 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
export HOOKBOX_TEST_REDIS_URL="redis://127.0.0.1:$redis_port"

echo "==> cargo test (memory engine)"
cargo test --all-targets --locked

echo "==> cargo test (redis engine: the same suite against redis-server)"
HOOKBOX_TEST_ENGINE=redis cargo test --all-targets --locked

cargo build --locked --bin hookbox

echo "==> django-hookbox 0.3 (PyPI) test suite against hookbox"
DJANGO_TEST_NO_BUILD=1 bash tests/django/run.sh

echo "==> browser tests (headless Chromium)"
(
  cd tests/browser
  npm ci --no-audit --no-fund --loglevel=error
  npm test
)
