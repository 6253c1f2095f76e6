#!/usr/bin/env bash
# The Python SDK's tests: installs the package as a user would into a virtualenv under target/,
# then runs pytest against the real hookbox binary (HOOKBOX_BIN, default target/debug/hookbox) and
# real Django, Flask and uvicorn servers on free loopback ports. Extra arguments go to pytest.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${SDK_PYTHON_VENV:-$repo/target/sdk-python-venv}"
export HOOKBOX_BIN="${HOOKBOX_BIN:-$repo/target/debug/hookbox}"
export PYTHONDONTWRITEBYTECODE=1
export PIP_DISABLE_PIP_VERSION_CHECK=1

if [ ! -x "$HOOKBOX_BIN" ]; then
  echo "sdk/python/test.sh: no hookbox binary at $HOOKBOX_BIN (cargo build --bin hookbox, or set HOOKBOX_BIN)" >&2
  exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
  "${PYTHON:-python3}" -m venv "$venv"
fi

cd "$repo"
# The package as docs/sdk-python.md says to install it (reinstalled, so the tests see this checkout).
"$venv/bin/pip" install --quiet './sdk/python[django,flask,fastapi]'
"$venv/bin/pip" install --quiet --force-reinstall --no-deps ./sdk/python
"$venv/bin/pip" install --quiet 'pytest>=7' 'websockets>=13' 'uvicorn>=0.22' 'standardwebhooks>=1.0'

cd "$here"
"$venv/bin/python" -m pytest -p no:cacheprovider -q "$@"
