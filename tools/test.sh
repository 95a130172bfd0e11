#!/usr/bin/env bash
# test.sh: install what is missing, build, and run the whole test suite (meson test).
# Extra arguments go to `meson test` (e.g. tools/test.sh --suite core).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
meson test -C build --print-errorlogs --num-processes 2 "$@"
