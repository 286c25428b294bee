#!/usr/bin/env bash
# Installs the mpox screening kiosk from this checkout as a system service, on Raspberry Pi OS
# Bookworm (64-bit) or Debian/Ubuntu x86-64. Safe to run again: that is how to update (the
# program is reinstalled, your config kept, the service restarted).
#
#   sudo deploy/install.sh                      install or update
#   deploy/install.sh --dry-run                 print every action, change nothing
#   sudo deploy/install.sh --uninstall          remove the service and the program; keep config and audit log
#   sudo deploy/install.sh --uninstall --purge  ... and delete the config, the audit log and the secrets too
#   deploy/install.sh --print-config            the kiosk.yaml a new install writes
#
# MPOX_PLATFORM=pi or MPOX_PLATFORM=pc skips detecting the machine (tests; a board not recognised).
# MPOX_MACHINE_ID_FILE reads the machine id from another file than /etc/machine-id (tests).
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=/opt/mpox-kiosk
VENV=$PREFIX/venv                  # ExecStart= in deploy/mpox-kiosk.service runs $VENV/bin/mpox
CONF_DIR=/etc/mpox-kiosk           # ConfigurationDirectory=
CONFIG=$CONF_DIR/kiosk.yaml
STATE_DIR=/var/lib/mpox-kiosk      # StateDirectory=: systemd makes it, owned by the service's user
SERVICE_USER=mpox-kiosk            # User= in the unit
CREDSTORE=/etc/credstore           # where LoadCredential= finds the secrets
SECRETS=(mpox-kiosk.staff-password-hash mpox-kiosk.mqtt-password)
UNIT_DIR=/etc/systemd/system
USER_UNIT_DIR=/etc/systemd/user    # user units for every user: the browser needs the desktop session
KIOSK_UNIT=mpox-kiosk.service
BROWSER_UNIT=mpox-kiosk-browser.service  # the kiosk's screen (a user unit); installed when present

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "install.sh: $*" >&2; exit 1; }

dry_run=false
action=install
purge=false
for arg in "$@"; do
  case $arg in
    --dry-run) dry_run=true ;;
    --uninstall) action=uninstall ;;
    --purge) purge=true ;;
    --print-config) action=print-config ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
if $purge && [ "$action" != uninstall ]; then die "--purge goes with --uninstall"; fi

# Every change to the system goes through run: printed, and done unless --dry-run.
run() {
  printf '+'
  printf ' %q' "$@"
  printf '\n'
  if ! $dry_run; then "$@"; fi
}
note() { echo "# $*"; }

detect_platform() {
  if [ -n "${MPOX_PLATFORM:-}" ]; then
    case $MPOX_PLATFORM in
      pi|pc) echo "$MPOX_PLATFORM"; return ;;
      *) die "MPOX_PLATFORM must be pi or pc, not '$MPOX_PLATFORM'" ;;
    esac
  fi
  local arch model=""
  arch=$(uname -m)
  if [ -r /proc/device-tree/model ]; then model=$(tr -d '\0' < /proc/device-tree/model); fi
  case $model in
    "Raspberry Pi"*)
      [ "$arch" = aarch64 ] || die "$model runs $arch: install Raspberry Pi OS 64-bit (OpenVINO has no 32-bit ARM build)"
      echo pi ;;
    *)
      [ "$arch" = x86_64 ] || die "unsupported machine: $arch${model:+ ($model)}; a Raspberry Pi with 64-bit Raspberry Pi OS, or an x86-64 PC"
      echo pc ;;
  esac
}

