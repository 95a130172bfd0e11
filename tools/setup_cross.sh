#!/usr/bin/env bash
# setup_cross.sh: install what the aarch64 cross build needs (tools/cross/aarch64-linux-gnu.ini):
# Debian's aarch64 g++, qemu-user to run its tests, and the arm64 -dev packages of the libraries
# lowbit links (Debian multiarch: `dpkg --add-architecture arm64`; they are Multi-Arch: same, so
# they sit beside the amd64 ones). nlohmann-json3-dev, doctest-dev and libcli11-dev are arch:all:
# tools/setup.sh's copies serve both builds. No Open MPI: the cross build is -Dmpi=disabled.
# As root it installs what is missing; otherwise it prints the commands to run and exits 2, so
# tools/test.sh can skip the cross suites and say so (any other failure is an error).
set -euo pipefail

PACKAGES=(g++-aarch64-linux-gnu qemu-user cmake pkg-config
          libtbb-dev:arm64 libopenblas-dev:arm64 zlib1g-dev:arm64 libstb-dev:arm64)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "setup_cross: missing Debian packages for the aarch64 cross build. Run:" >&2
  dpkg --print-foreign-architectures | grep -qx arm64 || echo "  sudo dpkg --add-architecture arm64" >&2
  echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 2
fi
echo "setup_cross: installing ${missing[*]}" >&2
dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >&2
apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
