#!/usr/bin/env bash
# bench/engines.sh — the engine redesign's numbers: broadcast fan-out (workload B) with the
# memory engine before the engine seam and now, and with the Redis engine on 1 node and on 2
# nodes (subscribers spread over them, redis-server's CPU counted as the server's).
#
# Usage: bench/engines.sh [BEFORE_REV] [AFTER_REV]   (defaults: e5a8b37, the last commit before
#        the seam, and HEAD)
# Environment: ROUNDS=3 (each round runs every configuration once, interleaved, so that drift
#        hits all alike), SUBS=1000, RATE=100, REDIS_PORT=6391, and run.sh's knobs.
# Prints one MEDIAN line per configuration (medians over the rounds), as run.sh does.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
BEFORE="${1:-e5a8b37}"
AFTER="${2:-HEAD}"
ROUNDS="${ROUNDS:-3}"
SUBS="${SUBS:-1000}"
RATE="${RATE:-100}"
export REDIS_PORT="${REDIS_PORT:-6391}"
OUT="${OUT:-$HERE/results}"
LOG="$OUT/engines-$(date +%Y%m%d-%H%M%S).txt"
mkdir -p "$OUT"
args=(b --subs "$SUBS" --rate "$RATE" --duration 10 --warmup 2 --payload 100)
configs=("memory-before" "memory-after" "redis-1" "redis-2")
run() { # config
    case "$1" in
        memory-before) HOOKBOX_REV="$BEFORE" ENGINE=memory NODES=1 ;;
        memory-after) HOOKBOX_REV="$AFTER" ENGINE=memory NODES=1 ;;
        redis-1) HOOKBOX_REV="$AFTER" ENGINE=redis NODES=1 ;;
        redis-2) HOOKBOX_REV="$AFTER" ENGINE=redis NODES=2 ;;
    esac
    export HOOKBOX_REV ENGINE NODES
    REPS=1 "$HERE/run.sh" "${args[@]}" | grep '^rep1 RESULT ' | sed "s/^rep1/$1/"
}
# Builds both revisions first (run.sh builds on its first call for a revision).
for c in memory-before memory-after; do
    case "$c" in memory-before) rev="$BEFORE" ;; *) rev="$AFTER" ;; esac
    HOOKBOX_REV="$rev" REPS=0 "$HERE/run.sh" "${args[@]}" >/dev/null 2>&1 || true
done
for round in $(seq "$ROUNDS"); do
    for c in "${configs[@]}"; do
        SKIP_BUILD=1 run "$c" | tee -a "$LOG"
    done
done
for c in "${configs[@]}"; do
    grep "^$c RESULT " "$LOG" | awk -v name="$c" '
    { rows++; for (i = 3; i <= NF; i++) { eq = index($i, "="); k = substr($i, 1, eq - 1)
        if (!(k in seen)) { seen[k] = 1; order[++n] = k }; vals[k, ++cnt[k]] = substr($i, eq + 1) } }
    END { out = name " MEDIAN(" rows ")"
        for (j = 1; j <= n; j++) { k = order[j]; c = cnt[k]; num = 1
            for (i = 1; i <= c; i++) { a[i] = vals[k, i]; if (a[i] !~ /^-?[0-9]+(\.[0-9]+)?$/) num = 0 }
            if (num) { for (i = 2; i <= c; i++) { y = a[i]; m = i - 1; while (m > 0 && a[m] + 0 > y + 0) { a[m + 1] = a[m]; m-- } a[m + 1] = y }
                med = (c % 2) ? a[(c + 1) / 2] : (a[c / 2] + a[c / 2 + 1]) / 2 } else med = a[1]
            out = out " " k "=" med }
        print out }' | tee -a "$LOG"
done
echo "engines.sh: results in $LOG" >&2
