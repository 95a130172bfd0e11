#!/usr/bin/env bash
# setup.sh: install the Debian packages lowbit needs (as root), or print the one apt-get line
# to run (otherwise), then configure and build into build/. Sourced by quickstart.sh and test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(g++ meson ninja-build pkg-config libopenblas-dev libtbb-dev libstb-dev doctest-dev zlib1g-dev
          nlohmann-json3-dev libcli11-dev libopenmpi-dev openmpi-bin dataset-fashion-mnist
          clang libclang-rt-14-dev  # clang: the model-loader fuzz target and sanitizer build
          python3-matplotlib)       # tools/plot_runs.py (and its test)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
  else
    echo "setup: missing Debian packages. Run:" >&2
    echo "  sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

if [ ! -f build/build.ninja ]; then
  meson setup build --buildtype=release >&2
fi
ninja -C build >&2
