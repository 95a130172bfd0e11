#!/usr/bin/env bash
# quickstart.sh: set up everything on a fresh Debian 12 machine, build, and train the default
# model (convnet) on Fashion-MNIST; prints the training summary. Extra arguments go to
# `lowbit train` (e.g. tools/quickstart.sh --epochs 2).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
echo "quickstart: training convnet on Fashion-MNIST (runs/quickstart); Ctrl-C is safe, --resume continues" >&2
build/tools/lowbit train --model convnet --data fashion-mnist --out runs/quickstart "$@"
