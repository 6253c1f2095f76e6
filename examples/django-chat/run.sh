#!/usr/bin/env bash
# The hookbox chat example, in one command:
#
#     examples/django-chat/run.sh
#
# then open http://127.0.0.1:8000/ and log in as alice / wonderland (staff: may announce) or
# bob / builder. It makes a virtualenv under target/ with Django and the Python SDK
# (pip install './sdk/python[django]'), migrates a SQLite database under target/django-chat/,
# creates the two users, and starts the Django app and hookbox (built with cargo, release).
# Ctrl-C stops both.
#
# Environment: DJANGO_PORT (8000), HOOKBOX_PORT (8001); HOOKBOX_BIN to run a hookbox binary
# you built instead of building one; CHAT_STATE_DIR (target/django-chat: database and secrets),
# CHAT_VENV (target/django-chat-venv).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
django_port="${DJANGO_PORT:-8000}"
hookbox_port="${HOOKBOX_PORT:-8001}"
state="${CHAT_STATE_DIR:-$repo/target/django-chat}"
venv="${CHAT_VENV:-$repo/target/django-chat-venv}"
export PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1

mkdir -p "$state"
if [ ! -x "$venv/bin/python" ]; then
  "${PYTHON:-python3}" -m venv "$venv"
fi
(cd "$repo" && "$venv/bin/pip" install --quiet 'django>=4.2' './sdk/python[django]')

if [ -n "${HOOKBOX_BIN:-}" ]; then
  hookbox="$HOOKBOX_BIN"
else
  cargo build --release --bin hookbox --manifest-path "$repo/Cargo.toml"
  hookbox="$repo/target/release/hookbox"
fi

# Secrets made once and kept with the database: Django's key, the Web API token (-r) and the
# webhook secret (-s, in the Standard Webhooks form: whsec_<base64>).
secret() {
  local file="$state/$1"
  if [ ! -s "$file" ]; then
    (umask 077 && "$venv/bin/python" -c "$2" > "$file")
  fi
  cat "$file"
}
export DJANGO_SETTINGS_MODULE=chatsite.settings
export DJANGO_SECRET_KEY="$(secret django-secret-key 'import secrets; print(secrets.token_urlsafe(50))')"
export HOOKBOX_API_TOKEN="$(secret api-token 'import secrets; print(secrets.token_urlsafe(32))')"
export HOOKBOX_WEBHOOK_SECRET="$(secret webhook-secret 'import base64, os; print("whsec_" + base64.b64encode(os.urandom(32)).decode())')"
export HOOKBOX_URL="http://127.0.0.1:$hookbox_port"
export CHAT_DB="$state/db.sqlite3"

cd "$here"
"$venv/bin/python" manage.py migrate --noinput --verbosity 0
"$venv/bin/python" manage.py demo_users

pids=()
stop() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop EXIT INT TERM

# Waits until something listens on port $1 (bounded; fails if nothing does within a minute).
wait_for_port() {
  "$venv/bin/python" - "$1" <<'PY'
import socket, sys, time
port, deadline = int(sys.argv[1]), time.monotonic() + 60
while True:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        break
    except OSError:
        if time.monotonic() > deadline:
            sys.exit(f"nothing listens on port {port}")
        time.sleep(0.1)
PY
}

# The Django app first, so that hookbox finds it answering.
"$venv/bin/python" manage.py runserver "127.0.0.1:$django_port" --noreload --skip-checks &
pids+=($!)
wait_for_port "$django_port"
"$hookbox" -i 127.0.0.1 -p "$hookbox_port" --cbport "$django_port" \
  --allowed-origins "http://127.0.0.1:$django_port" \
  -r "$HOOKBOX_API_TOKEN" -s "$HOOKBOX_WEBHOOK_SECRET" &
pids+=($!)
wait_for_port "$hookbox_port"
echo "Chat ready: open http://127.0.0.1:$django_port/ and log in as alice / wonderland or bob / builder"
wait -n
