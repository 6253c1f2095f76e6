#!/usr/bin/env bash
# Re-runs both security audits' attacks against hookbox, each as a test that performs the attack
# on a real server over loopback and asserts its bound (docs/security.md lists the threats). They
# are the `security` area of the test binary, plus the TLS tests:
#
#   first audit   tests/it/security/csp.rs       CSP comets that never read, the session table,
#                                                X-Forwarded-For, JSONP and script gadgets
#                 tests/it/security/history.rs   history poisoning, publish_multi
#                 tests/it/security/webhooks.rs  SSRF through pollers and webhooks, guessed
#                                                CONNECTs on one socket, client-chosen X-Real-IP,
#                                                webhook slots
#                 tests/it/security/demo.rs      the demo's cookie, channels and interface
#   second audit  tests/it/security/floods.rs    repeated recover, SUBSCRIBE floods, guessed
#                                                cookies across sockets and transports, wrong API
#                                                tokens
#                 tests/it/security/http.rs      slow second requests, header sizes, plain HTTP
#                                                connections per address, /sse CSRF, console
#                                                lockout, IPv6 /64, console cookie, forged logs
#                 tests/it/transports/tls.rs     TLS handshakes that never come, the console cookie
#
# Usage: scripts/attacks.sh            the memory engine, and Redis too if redis-server is here
#        HOOKBOX_TEST_REDIS_URL=redis://… scripts/attacks.sh   Redis at that URL
set -euo pipefail
cd "$(dirname "$0")/.."

run() { cargo test --locked --test it -- security:: transports::tls::; }

echo "==> attacks on the memory engine"
run

redis_pid=""
cleanup() { if [ -n "$redis_pid" ]; then kill "$redis_pid" 2>/dev/null || true; fi; }
trap cleanup EXIT
if [ -z "${HOOKBOX_TEST_REDIS_URL:-}" ] && command -v redis-server >/dev/null 2>&1; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
  redis_pid=$!
  for _ in $(seq 100); do redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
  export HOOKBOX_TEST_REDIS_URL="redis://127.0.0.1:$port"
fi
if [ -n "${HOOKBOX_TEST_REDIS_URL:-}" ]; then
  echo "==> attacks on the Redis engine ($HOOKBOX_TEST_REDIS_URL)"
  HOOKBOX_TEST_ENGINE=redis run
else
  echo "==> no redis-server: the Redis engine's run is skipped"
fi
