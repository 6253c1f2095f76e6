#!/usr/bin/env bash
# Runs every hookbox test on a fresh machine: installs what the tests need (Debian's Chromium
# and the npm packages that drive it for the browser tests, redis-server and nginx for the
# multi-node tests, django-hookbox 0.3 and its Python 2.7 dependencies from PyPI), checks
# formatting and lints, then runs the Rust unit and integration tests on the memory engine, a
# single Redis, a Redis Cluster and a Sentinel-named master, django-hookbox's own test suite against the binary, the
# headless-browser tests, the server SDKs' test suites (against the real binary and real
# framework servers), and a short smoke run of the benchmark harness.
#
# Every step that fails fails the script. Nothing here needs a fixed port: the usual ones (8000,
# 8001, 8090) are held by a placeholder for the whole run to prove it, and a run must leave the
# checkout as it found it (checked at the end with git status).
set -euo pipefail
cd "$(dirname "$0")/.."

# No incremental compilation caches: a test run builds from scratch once, and those caches are
# gigabytes (docs: README, "Test").
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

checkout_state() {
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git status --porcelain=v1 --untracked-files=all
    git diff HEAD 2>/dev/null | sha256sum
  fi
}
state_before="$(checkout_state)"

# Placeholders on the well-known ports (where free), held until the script exits.
python3 - <<'PY' &
import signal, socket, time
held = []
for port in (8000, 8001, 8090):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        s.listen(1)
        held.append(s)
    except OSError:
        pass
signal.signal(signal.SIGTERM, lambda *_: exit(0))
while True:
    time.sleep(3600)
PY
placeholder=$!

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
# nginx: tests/it/cluster/nginx.rs runs docs/clustering.md's configuration in front of three nodes.
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1 || missing+=(nginx)
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing ${missing[*]} (apt)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy"
cargo clippy --all-targets --locked -- -D warnings

