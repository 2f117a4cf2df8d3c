#!/usr/bin/env bash
# Install tinyedge as a supervised service on Raspberry Pi OS (64-bit) or Jetson Linux.
#
#   sudo firmware/install.sh               install or upgrade (idempotent)
#   sudo firmware/install.sh --dry-run     print every step, change nothing
#   sudo firmware/install.sh --uninstall   remove the service, venv and user (keeps config and state)
#
# Run it from a checkout of tinyedge (or an unpacked sdist): it installs that tree.
set -euo pipefail

PREFIX=${TINYEDGE_PREFIX:-/opt/tinyedge}
CONFIG_DIR=${TINYEDGE_CONFIG_DIR:-/etc/tinyedge}
UNIT_DIR=${TINYEDGE_UNIT_DIR:-/etc/systemd/system}
SERVICE_USER=tinyedge
SRC=$(cd "$(dirname "$0")/.." && pwd)
DRY_RUN=0
ACTION=install

usage() {
  sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
}

for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    --uninstall) ACTION=uninstall ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option: $arg" >&2; usage >&2; exit 2 ;;
  esac
done

# Every change goes through run(): printed always, executed unless --dry-run.
run() {
  printf '+ %s\n' "$*"
  if [ "$DRY_RUN" -eq 0 ]; then
    "$@"
  fi
}

detect_board() {
  local model=""
  if [ -r /proc/device-tree/model ]; then
    model=$(tr -d '\0' < /proc/device-tree/model)
  fi
  case "$model" in
    *"Raspberry Pi"*) echo pi ;;
    *Jetson*|*NVIDIA*) echo jetson ;;
    *) if [ -e /etc/nv_tegra_release ]; then echo jetson; else echo generic; fi ;;
  esac
}

install_packages() {
  local board=$1
  local pkgs=(python3 python3-venv python3-pip ca-certificates)
  case "$board" in
    pi) pkgs+=(python3-picamera2 python3-libcamera) ;;
    jetson) pkgs+=(python3-opencv gstreamer1.0-tools) ;;
    generic) pkgs+=(v4l-utils) ;;
  esac
  run apt-get update
  run apt-get install -y --no-install-recommends "${pkgs[@]}"
}

extras_for() {
  case "$1" in
    pi) echo "pi" ;;          # picamera2 comes from Debian (system site packages)
    jetson) echo "" ;;        # Jetson's OpenCV (with GStreamer) comes from Debian
    *) echo "cv" ;;
  esac
}

do_install() {
  if [ "$(id -u)" -ne 0 ] && [ "$DRY_RUN" -eq 0 ]; then
    echo "install.sh: run as root (sudo), or use --dry-run" >&2
    exit 1
  fi
  local board
  board=$(detect_board)
  echo "# board: $board; source: $SRC; prefix: $PREFIX"
  install_packages "$board"

  if ! id "$SERVICE_USER" >/dev/null 2>&1; then
    run useradd --system --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin --groups video "$SERVICE_USER"
  else
    echo "# user $SERVICE_USER exists"
  fi

  # System site packages: picamera2/libcamera (Pi) and GStreamer OpenCV (Jetson) are Debian's.
  if [ ! -x "$PREFIX/venv/bin/python" ]; then
    run mkdir -p "$PREFIX"
    run python3 -m venv --system-site-packages "$PREFIX/venv"
  else
    echo "# venv $PREFIX/venv exists"
  fi
  local extras spec
  extras=$(extras_for "$board")
  spec="$SRC"
  if [ -n "$extras" ]; then
    spec="${SRC}[${extras}]"
  fi
  run "$PREFIX/venv/bin/pip" install --upgrade --quiet "$spec"

  run install -d -m 0755 "$CONFIG_DIR"
  if [ ! -e "$CONFIG_DIR/config.toml" ]; then
    run install -m 0640 -g "$SERVICE_USER" "$SRC/firmware/config.toml" "$CONFIG_DIR/config.toml"
  else
    echo "# keeping existing $CONFIG_DIR/config.toml"
  fi
  run "$PREFIX/venv/bin/tinyedge" config check --config "$CONFIG_DIR/config.toml"

  run install -m 0644 "$SRC/firmware/tinyedge.service" "$UNIT_DIR/tinyedge.service"
  run systemctl daemon-reload
  run systemctl enable --now tinyedge.service
  echo "# done: journalctl -u tinyedge -f   to watch it"
}

do_uninstall() {
  if [ "$(id -u)" -ne 0 ] && [ "$DRY_RUN" -eq 0 ]; then
    echo "install.sh: run as root (sudo), or use --dry-run" >&2
    exit 1
  fi
  if [ -e "$UNIT_DIR/tinyedge.service" ]; then
    run systemctl disable --now tinyedge.service
    run rm -f "$UNIT_DIR/tinyedge.service"
    run systemctl daemon-reload
  else
    echo "# no unit installed"
  fi
  if [ -d "$PREFIX" ]; then
    run rm -rf "$PREFIX"
  fi
  if id "$SERVICE_USER" >/dev/null 2>&1; then
    run userdel "$SERVICE_USER"
  fi
  echo "# kept $CONFIG_DIR and /var/lib/tinyedge (remove them by hand if you want)"
}

case "$ACTION" in
  install) do_install ;;
  uninstall) do_uninstall ;;
esac
