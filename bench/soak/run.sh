#!/usr/bin/env bash
# bench/soak/run.sh — the soak benchmark (not a CI test): two hookbox nodes on a private Redis,
# ~200 recovering WebSocket clients with churn, a Web API publisher, injected webhook failures,
# node2 SIGKILLed and restarted at 1/3, Redis restarted empty at 2/3; every delivery checked
# (lost / duplicated / out of order) and RSS sampled every 10 s. See soak.py for what is checked.
#
# Usage: bench/soak/run.sh                  (10 minutes of load, ~11 minutes in all)
#        DURATION=60 bench/soak/run.sh      (the quick check)
# Environment: DURATION=600 (s of load), CLIENTS=200, CHANNELS=20, RATE=100 (publications/s),
#   CHURN=3 (reconnects/s), FAIL_FRAC=0.05 (injected webhook failures), SEED=1,
#   RESULTS_DIR=docs/bench (soak-<date>.md and soak-<date>-rss.csv go there),
#   SKIP_BUILD=1 (use target/release/hookbox as it is), HOOKBOX_BIN=path (that binary instead), NO_EVENTS=1 (no node kill, no Redis
#   restart: a plain churn soak, e.g. for memory).
# Logs of the nodes and redis-server: bench/soak/out/<date>/ (git-ignored).
# Needs: cargo, python3 (3.11), redis-server (installed with apt-get if missing; run as root).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
DURATION="${DURATION:-600}"
STAMP="$(date +%Y%m%d-%H%M%S)"
OUT="$HERE/out/$STAMP"
RESULTS_DIR="${RESULTS_DIR:-$ROOT/docs/bench}"
mkdir -p "$OUT" "$RESULTS_DIR"

if ! command -v redis-server >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi
if [[ ! -x "$HERE/.venv/bin/python" ]]; then
    python3 -m venv "$HERE/.venv"
fi
"$HERE/.venv/bin/python" -c 'import aiohttp' 2>/dev/null ||
    "$HERE/.venv/bin/pip" install -q 'aiohttp>=3.9,<4'
if [[ -z "${SKIP_BUILD:-}" && -z "${HOOKBOX_BIN:-}" ]]; then
    (cd "$ROOT" && cargo build --release --bin hookbox)
fi
# A private copy: a rebuild of target/ during the soak must not change what node2 restarts with.
cp "${HOOKBOX_BIN:-$ROOT/target/release/hookbox}" "$OUT/hookbox"
COMMIT="$(git -C "$ROOT" rev-parse --short HEAD)"
DIRTY="$(git -C "$ROOT" diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo ', working tree with uncommitted changes under src/')"
if [[ -n "${HOOKBOX_BIN:-}" ]]; then
    BUILT="binary given as HOOKBOX_BIN=$HOOKBOX_BIN (repository HEAD \`$COMMIT\`)"
else
    BUILT="hookbox commit \`$COMMIT\`$DIRTY"
fi
META="$BUILT; binary sha256 \`$(sha256sum "$OUT/hookbox" | cut -c1-16)\`; $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); $(redis-server --version | awk '{print $1, $2, $3}'); load average at start $(cut -d' ' -f1-3 /proc/loadavg); logs in bench/soak/out/$STAMP/."
echo "run.sh: $META" >&2
ulimit -n 65536 2>/dev/null || true
"$HERE/.venv/bin/python" "$HERE/soak.py" --hookbox "$OUT/hookbox" --out "$OUT" \
    --results-dir "$RESULTS_DIR" --stamp "$STAMP" --duration "$DURATION" \
    --clients "${CLIENTS:-200}" --channels "${CHANNELS:-20}" --rate "${RATE:-100}" \
    --churn "${CHURN:-3}" --fail-frac "${FAIL_FRAC:-0.05}" --seed "${SEED:-1}" --meta "$META" \
    ${NO_EVENTS:+--no-events} \
    2>&1 | tee "$OUT/soak.out"
