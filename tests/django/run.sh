#!/usr/bin/env bash
# Run the unmodified test suite of django-hookbox 0.3 (`manage.py test
# djhookbox`) against our hookbox binary. Exits with the test run's status.
#
# Env:
#   HOOKBOX_BIN           hookbox binary to test (default: target/debug/hookbox,
#                         built with `cargo build --bin hookbox` first)
#   DJANGO_TEST_NO_BUILD  set to 1 to skip the cargo build of the default binary
#   DJANGO_TEST_TIMEOUT   seconds before the test run is killed (default 300)
#   PYTHON27              python2.7 interpreter to use (default: auto-detect)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

# Pinned Python 2.7 packages: Django 1.3.7, django-hookbox 0.3, and the last
# testfixtures release supporting Python 2.7. django-hookbox's dependency on
# the Python hookbox server is deliberately not installed (--no-deps).
PKGS=(Django==1.3.7 django-hookbox==0.3 testfixtures==6.18.5)
# Downloaded distributions are cached here (sdists as published: building
# wheels would need `wheel`, and Django 1.3's wheel misplaces its data files).
DIST="$ROOT/target/django-cache/dist-py27"

die() { echo "tests/django/run.sh: $*" >&2; exit 2; }

# Run pip quietly (pip 19 for Python 2.7 nags on every call); show its
# output only if it fails.
pip_quiet() {
    local out
    if ! out="$("$PY" -m pip "$@" 2>&1)"; then
        printf '%s\n' "$out" >&2
        die "pip $1 failed"
    fi
}

# --- find a working Python 2.7 (pyenv shims exist but may refuse to run) ---
find_python27() {
    local cand
    local pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}"
    for cand in ${PYTHON27:+"$PYTHON27"} python2.7 "$pyenv_root"/versions/2.7*/bin/python2.7; do
        if command -v "$cand" >/dev/null 2>&1 &&
           "$cand" -c 'import sys; assert sys.version_info[:2] == (2, 7)' >/dev/null 2>&1; then
            # Resolve shims to the real interpreter.
            "$cand" -c 'import sys; print(sys.executable)'
            return 0
        fi
    done
    return 1
}
PY="$(find_python27)" || die "no working Python 2.7 found (tried \$PYTHON27, python2.7 on PATH, \${PYENV_ROOT:-\$HOME/.pyenv}/versions/2.7*/bin/python2.7)"
echo "== python: $PY"

# --- the hookbox binary under test ---
if [[ -z "${HOOKBOX_BIN:-}" ]]; then
    if [[ "${DJANGO_TEST_NO_BUILD:-0}" != 1 ]]; then
        (cd "$ROOT" && cargo build --quiet --bin hookbox)
    fi
    HOOKBOX_BIN="$ROOT/target/debug/hookbox"
fi
[[ "$HOOKBOX_BIN" == /* ]] || HOOKBOX_BIN="$PWD/$HOOKBOX_BIN"
[[ -x "$HOOKBOX_BIN" ]] || die "hookbox binary not found or not executable: $HOOKBOX_BIN"
echo "== hookbox: $HOOKBOX_BIN"

# --- download cache under target/ (fetched from PyPI once, offline after) ---
have_dists() {
    [[ -f "$DIST/Django-1.3.7.tar.gz" && -f "$DIST/django-hookbox-0.3.tar.gz" ]] &&
    compgen -G "$DIST/testfixtures-6.18.5-*.whl" >/dev/null
}
if ! have_dists; then
    echo "== downloading ${PKGS[*]} into $DIST"
    mkdir -p "$DIST"
    dl="$(mktemp -d "$DIST.XXXXXX")"
    pip_quiet download --quiet --no-cache-dir --no-deps -d "$dl" "${PKGS[@]}"
    mv -f "$dl"/* "$DIST"/ && rmdir "$dl"
    have_dists || die "pip did not download the expected files into $DIST"
fi

# --- temporary environment ---
TMP="$(mktemp -d "${TMPDIR:-/tmp}/djhookbox-tests.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
SITE="$TMP/site"
BIN="$TMP/bin"
mkdir -p "$SITE" "$BIN"

echo "== installing into $SITE"
pip_quiet install --quiet --no-cache-dir --no-compile --no-index \
    --find-links "$DIST" --no-deps --target "$SITE" "${PKGS[@]}"

# runhookbox and the tests start `dirname(sys.executable)/hookbox`, so run
# manage.py through a `python` symlink that sits next to a `hookbox` wrapper.
ln -s "$PY" "$BIN/python"
ln -s "$PY" "$BIN/python2.7"
cat > "$BIN/hookbox" <<EOF
#!/usr/bin/env bash
# Drop HOOKBOX_* settings from the environment so only the command line
# (as built by djhookbox's runhookbox) configures the server.
for v in \$(compgen -e); do [[ \$v == HOOKBOX_* ]] && unset "\$v"; done
exec $(printf '%q' "$HOOKBOX_BIN") "\$@"
EOF
chmod +x "$BIN/hookbox"

# --- run the suite (the project dir is copied so no .pyc lands in the repo) ---
cp -R "$HERE/project" "$TMP/project"
echo "== running: manage.py test djhookbox"
set +e
(
    set -o pipefail
    cd "$TMP/project"
    export PYTHONPATH="$SITE" PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
    unset PYTHONHOME DJANGO_SETTINGS_MODULE
    timeout --kill-after=10 "${DJANGO_TEST_TIMEOUT:-300}" \
        "$BIN/python" manage.py test djhookbox --noinput --verbosity=2 2>&1 | tee "$TMP/output"
)
status=$?
set -e
# A suite that found no tests also says OK: require all nine of djhookbox's tests.
if [[ $status -eq 0 ]] && ! { grep -qx 'Ran 9 tests in .*' "$TMP/output" && grep -qx 'OK' "$TMP/output"; }; then
    echo "tests/django/run.sh: expected 'Ran 9 tests' and 'OK' from manage.py test djhookbox" >&2
    status=1
fi
if [[ $status -eq 124 || $status -eq 137 ]]; then
    echo "tests/django/run.sh: test run timed out after ${DJANGO_TEST_TIMEOUT:-300}s" >&2
fi
echo "== django-hookbox tests exit status: $status"
exit "$status"
