#!/usr/bin/env bash
# An emulated Raspberry Pi for the tests (tests/pi/): the kiosk's whole runtime for aarch64,
# run with qemu-aarch64 (qemu-user) from this x86-64 host, no binfmt_misc needed.
#
#   tests/pi/make-root.sh [ROOT]           (as root: debootstrap needs it)
#   tests/pi/make-root.sh --check [ROOT]   exit 0 if ROOT is complete and current
#
# ROOT defaults to $MPOX_PI_ROOT, else ~/.cache/mpox-kiosk/pi-root: outside the source tree, whose
# every walk (setuptools' file list on `pip install .`) would otherwise go through its 15,000
# files and out of its absolute links (ROOT/proc -> /proc).
#
# ROOT/           Debian bookworm arm64 (what Raspberry Pi OS Bookworm is built on): its
#                 Python 3.11 and glibc 2.36, from `debootstrap --foreign`; the second stage
#                 needs to run arm64 programs (binfmt_misc), so the packages it downloaded are
#                 unpacked here by hand instead (no maintainer scripts: nothing needs them)
# ROOT/opt/site/  the kiosk's runtime packages for aarch64, exactly deploy/requirements-aarch64.lock
#                 (hash-checked wheels for manylinux_2_17..2_36, i.e. glibc 2.36; sdnotify, pure
#                 Python and published only as source, built here)
# build/pi-native/edge/_native.cpython-311-aarch64-linux-gnu.so (in this checkout)
#                 native/ cross-built with cmake/aarch64-linux-gnu.cmake against ROOT's
#                 Python headers (rebuilt by cmake whenever native/ changes)
#
# ROOT is cached: it is rebuilt only when its key (this script and the lock file) changes, and
# it is used only once complete: built in a temporary folder beside it, stamped, then renamed
# into place. A half-written or stale ROOT (no stamp, another key) is never used: it is built
# anew. Takes about 2 minutes and 600 MB; needs Debian's package archive and PyPI.
#
# Environment: PYTHON (a Python 3.11 with pip; default python3; cmake on PATH),
# PI_SUITE (bookworm).
set -euo pipefail
cd "$(dirname "$0")/../.."
check_only=false
if [ "${1:-}" = --check ]; then check_only=true; shift; fi
ROOT=${1:-${MPOX_PI_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/mpox-kiosk/pi-root}}
PYTHON=${PYTHON:-python3}
SUITE=${PI_SUITE:-bookworm}
LOCK=deploy/requirements-aarch64.lock
PY_TAGS=(--python-version 3.11 --implementation cp --abi cp311)
GLIBC_MINOR=36  # bookworm's glibc 2.36: wheels tagged manylinux_2_17 .. manylinux_2_36 run on it
platforms=()
for minor in $(seq 17 "$GLIBC_MINOR"); do platforms+=(--platform "manylinux_2_${minor}_aarch64"); done

PYBIND11=$(grep -o '"pybind11==[^"]*"' pyproject.toml | tr -d '"')
key=$( { echo "$SUITE $PYBIND11"; cat "$0" "$LOCK"; } | sha256sum | cut -c1-16)
stamp=$ROOT/.pi-root-complete
if $check_only; then  # exit 0 when ROOT is complete and current, else 1 and why; changes nothing
  if [ ! -d "$ROOT" ]; then echo "missing: $ROOT"; exit 1; fi
  if [ ! -f "$stamp" ]; then echo "incomplete: $ROOT has no stamp"; exit 1; fi
  if [ "$(cat "$stamp")" != "$key" ]; then echo "stale: $ROOT was built for key $(cat "$stamp"), now $key"; exit 1; fi
  echo "ready: $ROOT (key $key)"; exit 0
fi
mkdir -p "$(dirname "$ROOT")"
exec 9> "$ROOT.lock"
flock 9  # one builder at a time; a second waits and then finds the root ready

log() { echo "make-root.sh: $*" >&2; }

