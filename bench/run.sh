#!/usr/bin/env bash
# bench/run.sh — run one benchmark workload against hookbox, REPS times, and print the medians.
#
# Usage:
#   bench/run.sh WORKLOAD [loadgen workload options…]
#
#   WORKLOAD   a  idle footprint       e.g. bench/run.sh a --subs 10000 --channels 1000
#              b  broadcast fan-out    e.g. bench/run.sh b --subs 1000 --rate 1000 --duration 10 --warmup 2 --payload 100
#              c  many small channels  e.g. bench/run.sh c --subs 10000 --group 10 --rate 1000 --duration 10
#              d  webhook-gated conns  e.g. bench/run.sh d --connects 2000 --concurrency 100
#              e  reconnect storm      e.g. bench/run.sh e --subs 5000 --spread 1
#              r  rolling restart      e.g. ENGINE=redis NODES=2 HOOKBOX_ARGS="--leave-grace 10 --resume-secret S"
#                                           bench/run.sh r --subs 10000  (hookbox only: node 1 gets SIGTERM)
#   Options after WORKLOAD go to `loadgen WORKLOAD` (see `bench/loadgen/target/release/loadgen b --help`).
#
# What it does:
#   1. builds hookbox (`cargo build --release` in the repo root) and bench/loadgen (release);
#   2. for each repetition: starts a fresh hookbox pinned to CPU $SERVER_CPU
#      (`taskset -c 0 hookbox -i 127.0.0.1 -p $PORT -r $TOKEN --cbport $HOOK_PORT`, `ulimit -n $NOFILE`),
#      runs the loadgen pinned to CPU $LOADGEN_CPU (it also serves the webhooks on $HOOK_PORT),
#      then stops hookbox;
#   3. prints every repetition's RESULT line and a MEDIAN line (per-field median over the repetitions).
#
# Environment (defaults):
#   REPS=3  PORT, HOOK_PORT, REDIS_PORT: free loopback ports (PORT: the first of NODES + 1 free
#   ones in a row)  TOKEN=benchtoken  NOFILE=20000
#   SERVER_CPU=0  LOADGEN_CPU=1  RUN_TIMEOUT=900 (seconds per repetition)
#   SKIP_BUILD=1      do not rebuild
#   HOOKBOX_REV=HEAD  build that git revision (exported with `git archive` under $OUT/src-<sha>,
#                     own target dir) instead of the working tree — for a stable, recorded build
#                     while the working tree is being edited
#   QUIET_PCT=15 QUIET_WAIT=300  before each repetition wait (at most QUIET_WAIT s) until the
#                     machine's other CPU use is below QUIET_PCT % of one core
#   HOOKBOX_ARGS=…    extra hookbox flags        LOADGEN_ARGS=…  extra global loadgen flags
#   ENGINE=memory     or `redis`: a fresh private redis-server (pinned to $SERVER_CPU too, its
#                     CPU and RSS counted as the server's) on $REDIS_PORT per repetition
#   NODES=1           hookbox nodes on $PORT, $PORT+1, … (NODES > 1 needs ENGINE=redis); the
#                     subscribers are spread over them, the publisher posts to the first
#   SERVER=hookbox    or a peer from bench/peers/: `nchan` (nginx + Nchan, Debian), `pushpin`
#                     (Pushpin + zurl, Debian; the loadgen's web app is its GRIP backend) or
#                     `socketio` (Socket.IO 4.8, npm); started the same way (pinned to
#                     $SERVER_CPU, fresh per repetition; CPU and RSS summed over its process
#                     tree) and spoken to with `--proto $SERVER`
#   PROTO=$SERVER     the loadgen's protocol; PROTO=csp speaks to hookbox over CSP (long polls)
#   OUT=bench/results where logs and result lines are written (git-ignored)
#
# Everything stays on 127.0.0.0/8; every run is bounded in time and stops by itself.
set -euo pipefail

if [[ $# -lt 1 || "$1" == -h || "$1" == --help ]]; then
    sed -n '2,45p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
fi
WL="$1"
shift
case "$WL" in a | b | c | d | e | r) ;; *)
    echo "run.sh: unknown workload '$WL' (a, b, c, d, e or r)" >&2
    exit 2
    ;;
