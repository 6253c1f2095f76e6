#!/usr/bin/env bash
# Starts the example: the Express app (server.mjs) and hookbox, wired together, until Ctrl-C.
#
#   examples/express/run.sh            then open http://127.0.0.1:8000/ (alice / wonderland)
#
# Environment (all optional):
#   APP_PORT (8000), HOOKBOX_PORT (8001)      where the app and hookbox listen, on 127.0.0.1
#   HOOKBOX_BIN                               a built hookbox binary; default: built by cargo --release
#   HOOKBOX_API_TOKEN, HOOKBOX_WEBHOOK_SECRET shared by the two; default: fresh random ones
#                                             (the secret in the Standard Webhooks form, whsec_…)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
APP_PORT="${APP_PORT:-8000}"
HOOKBOX_PORT="${HOOKBOX_PORT:-8001}"
random() { node -e "process.stdout.write(require('crypto').randomBytes(24).toString('base64'))"; }
export HOOKBOX_API_TOKEN="${HOOKBOX_API_TOKEN:-$(random)}"
export HOOKBOX_WEBHOOK_SECRET="${HOOKBOX_WEBHOOK_SECRET:-whsec_$(random)}"

# A relative HOOKBOX_BIN is relative to where the script was started.
[ -z "${HOOKBOX_BIN:-}" ] || HOOKBOX_BIN="$(realpath -m "$HOOKBOX_BIN")"
cd "$here"
npm ci --no-audit --no-fund --loglevel=error
if [ -z "${HOOKBOX_BIN:-}" ]; then
  # `cargo run --release`, in two steps: the binary then runs as this script's own child, which
  # it can stop.
  cargo build --release --quiet --manifest-path "$repo/Cargo.toml" --bin hookbox
  HOOKBOX_BIN="$repo/target/release/hookbox"
fi

# Ready once something accepts connections on port $1.
started() {
  until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
    for pid in "${pids[@]}"; do
      kill -0 "$pid" 2>/dev/null || { echo "run.sh: a process stopped before it was ready" >&2; exit 1; }
    done
    sleep 0.2
  done
}
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait' EXIT
trap 'exit 130' INT TERM

# The app first, so that hookbox finds it answering.
PORT="$APP_PORT" HOOKBOX_URL="http://127.0.0.1:$HOOKBOX_PORT" node server.mjs &
pids+=($!)
started "$APP_PORT"

# Webhooks go to the app (http://127.0.0.1:APP_PORT/hookbox/<action>); pages of the app's origin
# may use hookbox and hand it their cookies (the HttpOnly session among them).
args=(-i 127.0.0.1 -p "$HOOKBOX_PORT" --cbport "$APP_PORT"
  --allowed-origins "http://127.0.0.1:$APP_PORT" -r "$HOOKBOX_API_TOKEN" -s "$HOOKBOX_WEBHOOK_SECRET")
"$HOOKBOX_BIN" "${args[@]}" &
pids+=($!)
started "$HOOKBOX_PORT"
echo "Ready: open http://127.0.0.1:$APP_PORT/ (alice / wonderland, bob / builder); Ctrl-C stops both"

# Whichever stops first stops the other.
wait -n "${pids[@]}"
