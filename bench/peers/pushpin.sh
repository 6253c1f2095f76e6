#!/usr/bin/env bash
# bench/peers/pushpin.sh PORT CPU — runs Pushpin (Debian `pushpin`: condure + pushpin-proxy +
# pushpin-handler) with its own zurl on 127.0.0.1:PORT, every process pinned to CPU, in the
# foreground until killed (TERM stops them all).
#   subscribe: GET http://127.0.0.1:PORT/stream?id=CHANNEL[,CHANNEL2…] — HTTP streaming, held
#              by the GRIP backend on 127.0.0.1:$GRIP_PORT (the loadgen's web app, default 8090)
#              with `Grip-Hold: stream`; or ws://127.0.0.1:PORT/sub?id=… — WebSocket-over-HTTP
#              to the same backend, which answers OPEN with a `subscribe` control message per
#              channel
#   data:      each publication is one line of the stream / one WebSocket text message
#   publish:   POST http://127.0.0.1:$((PORT + 1))/publish/ with {"items":[{"channel":"CHANNEL",
#              "formats":{"http-stream":{"content":"…\r\n"},"ws-message":{"content":"…"}}}]}
# Installs the package if missing (apt, through sudo when not root). Rate and queue limits are
# raised (defaults 2,500 messages/s and 25,000 queued would cap the fan-out under test).
set -euo pipefail
PORT="${1:?port}"
CPU="${2:-0}"
GRIP_PORT="${WEBAPP_PORT:-8090}"
PUB_PORT=$((PORT + 1))
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v pushpin >/dev/null || ! command -v zurl >/dev/null; then
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pushpin >/dev/null
fi
DIR="$(mktemp -d /tmp/pushpin-bench.XXXXXX)"
mkdir -p "$DIR/run" "$DIR/log"
# zurl carries pushpin's requests to the origin; Debian's template denies 127.*, ours does not.
cat >"$DIR/zurl.conf" <<CONF
[General]
in_spec=ipc://$DIR/zurl-in
in_stream_spec=ipc://$DIR/zurl-in-stream
out_spec=ipc://$DIR/zurl-out
defpolicy=allow
allow=
deny=
max_open_requests=20000
buffer_size=200000
timeout=600
in_hwm=20000
out_hwm=20000
CONF
echo "* 127.0.0.1:$GRIP_PORT,over_http" >"$DIR/routes"
cat >"$DIR/pushpin.conf" <<CONF
[global]
include=/usr/lib/pushpin/internal.conf
rundir=$DIR/run
ipc_prefix=pushpin-
port_offset=0
stats_connection_ttl=120

[runner]
services=condure,pushpin-proxy,pushpin-handler
http_port=127.0.0.1:$PORT
logdir=$DIR/log
log_level=1
client_buffer_size=8192
client_maxconn=50000

[proxy]
# Requests to the origin in flight at once (the default, 100, refuses a burst of subscribers).
max_open_requests=20000
routesfile=$DIR/routes
zurl_out_specs=ipc://$DIR/zurl-in
zurl_out_stream_specs=ipc://$DIR/zurl-in-stream
zurl_in_specs=ipc://$DIR/zurl-out
sig_key=changeme
updates_check=off

[handler]
push_in_spec=ipc://$DIR/push-in
push_in_sub_specs=ipc://$DIR/push-in-sub
push_in_sub_connect=false
push_in_http_addr=127.0.0.1
push_in_http_port=$PUB_PORT
push_in_http_max_headers_size=10000
push_in_http_max_body_size=1000000
stats_spec=ipc://$DIR/run/pushpin-stats
command_spec=ipc://$DIR/handler-command
message_rate=100000
message_hwm=1000000
message_wait=5000
id_cache_ttl=60
connection_subscription_max=20
subscription_linger=60
stats_subscription_ttl=60
stats_report_interval=10
stats_format=tnetstring
CONF
stop() {
    kill -TERM "${PIDS[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$DIR"
    exit 0
}
PIDS=()
trap stop TERM INT EXIT
taskset -c "$CPU" zurl --config="$DIR/zurl.conf" >"$DIR/log/zurl.out" 2>&1 &
PIDS+=($!)
taskset -c "$CPU" pushpin --config="$DIR/pushpin.conf" --merge-output >"$DIR/log/pushpin.out" 2>&1 &
PIDS+=($!)
# Ready when both the client port and the publish port answer; the caller waits for PORT.
wait -n "${PIDS[@]}" || true
echo "pushpin.sh: a process ended; logs:" >&2
tail -n 20 "$DIR"/log/*.out >&2 || true