# The kiosk's id on the fleet: "kiosk-" and 8 hex digits of a hash of this machine's id, stable
# and unique per machine (every new Pi is called "raspberrypi"), and not the machine id itself
# (hashed with an application prefix, as systemd advises). Without a machine id: the host name.
kiosk_id() {
  local file=${MPOX_MACHINE_ID_FILE:-/etc/machine-id} id=""
  if [ -r "$file" ]; then id=$(tr -d '[:space:]' < "$file"); fi
  if [ -z "$id" ]; then
    echo "install.sh: no machine id in $file: kiosk_id is the host name; make it unique on the fleet" >&2
    hostname
    return
  fi
  printf 'kiosk-%s\n' "$(printf 'mpox-kiosk:%s' "$id" | sha256sum | cut -c1-8)"
}

# deploy/kiosk.example.yaml (every default) with what this machine needs: the state where
# the service may write, this machine's kiosk id, and the camera (the Pi's, or the first V4L2 one).
render_config() {
  local machine="an x86-64 PC"
  if [ "$1" = pi ]; then machine="a Raspberry Pi"; fi
  local edits=(
    -e "1i # Written by deploy/install.sh for $machine: kiosk_id, state_dir and source set here; the rest as shipped."
    -e "s|^kiosk_id: [^ ]*|kiosk_id: \"$(kiosk_id)\"|"
    -e "s|^state_dir: [^ ]*|state_dir: $STATE_DIR|"
  )
  if [ "$1" = pi ]; then  # the ISP scales to a low-res stream: the box is about the model's 224 px (README "Raspberry Pi")
    edits+=(-e '/^source:/,/^[^ ]/{s|^  kind: demo|  kind: picamera2|;s|^  width: 1280|  width: 448|;s|^  height: 720|  height: 336|;}')
  else
    edits+=(-e '/^source:/,/^[^ ]/{s|^  kind: demo|  kind: device|;s|^  # target: /dev/video0|  target: /dev/video0|;}')
  fi
  sed "${edits[@]}" "$SRC/deploy/kiosk.example.yaml"
}

install_kiosk() {
  local platform=$1 packages=(python3-venv python3-dev build-essential) venv_args=() arch=x86_64
  local browser=false
  if [ "$platform" = pi ]; then
    packages+=(python3-picamera2)             # with libcamera's Python bindings, which are not on PyPI
    venv_args=(--system-site-packages)        # so the venv sees apt's picamera2
    arch=aarch64                              # its lock has the raspios extra: a numpy-2 simplejpeg over apt's numpy-1 build
  fi
  # Every runtime package pinned with its hash (deploy/lock.sh): what CI and the emulated Pi tested
  local lock="$SRC/deploy/requirements-$arch.lock"
  [ -f "$lock" ] || die "$lock is missing: this checkout is incomplete"
  if [ -f "$SRC/deploy/$BROWSER_UNIT" ]; then
    packages+=(chromium curl)               # curl: the unit waits for the kiosk's page with it
    browser=true
  fi
  note "installing the mpox kiosk from $SRC on a $platform"
  run apt-get update
  run env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${packages[@]}"
  if [ -x "$VENV/bin/python" ]; then
    note "keep the venv $VENV"
  else
    run python3 -m venv "${venv_args[@]}" "$VENV"
  fi
  # Runtime dependencies only (no training extras), exactly as locked; then the kiosk itself (it
  # brings the shipped models), which may add nothing the lock does not hold (--no-deps).
  run "$VENV/bin/pip" install --no-cache-dir --quiet --require-hashes -r "$lock"
  run "$VENV/bin/pip" install --no-cache-dir --quiet --no-deps "$SRC"
  if id "$SERVICE_USER" > /dev/null 2>&1; then
    note "keep the user $SERVICE_USER"
  else
    run useradd --system --user-group --groups video --home-dir "$STATE_DIR" --no-create-home --shell /usr/sbin/nologin "$SERVICE_USER"
  fi
  if [ -e "$CONFIG" ]; then
    note "keep $CONFIG (never overwritten; compare with $SRC/deploy/kiosk.example.yaml after an update)"
  else
    run install -d -m 0755 "$CONF_DIR"
    echo "+ write $CONFIG (deploy/kiosk.example.yaml for a $platform: state_dir $STATE_DIR; see --print-config)"
    if ! $dry_run; then
      render_config "$platform" > "$CONFIG.new"
      chmod 0644 "$CONFIG.new"
      mv "$CONFIG.new" "$CONFIG"
    fi
  fi
  if [ ! -d "$CREDSTORE" ]; then run install -d -m 0700 "$CREDSTORE"; fi
  remove_old_browser_unit
  if $browser; then  # a user unit, enabled for every user: it starts with the desktop session (autologin on a Pi)
    run install -m 0644 "$SRC/deploy/$BROWSER_UNIT" "$USER_UNIT_DIR/$BROWSER_UNIT"
    run systemctl --global enable "$BROWSER_UNIT"
    note "the screen opens at the next desktop login, or now in the desktop session: systemctl --user start $BROWSER_UNIT"
  fi
  run install -m 0644 "$SRC/deploy/$KIOSK_UNIT" "$UNIT_DIR/$KIOSK_UNIT"
  run systemctl daemon-reload
  run systemctl enable "$KIOSK_UNIT"
  run systemctl restart "$KIOSK_UNIT"
  note "state (audit log): $STATE_DIR, made by systemd at the first start"
  note "secrets, root-only files: $CREDSTORE/${SECRETS[0]} (staff password hash), $CREDSTORE/${SECRETS[1]} (MQTT password)"
  note "check it: systemctl status $KIOSK_UNIT; journalctl -u $KIOSK_UNIT -f"
  note "self-test (service stopped): sudo -u $SERVICE_USER $VENV/bin/mpox check --config $CONFIG"
}

