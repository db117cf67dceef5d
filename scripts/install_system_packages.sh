#!/usr/bin/env bash
# Installs the Debian packages that building and testing the workspace need; skips the package
# manager when every one is already installed. With --aarch64, also the cross toolchain and
# qemu-user that CI's aarch64 step uses (Debian's rustc-web carries the aarch64 standard library).
#
#   pkg-config, libudev-dev   the `udev` feature (port enumeration through libudev)
#   libasound2-dev            the `alsa` feature (microphone capture)
#   libclang-dev              the `v4l` feature (v4l2-sys generates its bindings with bindgen)
#   libdlib-data              dlib's 68-point landmark model (scripts/install_landmark_model.sh)
#   chromium, a font          the kiosk screen's and the report's tests drive a headless browser
#   postgresql                the fleet tests' throw-away server (scripts/pg_test_cluster.sh)
#   curl                      scripts/kiosk_session.sh taps the kiosk screen over HTTP
#   python3                   the install scripts' SHA-256-pinned wheel extraction
set -euo pipefail

packages=(pkg-config libudev-dev libasound2-dev libclang-dev libdlib-data chromium fonts-dejavu-core
    postgresql curl python3)
if [ "${1:-}" = --aarch64 ]; then
    packages+=(rustc-web cargo-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user)
fi

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -ne 0 ] && sudo=sudo
export DEBIAN_FRONTEND=noninteractive
if [ "${1:-}" = --aarch64 ] && ! dpkg --print-foreign-architectures | grep -qx arm64; then
    $sudo dpkg --add-architecture arm64
fi
echo "installing: ${missing[*]}" >&2
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
