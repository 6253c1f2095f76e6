#!/usr/bin/env bash
# bench/race.sh — hookbox against its peers (Nchan, Pushpin, Socket.IO) on this machine, in one run:
# each workload on every server, interleaved (a round runs every server once), ROUNDS rounds,
# medians. Writes bench/results/race-<date>.md (tables with the ratio hookbox / peer), .csv
# (every repetition) and PNG plots (bench/plot.py, matplotlib in a private venv).
#
# Usage: bench/race.sh                 (the full race, ~75 minutes)
#        QUICK=1 bench/race.sh         (one small round, hookbox only: the CI smoke)
# Exits non-zero if any run failed (each failure's log is shown). Servers listen on free loopback
# ports (run.sh picks them), so a demo or another server on 8001 does not get in the way.
# Environment: ROUNDS=3, WORKLOADS_ONLY="b1k e5k …" (a subset), SERVERS="hookbox
# hookbox+coalesce50 hookbox+csp nchan pushpin socketio"
# (hookbox+coalesceN: hookbox with --write-coalesce-ms N; hookbox+csp: its subscribers on CSP
# long polls instead of WebSocket; hookbox+returning: --leave-grace 10 and resume tickets, which
# the loadgen's clients present when they come back (`e --tickets`); pushpin: HTTP streaming subscribers, pushpin+ws: WebSocket
# over HTTP), OUT (where results go; default bench/results, git-ignored), BENCH_VENV (matplotlib's
# venv; default ~/.cache/hookbox/bench-venv), and run.sh's knobs (HOOKBOX_REV=HEAD races a clean
# export of a commit).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
OUT="${OUT:-$HERE/results}"
mkdir -p "$OUT"
STAMP="$(date +%Y%m%d-%H%M%S)"
CSV="$OUT/race-$STAMP.csv"
MD="$OUT/race-$STAMP.md"
# Each workload: name | servers it runs on ("all": every one of $SERVERS) | loadgen arguments.
if [[ -n "${QUICK:-}" ]]; then
    ROUNDS=1
    SERVERS="${SERVERS:-hookbox}"
    WORKLOADS=(
        "b1k|all|b --subs 200 --rate 20 --duration 2 --warmup 1 --payload 100"
        "a10k|all|a --subs 500 --channels 50"
        "d2k|all|d --connects 200 --concurrency 20"
        "e5k|all|e --subs 300 --spread 0.5"
    )
    export QUIET_WAIT=5 QUIET_PCT=100
else
    ROUNDS="${ROUNDS:-3}"
    SERVERS="${SERVERS:-hookbox hookbox+coalesce50 hookbox+csp hookbox+returning nchan pushpin socketio}"
    WORKLOADS=(
        "b1k|all|b --subs 1000 --rate 100 --duration 10 --warmup 2 --payload 100"
        "b1k-r50|hookbox nchan socketio|b --subs 1000 --rate 50 --duration 10 --warmup 2 --payload 100"
        "b1k-r200|hookbox nchan socketio|b --subs 1000 --rate 200 --duration 10 --warmup 2 --payload 100"
        "b10k|hookbox hookbox+coalesce50 nchan pushpin socketio|b --subs 10000 --rate 5 --duration 10 --warmup 2 --payload 100"
        "c10k|hookbox nchan pushpin socketio|c --subs 10000 --group 10 --rate 500 --duration 10 --warmup 2 --payload 100"
        "a10k|hookbox nchan pushpin socketio|a --subs 10000 --channels 1000"
        "a18k|hookbox nchan pushpin socketio|a --subs 18000 --channels 1000"
        "d2k|hookbox nchan pushpin socketio|d --connects 2000 --concurrency 100"
        "e5k|hookbox hookbox+returning nchan pushpin socketio|e --subs 5000 --spread 1"
    )
fi
WORKLOADS_ONLY="${WORKLOADS_ONLY:-}"

# A revision is resolved once: commits made while the race runs do not change what it measures.
if [[ -n "${HOOKBOX_REV:-}" ]]; then
    HOOKBOX_REV="$(git -C "$HERE/.." rev-parse "$HOOKBOX_REV")"
    export HOOKBOX_REV
fi
# Builds once (hookbox, loadgen); the peers install themselves on first start. A failed build
# stops the race with its output.
if ! build_log="$(REPS=0 "$HERE/run.sh" b --subs 1 --rate 1 --duration 1 2>&1)"; then
    printf '%s\n' "$build_log" >&2
    echo "race.sh: the build failed" >&2
    exit 1
fi
: >"$CSV"
failed=()
for round in $(seq "$ROUNDS"); do
    for wl in "${WORKLOADS[@]}"; do
        IFS='|' read -r name on args <<<"$wl"
        if [[ -n "$WORKLOADS_ONLY" && " $WORKLOADS_ONLY " != *" $name "* ]]; then continue; fi
        for server in $SERVERS; do
            if [[ "$on" != all && " $on " != *" $server "* ]]; then continue; fi
            echo "race.sh: round $round, $name, $server" >&2
            kind="${server%%+*}"
            extra=""
            proto="$kind"
            if [[ "$server" == *+coalesce* ]]; then extra="--write-coalesce-ms ${server##*+coalesce}"; fi
            if [[ "$server" == *+csp ]]; then proto=csp; fi
            wl_args="$args"
            if [[ "$server" == *+returning ]]; then
                extra="--leave-grace 10 --resume-secret race-resume-secret-0123456789"
                if [[ "$args" == e\ * ]]; then wl_args="$args --tickets"; fi
            fi
            if [[ "$server" == pushpin+ws ]]; then proto=pushpin-ws; fi
            # Each run's own output goes to a log, shown when the run fails.
            log="$OUT/race-$STAMP.$name.$server.log"
            # shellcheck disable=SC2086
            line="$(SERVER="$kind" PROTO="$proto" HOOKBOX_ARGS="$extra" REPS=1 SKIP_BUILD=1 \
                "$HERE/run.sh" $wl_args 2>"$log" | grep '^rep1 RESULT ' || true)"
            if [[ -z "$line" ]]; then
                echo "race.sh: $name on $server failed; the end of $log:" >&2
                tail -n 20 "$log" | sed 's/^/    /' >&2
                failed+=("$name on $server")
                continue
            fi
            # CSV: round, workload, server, then key=value pairs.
            echo "$round,$name,$server,${line#rep1 RESULT }" >>"$CSV"
        done
    done
done
PY="${PYTHON:-python3}"
# matplotlib in a private venv outside the checkout, made once; the smoke run draws no plots.
VENV="${BENCH_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/hookbox/bench-venv}"
if [[ -z "${QUICK:-}" && ! -x "$VENV/bin/python" ]]; then
    "$PY" -m venv "$VENV" && "$VENV/bin/pip" install -q matplotlib >/dev/null 2>&1 || true
fi
if [[ -z "${QUICK:-}" && -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c 'import matplotlib' 2>/dev/null; then
    PY="$VENV/bin/python"
fi
"$PY" "$HERE/plot.py" "$CSV" "$MD"
echo "race.sh: $MD" >&2
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "race.sh: ${#failed[@]} run(s) failed: ${failed[*]}" >&2
    exit 1
fi