# An earlier install.sh put the browser unit among the system units, where it has no desktop to show on.
remove_old_browser_unit() {
  if [ -e "$UNIT_DIR/$BROWSER_UNIT" ]; then
    run systemctl disable --now "$BROWSER_UNIT"
    run rm -f "$UNIT_DIR/$BROWSER_UNIT"
  fi
}

uninstall_kiosk() {
  remove_old_browser_unit
  if [ -e "$USER_UNIT_DIR/$BROWSER_UNIT" ]; then
    run systemctl --global disable "$BROWSER_UNIT"
    run rm -f "$USER_UNIT_DIR/$BROWSER_UNIT"
    note "a screen already open stays until the desktop session ends (or: systemctl --user stop $BROWSER_UNIT)"
  else
    note "not installed: $USER_UNIT_DIR/$BROWSER_UNIT"
  fi
  if [ -e "$UNIT_DIR/$KIOSK_UNIT" ]; then
    run systemctl disable --now "$KIOSK_UNIT"
    run rm -f "$UNIT_DIR/$KIOSK_UNIT"
  else
    note "not installed: $UNIT_DIR/$KIOSK_UNIT"
  fi
  run systemctl daemon-reload
  run rm -rf "$PREFIX"
  if $purge; then
    run rm -rf "$CONF_DIR" "$STATE_DIR" "${SECRETS[@]/#/$CREDSTORE/}"
    if id "$SERVICE_USER" > /dev/null 2>&1; then run userdel "$SERVICE_USER"; fi
  else
    note "kept: $CONF_DIR (config), $STATE_DIR (audit log), the secrets in $CREDSTORE, the user $SERVICE_USER; --uninstall --purge deletes them"
  fi
  note "apt packages stay installed (other software may use them)"
}

if [ "$action" != print-config ] && ! $dry_run; then
  [ "$(id -u)" = 0 ] || die "run it as root (sudo $0), or see what it would do with --dry-run"
  [ -d /run/systemd/system ] || die "systemd is not running on this machine"
fi
case $action in
  print-config) render_config "$(detect_platform)" ;;
  install)
    if ! $dry_run; then command -v apt-get > /dev/null || die "needs apt-get: Raspberry Pi OS, Debian or Ubuntu"; fi
    platform=$(detect_platform)
    install_kiosk "$platform" ;;
  uninstall) uninstall_kiosk ;;
esac