esac

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
REPS="${REPS:-3}"
NODES="${NODES:-1}"

# The first of `$1` loopback ports in a row that are free now.
free_ports() {
    python3 - "$1" <<'PY'
import random, socket, sys
n = int(sys.argv[1])
for _ in range(1000):
    base = random.randrange(20000, 60000 - n)
    socks = []
    try:
        for port in range(base, base + n):
            s = socket.socket()
            s.bind(("127.0.0.1", port))
            socks.append(s)
    except OSError:
        continue
    finally:
        for s in socks:
            s.close()
    print(base)
    break
else:
    sys.exit("run.sh: no free ports")
PY
}
# Free ports by default, so that a server already on a well-known port (the demo on 8001, a
# Redis) does not fail the run. Pushpin also listens on PORT+1.
PORT="${PORT:-$(free_ports $((NODES + 1)))}"
HOOK_PORT="${HOOK_PORT:-$(free_ports 1)}"
TOKEN="${TOKEN:-benchtoken}"
NOFILE="${NOFILE:-20000}"
SERVER_CPU="${SERVER_CPU:-0}"
LOADGEN_CPU="${LOADGEN_CPU:-1}"
RUN_TIMEOUT="${RUN_TIMEOUT:-900}"
OUT="${OUT:-$HERE/results}"
QUIET_PCT="${QUIET_PCT:-15}"
QUIET_WAIT="${QUIET_WAIT:-300}"
ENGINE="${ENGINE:-memory}"
SERVER="${SERVER:-hookbox}"
PROTO="${PROTO:-$SERVER}"
case "$SERVER" in hookbox | nchan | pushpin | socketio) ;; *)
    echo "run.sh: SERVER must be hookbox, nchan, pushpin or socketio" >&2
    exit 2
    ;;
esac
REDIS_PORT="${REDIS_PORT:-$(free_ports 1)}"
case "$ENGINE" in memory | redis) ;; *)
    echo "run.sh: ENGINE must be memory or redis" >&2
    exit 2
    ;;
esac
if (( NODES > 1 )) && [[ "$ENGINE" != redis ]]; then
    echo "run.sh: NODES > 1 needs ENGINE=redis" >&2
    exit 2
fi
LG="$HERE/loadgen/target/release/loadgen"
if [[ -n "${HOOKBOX_REV:-}" ]]; then
    SHA="$(git -C "$ROOT" rev-parse --short=12 "$HOOKBOX_REV")"
    SRC="$OUT/src-$SHA"
    BUILD_DESC="git $SHA (clean export)"
else
    SRC="$ROOT"
    BUILD_DESC="working tree at $(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- src Cargo.toml 2>/dev/null || echo '+local changes')"
fi
HB="$SRC/target/release/hookbox"

if [[ -z "${SKIP_BUILD:-}" ]]; then
    echo "run.sh: building hookbox ($BUILD_DESC) and loadgen (release)…" >&2
    if [[ -n "${HOOKBOX_REV:-}" && ! -f "$SRC/Cargo.toml" ]]; then
        mkdir -p "$SRC"
        git -C "$ROOT" archive "$SHA" | tar -x -C "$SRC"
    fi
    (cd "$SRC" && cargo build --release --quiet --bin hookbox)
    cargo build --release --quiet --manifest-path "$HERE/loadgen/Cargo.toml"
fi
[[ -x "$HB" && -x "$LG" ]] || { echo "run.sh: missing $HB or $LG" >&2; exit 1; }
# REPS=0: build only (race.sh does this once before its runs).
if (( REPS == 0 )); then exit 0; fi

mkdir -p "$OUT"
STAMP="$(date +%Y%m%d-%H%M%S)"
TAG="$STAMP-$WL$(printf '%s' "$*" | tr -c 'A-Za-z0-9=.-' '_' | cut -c1-60)"
RESULTS="$OUT/$TAG.txt"
: >"$RESULTS"

# Busy ticks of the whole machine (all CPUs, not idle/iowait).
busy_ticks() { awk '/^cpu /{ print $2+$3+$4+$7+$8+$9; exit }' /proc/stat; }