build_root() {
  local tmp=$1
  log "debootstrap --foreign $SUITE arm64 into $tmp"
  debootstrap --foreign --arch=arm64 --variant=minbase --include=python3.11,libpython3.11-dev \
    "$SUITE" "$tmp" > "$tmp.debootstrap.log" 2>&1 || { tail -20 "$tmp.debootstrap.log" >&2; return 1; }
  rm -f "$tmp.debootstrap.log"
  log "unpacking $(find "$tmp/var/cache/apt/archives" -name '*.deb' | wc -l) packages"
  local deb
  for deb in "$tmp"/var/cache/apt/archives/*.deb; do
    dpkg-deb --fsys-tarfile "$deb" | tar -x --keep-directory-symlink -C "$tmp"
  done
  rm -f "$tmp"/var/cache/apt/archives/*.deb
  if [ ! -x "$tmp/usr/bin/python3.11" ] || [ ! -f "$tmp/usr/include/python3.11/Python.h" ]; then
    log "python3.11 or its headers missing after unpacking"; return 1
  fi

  log "aarch64 wheels from $LOCK"
  # --no-deps: the lock is the whole set; --only-binary=:all: but sdnotify (pure Python, sdist only)
  "$PYTHON" -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes --target "$tmp/opt/site" \
    --only-binary=:all: --no-binary=sdnotify "${platforms[@]}" "${PY_TAGS[@]}" -r "$LOCK"
  # nothing built for the host may slip in: every compiled file must be aarch64
  "$PYTHON" - "$tmp/opt/site" <<'PY'
import pathlib, struct, sys
EM_AARCH64 = 183
for f in pathlib.Path(sys.argv[1]).rglob("*.so*"):
    head = f.read_bytes()[:20] if f.is_file() else b""
    if head[:4] == b"\x7fELF" and struct.unpack("<H", head[18:20])[0] != EM_AARCH64:
        sys.exit(f"make-root.sh: {f} is not an aarch64 binary")
PY
  # pybind11 for the cross build (headers and CMake files), the version pyproject.toml builds with
  "$PYTHON" -m pip install --quiet --disable-pip-version-check --no-deps --target "$tmp/opt/build" "$PYBIND11"
  echo "$key" > "$tmp/.pi-root-complete"
}

if [ "$(cat "$stamp" 2>/dev/null)" != "$key" ]; then
  [ "$(id -u)" = 0 ] || { log "building $ROOT needs root (debootstrap); run: sudo $0 $ROOT"; exit 1; }
  [ -e "$ROOT" ] && log "$ROOT is stale or incomplete: building it anew"
  tmp="$ROOT.tmp"
  rm -rf "$tmp" "$ROOT.old"
  build_root "$tmp"
  [ -e "$ROOT" ] && mv "$ROOT" "$ROOT.old"
  mv "$tmp" "$ROOT"
  rm -rf "$ROOT.old"
  log "$ROOT ready ($(du -sh "$ROOT" | cut -f1))"
fi

# edge._native for aarch64 Python 3.11: cmake keeps it current with native/ (a no-op when unchanged).
# -idirafter: Python.h's <aarch64-linux-gnu/python3.11/pyconfig.h>, after the cross compiler's own headers
abs_root=$(cd "$ROOT" && pwd)
pybind11_dir=$abs_root/opt/build/pybind11/share/cmake/pybind11
cmake --no-warn-unused-cli -S . -B build/pi-native -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake -DCMAKE_BUILD_TYPE=Release \
  -DMPOX_BUILD_EXTENSION=ON -DMPOX_BUILD_TESTS=OFF -DMPOX_SANITIZE=OFF -Dpybind11_DIR="$pybind11_dir" \
  -DPython_EXECUTABLE="$("$PYTHON" -c 'import sys; print(sys.executable)')" \
  -DPython_INCLUDE_DIR="$abs_root/usr/include/python3.11" -DPYTHON_MODULE_EXTENSION=.cpython-311-aarch64-linux-gnu.so \
  -DCMAKE_CXX_FLAGS="-idirafter $abs_root/usr/include" -DCMAKE_LIBRARY_OUTPUT_DIRECTORY="$PWD/build/pi-native/edge" > /dev/null
cmake --build build/pi-native --target _native -j2 > /dev/null
ls build/pi-native/edge/_native.cpython-311-aarch64-linux-gnu.so > /dev/null
