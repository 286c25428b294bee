#!/usr/bin/env bash
# Pins the kiosk's runtime dependencies (pyproject.toml's [project] dependencies and all that
# they pull in) with sha256 hashes, once for each kind of machine a kiosk runs on:
#
#   deploy/requirements-aarch64.lock  Raspberry Pi OS Bookworm 64-bit (Python 3.11, glibc 2.36),
#                                     with the raspios extra (simplejpeg)
#   deploy/requirements-x86_64.lock   a Debian 12 x86-64 PC (Python 3.11, glibc 2.36)
#
# deploy/install.sh installs from them, `make` installs the x86-64 one into the test venv
# before anything else, and `make test-pi` builds its emulated Pi (tests/pi/make-root.sh) from
# the aarch64 one, so what is tested is what a kiosk installs. Run this after changing a
# dependency in pyproject.toml and commit both files (tests/test_locks.py fails until then).
# Needs the package index; uv (pinned below) resolves for the target platform from this host.
set -euo pipefail
UV_VERSION=0.13.9
cd "$(dirname "$0")/.."
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
python3 -m venv "$tools/venv"
"$tools/venv/bin/pip" install --quiet "uv==$UV_VERSION"
export UV_CACHE_DIR="$tools/cache"

lock() {  # platform output [uv options]
  "$tools/venv/bin/uv" pip compile pyproject.toml --no-config --quiet --python-version 3.11 \
    --python-platform "$1" --generate-hashes --custom-compile-command deploy/lock.sh "${@:3}" -o "$2.new"
  mv "$2.new" "$2"
  echo "wrote $2 ($(grep -cE '^[A-Za-z0-9]' "$2") packages)"
}
lock aarch64-manylinux_2_36 deploy/requirements-aarch64.lock --extra raspios
lock x86_64-manylinux_2_36 deploy/requirements-x86_64.lock
