#!/usr/bin/env bash
# bench/ab.sh — two hookbox binaries on one workload, interleaved (A, B, A, B, …), so that a change
# is measured against its parent in the same minutes of the same machine.
#
# Usage: bench/ab.sh BINARY_A BINARY_B WORKLOAD [loadgen workload options…]
#   e.g. git stash && cargo build --release && cp target/release/hookbox /tmp/hb-a && git stash pop
#        cargo build --release && cp target/release/hookbox /tmp/hb-b
#        bench/ab.sh /tmp/hb-a /tmp/hb-b d --connects 2000 --concurrency 100
# Prints one line per run (label and the RESULT fields) and each side's medians.
# Environment: REPS=5, SERVER_CPU=0, LOADGEN_CPU=1, NOFILE=20000, HOOKBOX_ARGS (both sides).
# Every server listens on a free loopback port and is stopped after its run.
set -euo pipefail
if [[ $# -lt 3 ]]; then
    sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
A="$1" B="$2"
shift 2
HERE="$(cd "$(dirname "$0")" && pwd)"
LG="$HERE/loadgen/target/release/loadgen"
[[ -x "$LG" ]] || cargo build --release --quiet --manifest-path "$HERE/loadgen/Cargo.toml"
REPS="${REPS:-5}"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

for rep in $(seq "$REPS"); do
    for side in A B; do
        bin="$A"
        [[ "$side" == B ]] && bin="$B"
        port="$(free_port)" hook="$(free_port)"
        # shellcheck disable=SC2086
        (ulimit -n "${NOFILE:-20000}" && exec taskset -c "${SERVER_CPU:-0}" "$bin" -i 127.0.0.1 \
            -p "$port" -r benchtoken --cbport "$hook" --max-failed-connects-per-ip 1000000 \
            --max-connections-per-ip 1000000 ${HOOKBOX_ARGS:-}) >"$OUT/server.log" 2>&1 &
        pid=$!
        for _ in $(seq 100); do
            python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 0.2)" \
                2>/dev/null && break
            sleep 0.1
        done
        line="$( (ulimit -n "${NOFILE:-20000}" && exec taskset -c "${LOADGEN_CPU:-1}" timeout 900 \
            "$LG" --server-pid "$pid" --port "$port" --webhook-port "$hook" --token benchtoken "$@") \
            2>/dev/null | grep '^RESULT ' || true)"
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        [[ -n "$line" ]] || { echo "ab.sh: run $rep of $side failed; server log:" >&2; cat "$OUT/server.log" >&2; exit 1; }
        echo "$side ${line#RESULT }"
        echo "${line#RESULT }" >>"$OUT/$side"
    done
done
# Each side's per-field median.
for side in A B; do
    python3 - "$side" "$OUT/$side" <<'PY'
import statistics, sys
side, path = sys.argv[1], sys.argv[2]
rows = [dict(kv.split("=", 1) for kv in line.split()) for line in open(path)]
out = []
for key in rows[0]:
    try:
        out.append(f"{key}={statistics.median(float(r[key]) for r in rows):g}")
    except ValueError:
        out.append(f"{key}={rows[0][key]}")
print(f"MEDIAN {side} " + " ".join(out))
PY
done
