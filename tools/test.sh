#!/usr/bin/env bash
# test.sh: install what is missing, build, and run the whole test suite (meson test).
# Extra arguments go to `meson test` (e.g. tools/test.sh --suite core).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
meson test -C build --print-errorlogs --num-processes 2 "$@"
# The model loader and the runtime's packing under ASan + UBSan: malformed-file corpus (C++ loader
# and C API), packed im2col, whole-model runs, the runtime's C and C++ faces, and 30 s of libFuzzer
# (clang only; docs/model-format.md). Skipped
# when clang++ is missing or a suite was selected by arguments.
if [ $# -eq 0 ] && command -v clang++ >/dev/null; then
  [ -d build-fuzz ] || CC=clang CXX=clang++ meson setup build-fuzz -Db_sanitize=address,undefined -Db_lundef=false
  ninja -C build-fuzz tests/export/fuzz_model_loader tests/export/test_export tests/export/test_runtime
  meson test -C build-fuzz --print-errorlogs --suite export \
    --test-args='-tc=file*,quantize*,im2col_packed*,pack_rows*,run:*,IntModel*,model?info*,non-finite*,C?API*,concurrent*,image?helper*'
  meson test -C build-fuzz --print-errorlogs --suite fuzz
fi