# Wait until the machine is quiet: other work (compiles, tests) skews latency and CPU figures.
wait_quiet() {
    local hz waited=0 quiet=0 b0 b1 pct
    hz="$(getconf CLK_TCK)"
    while :; do
        b0="$(busy_ticks)"; sleep 1; b1="$(busy_ticks)"
        pct=$(( (b1 - b0) * 100 / hz ))
        waited=$((waited + 1))
        if (( pct <= QUIET_PCT )); then quiet=$((quiet + 1)); else quiet=0; fi
        if (( quiet >= 3 )); then
            (( waited <= 3 )) || echo "run.sh: machine quiet after ${waited}s" >&2
            echo "$pct"; return 0
        fi
        if (( waited >= QUIET_WAIT )); then
            echo "run.sh: machine still busy (${pct}% of a core) after ${waited}s; running anyway" >&2
            echo "$pct"; return 0
        fi
        if (( waited % 30 == 0 )); then echo "run.sh: waiting for a quiet machine (${pct}% of a core busy)…" >&2; fi
    done
}

port_open() { curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/" 2>/dev/null; }

# PIDs of this repetition's hookbox nodes and redis-server.
HB_PIDS=()
REDIS_PID=""
stop_hookbox() {
    local pid
    for pid in "${HB_PIDS[@]}" $REDIS_PID; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${HB_PIDS[@]}" $REDIS_PID; do
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    HB_PIDS=()
    REDIS_PID=""
}
trap stop_hookbox EXIT INT TERM

start_redis() {
    local log="$1"
    if redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
        echo "run.sh: something already listens on 127.0.0.1:$REDIS_PORT" >&2
        exit 1
    fi
    taskset -c "$SERVER_CPU" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' \
        --appendonly no >"$log" 2>&1 &
    REDIS_PID=$!
    for _ in $(seq 100); do
        redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && return 0
        sleep 0.1
    done
    echo "run.sh: redis-server did not start; see $log" >&2
    exit 1
}

start_peer() {
    local log="$1"
    if port_open "$PORT"; then
        echo "run.sh: something already listens on 127.0.0.1:$PORT" >&2
        exit 1
    fi
    # The peer scripts exec the server (pushpin.sh supervises its processes): $! is the root of
    # the server's process tree.
    (ulimit -n "$NOFILE" && WEBAPP_PORT="$HOOK_PORT" exec "$HERE/peers/$SERVER.sh" "$PORT" "$SERVER_CPU") >"$log.0" 2>&1 &
    HB_PIDS+=($!)
    for _ in $(seq 300); do
        # Pushpin publishes on PORT+1 (its handler may come up after condure).
        if port_open "$PORT" && { [[ "$SERVER" != pushpin ]] || port_open $((PORT + 1)); }; then
            return 0
        fi
        kill -0 "${HB_PIDS[-1]}" 2>/dev/null || break
        sleep 0.1
    done
    echo "run.sh: $SERVER did not start; see $log.0" >&2
    exit 1
}

start_hookbox() {
    local log="$1" n port engine_args=()
    if [[ "$SERVER" != hookbox ]]; then
        start_peer "$log"
        return
    fi
    if [[ "$ENGINE" == redis ]]; then
        start_redis "$log.redis"
        engine_args=(--engine redis --redis-url "redis://127.0.0.1:$REDIS_PORT")
    fi
    # Every loadgen client comes from loopback: lift the per-address connection bound (where
    # the build has it: HOOKBOX_REV may name an older one).
    if "$HB" --help 2>/dev/null | grep -q -- --max-connections-per-ip; then
        engine_args+=(--max-connections-per-ip 1000000)
    fi
    if [[ "$PROTO" == csp ]]; then
        # Every loadgen session comes from one address: lift the per-address CSP quota.
        engine_args+=(--csp-max-sessions 20000 --csp-max-sessions-per-ip 20000)
    fi
    for n in $(seq 0 $((NODES - 1))); do
        port=$((PORT + n))
        if port_open "$port"; then
            echo "run.sh: something already listens on 127.0.0.1:$port" >&2
            exit 1
        fi
        # The subshell execs taskset, which execs hookbox: $! is hookbox's PID.
        # shellcheck disable=SC2086
        # The loadgen's thousands of clients share a few loopback addresses: the per-address
        # bound on CONNECTs in flight and refused (--max-failed-connects-per-ip) would throttle
        # them as one crowd behind one address.
        (ulimit -n "$NOFILE" && exec taskset -c "$SERVER_CPU" "$HB" -i 127.0.0.1 -p "$port" \
            -r "$TOKEN" --cbport "$HOOK_PORT" --max-failed-connects-per-ip 1000000 \
            "${engine_args[@]}" ${HOOKBOX_ARGS:-}) >"$log.$n" 2>&1 &
        HB_PIDS+=($!)
        for _ in $(seq 100); do
            port_open "$port" && continue 2
            kill -0 "${HB_PIDS[-1]}" 2>/dev/null || break
            sleep 0.1
        done
        echo "run.sh: hookbox did not start; see $log.$n" >&2
        exit 1
    done
}

if [[ "$SERVER" == hookbox ]]; then
    DESC="hookbox: $BUILD_DESC, engine $ENGINE, $NODES node(s)"
else
    DESC="peer: $SERVER"
fi
echo "run.sh: workload $WL, $REPS repetitions, $DESC, loadgen args: $*" | tee -a "$RESULTS" >&2
for rep in $(seq "$REPS"); do
    busy_before="$(wait_quiet)"
    start_hookbox "$OUT/$TAG.hookbox.$rep.log"
    sleep 0.5
    set +e
    server_args=()
    for pid in "${HB_PIDS[@]}" $REDIS_PID; do server_args+=(--server-pid "$pid"); done
    for n in $(seq 1 $((NODES - 1))); do server_args+=(--extra-port $((PORT + n))); done
    # shellcheck disable=SC2086
    (ulimit -n "$NOFILE" && exec taskset -c "$LOADGEN_CPU" timeout "$RUN_TIMEOUT" "$LG" \
        "${server_args[@]}" --proto "$PROTO" --port "$PORT" --webhook-port "$HOOK_PORT" --token "$TOKEN" \
        ${LOADGEN_ARGS:-} "$WL" "$@") >"$OUT/$TAG.loadgen.$rep.out" 2>"$OUT/$TAG.loadgen.$rep.err"
    rc=$?
    set -e
    stop_hookbox
    sed 's/^/    /' "$OUT/$TAG.loadgen.$rep.err" >&2
    line="$(grep '^RESULT ' "$OUT/$TAG.loadgen.$rep.out" || true)"
    if [[ $rc -ne 0 || -z "$line" ]]; then
        echo "run.sh: repetition $rep failed (exit $rc)" | tee -a "$RESULTS" >&2
        continue
    fi
    echo "rep$rep $line busy_before_pct=$busy_before" | tee -a "$RESULTS"
    # Let TIME_WAIT sockets and the allocator settle between repetitions.
    sleep 2
done

# Per-field median over the repetitions (numeric fields; others: first value).
grep '^rep[0-9]* RESULT ' "$RESULTS" | awk '
{
    rows++
    for (i = 3; i <= NF; i++) {
        eq = index($i, "="); k = substr($i, 1, eq - 1); v = substr($i, eq + 1)
        if (!(k in seen)) { seen[k] = 1; order[++n] = k }
        vals[k, ++cnt[k]] = v
    }
}
END {
    if (rows == 0) { print "run.sh: no successful repetition" > "/dev/stderr"; exit 1 }
    out = "MEDIAN(" rows ")"
    for (j = 1; j <= n; j++) {
        k = order[j]; c = cnt[k]; num = 1
        for (i = 1; i <= c; i++) { a[i] = vals[k, i]; if (a[i] !~ /^-?[0-9]+(\.[0-9]+)?$/) num = 0 }
        if (num) {
            for (i = 2; i <= c; i++) { y = a[i]; m = i - 1; while (m > 0 && a[m] + 0 > y + 0) { a[m + 1] = a[m]; m-- } a[m + 1] = y }
            med = (c % 2) ? a[(c + 1) / 2] : (a[c / 2] + a[c / 2 + 1]) / 2
        } else med = a[1]
        out = out " " k "=" med
    }
    print out
}' | tee -a "$RESULTS"
echo "run.sh: results in $RESULTS" >&2
