#!/usr/bin/env bash
# bench/peers/socketio.sh PORT CPU — runs Socket.IO 4.8 (npm) on 127.0.0.1:PORT, pinned to CPU,
# in the foreground until killed. Installs the npm package on first use (bench/peers/socketio/).
#   subscribe: ws://127.0.0.1:PORT/socket.io/?EIO=4&transport=websocket, then `40`, then
#              `42["subscribe","CHANNEL"]` (answered `42["subscribed","CHANNEL"]`)
#   data:      `42["message","<the message>"]`
#   publish:   POST http://127.0.0.1:PORT/publish?room=CHANNEL (body = the message)
#   gate=1 in the query: the connection is authorized first by a POST to
#              http://127.0.0.1:$WEBAPP_PORT/connect (a middleware; 2xx lets it in)
set -euo pipefail
PORT="${1:?port}"
CPU="${2:-0}"
# The web app that authorizes `gate=1` connections (the loadgen's).
WEBAPP_PORT="${WEBAPP_PORT:-8090}"
HERE="$(cd "$(dirname "$0")/socketio" && pwd)"
if [[ ! -d "$HERE/node_modules/socket.io" ]]; then
    (cd "$HERE" && npm install --no-audit --no-fund --loglevel=error >/dev/null)
fi
exec taskset -c "$CPU" node "$HERE/server.js" "$PORT" "$WEBAPP_PORT"