# Private redis-servers on free loopback ports, stopped when this script exits: one Redis, and a
# three-master Redis Cluster.
redis_dir=$(mktemp -d)
# A free loopback port below 55536 whose port + 10000 is free too (a Redis Cluster node's bus port
# is its port + 10000 and must fit in 16 bits).
free_port() {
  python3 - <<'PY'
import random, socket
for _ in range(1000):
    port = random.randrange(20000, 55536)
    socks = []
    try:
        for p in (port, port + 10000):
            s = socket.socket()
            s.bind(("127.0.0.1", p))
            socks.append(s)
    except OSError:
        continue
    finally:
        for s in socks:
            s.close()
    print(port)
    break
PY
}
start_redis() { # [--sentinel-of MASTER_PORT] | extra args...; prints the port it bound
  # With --sentinel-of, a Sentinel (redis-server --sentinel) that knows the master on that port
  # as hookbox-test (tests/it/common/server.rs TEST_SENTINEL_MASTER).
  local port pid dir ready sentinel_of=""
  if [ "${1:-}" = --sentinel-of ]; then sentinel_of=$2; shift 2; fi
  # A free port can be taken between the probe and redis-server's bind, so try a few.
  for _ in 1 2 3 4 5; do
    port=$(free_port)
    dir="$redis_dir/$port"
    mkdir -p "$dir"
    if [ -n "$sentinel_of" ]; then
      printf 'port %s\nbind 127.0.0.1\ndir %s\nsentinel monitor hookbox-test 127.0.0.1 %s 1\n' \
        "$port" "$dir" "$sentinel_of" >"$dir/sentinel.conf"
      redis-server "$dir/sentinel.conf" --sentinel --logfile "$dir/redis.log" >&2 &
    else
      redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
        --logfile "$dir/redis.log" "$@" >&2 &
    fi
    pid=$!
    echo "$pid" >"$dir/redis.pid"
    for _ in $(seq 300); do
      if [ -n "$sentinel_of" ]; then
        ready=$(redis-cli -p "$port" sentinel get-master-addr-by-name hookbox-test 2>/dev/null | grep -c "^$sentinel_of\$" || true)
      else
        ready=$(redis-cli -p "$port" ping 2>/dev/null | grep -c PONG || true)
      fi
      if [ "$ready" = 1 ]; then echo "$port"; return; fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    echo "redis-server on port $port did not start:" >&2
    cat "$dir/redis.log" >&2 || true
    kill "$pid" 2>/dev/null || true
  done
  exit 1
}
stop_redis() {
  for pid in "$redis_dir"/*/redis.pid; do kill "$(cat "$pid")" 2>/dev/null || true; done
  rm -rf "$redis_dir"
}
bench_out=$(mktemp -d)
cleanup() {
  stop_redis
  kill "$placeholder" 2>/dev/null || true
  rm -rf "$bench_out"
}
trap cleanup EXIT
redis_port=$(start_redis)
export HOOKBOX_TEST_REDIS_URL="redis://127.0.0.1:$redis_port"
cluster_urls=()
cluster_nodes=()
for _ in 1 2 3; do
  port=$(start_redis --cluster-enabled yes --cluster-config-file nodes.conf)
  cluster_urls+=("redis://127.0.0.1:$port")
  cluster_nodes+=("127.0.0.1:$port")
done
redis-cli --cluster create "${cluster_nodes[@]}" --cluster-replicas 0 --cluster-yes >/dev/null
for _ in $(seq 100); do
  redis-cli -p "${cluster_nodes[0]##*:}" cluster info | grep -q cluster_state:ok && break
  sleep 0.1
done
export HOOKBOX_TEST_REDIS_CLUSTER
HOOKBOX_TEST_REDIS_CLUSTER=$(IFS=,; echo "${cluster_urls[*]}")
# A master with a replica, and a Sentinel that knows the master.
sentinel_master=$(start_redis)
start_redis --replicaof 127.0.0.1 "$sentinel_master" >/dev/null
export HOOKBOX_TEST_REDIS_SENTINEL
HOOKBOX_TEST_REDIS_SENTINEL="redis://127.0.0.1:$(start_redis --sentinel-of "$sentinel_master")"

echo "==> cargo test (memory engine)"
cargo test --all-targets --locked --no-fail-fast

echo "==> cargo test (redis engine: the same suite against redis-server)"
HOOKBOX_TEST_ENGINE=redis cargo test --all-targets --locked --no-fail-fast

echo "==> cargo test (redis engine: the same suite against a 3-master Redis Cluster)"
HOOKBOX_TEST_ENGINE=redis-cluster cargo test --all-targets --locked --no-fail-fast

echo "==> cargo test (redis engine: the same suite against the master a Redis Sentinel names)"
HOOKBOX_TEST_ENGINE=redis-sentinel cargo test --all-targets --locked --no-fail-fast

cargo build --locked --bin hookbox

echo "==> django-hookbox 0.3 (PyPI) test suite against hookbox"
DJANGO_TEST_NO_BUILD=1 bash tests/django/run.sh

echo "==> Python SDK (sdk/python/test.sh: the installed package against hookbox, Django, Flask, FastAPI)"
HOOKBOX_BIN="$PWD/target/debug/hookbox" sdk/python/test.sh

echo "==> Node SDK (sdk/node/test.sh: the packed package against hookbox and Express)"
HOOKBOX_BIN="$PWD/target/debug/hookbox" sdk/node/test.sh

echo "==> browser tests (headless Chromium)"
(
  cd tests/browser
  npm ci --no-audit --no-fund --loglevel=error
  npm test
)

# The benchmark harness, end to end on a small load against hookbox alone (release builds):
# every run must succeed; its numbers are not checked here (benchmarks are not tests).
echo "==> benchmark harness smoke (bench/race.sh, QUICK)"
QUICK=1 OUT="$bench_out" bench/race.sh

echo "==> the checkout is as the run found it"
state_after="$(checkout_state)"
if [ "$state_before" != "$state_after" ]; then
  echo "the test run changed the checkout:" >&2
  diff <(echo "$state_before") <(echo "$state_after") >&2 || true
  exit 1
fi
