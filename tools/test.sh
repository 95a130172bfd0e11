#!/usr/bin/env bash
# test.sh: install what is missing, build, and run the whole test suite (meson test), then the
# sanitizer/fuzz build and the aarch64 cross build under qemu (both only without arguments).
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
    --test-args='-tc=file*,malformed*,quantize*,im2col_packed*,pack_rows*,run:*,IntModel*,model?info*,non-finite*,C?API*,concurrent*,image?helper*'
  meson test -C build-fuzz --print-errorlogs --suite fuzz
fi
# The aarch64 build (scalar kernel level only, core/arch.h), cross-compiled with Debian's g++ and
# tools/cross/aarch64-linux-gnu.ini; its kernel and export suites run under qemu-aarch64 (about
# 4 to 6 minutes on 2 shared cores: the build; the suites take about 20 s). Only the library and
# those suites' programs are built.
# Left out of the export suite there, because each trains a float model and that takes minutes
# under qemu (one 8-step convnet: 3 to 10 minutes on 2 busy cores): the parity tests (pact-sawb *,
# other methods*, every policy method*, mlp W8A8*), the file round trip (file*), and the run: tests
# (the kernel-level one has nothing to compare on aarch64 anyway, where scalar is the only level).
# Its malformed-file corpus (which edits a committed model file, tests/export/data), quantize,
# im2col and packing tests stay, and all of the kernel suite.
# The filter has no spaces (? matches one): meson splits --test-args at spaces.
if [ $# -eq 0 ]; then
  cross=0
  cross_start=$SECONDS
  tools/setup_cross.sh || cross=$?
  if [ "$cross" = 0 ]; then
    [ -f build-aarch64/build.ninja ] ||
      meson setup build-aarch64 --cross-file tools/cross/aarch64-linux-gnu.ini -Dmpi=disabled --buildtype=release
    # The suites' programs (and through them the library), read from meson so a new test follows.
    mapfile -t programs < <(meson introspect build-aarch64 --tests | python3 -c '
import json, os, sys
build = os.path.abspath("build-aarch64")
for t in json.load(sys.stdin):
    program = t["cmd"][0]
    if {s.split(":")[-1] for s in t["suite"]} & {"kernels", "export"} and program.startswith(build + "/"):
        print(os.path.relpath(program, build))')
    ninja -C build-aarch64 "${programs[@]}"
    meson test -C build-aarch64 --no-rebuild --print-errorlogs --num-processes 2 --timeout-multiplier 2 \
      --suite kernels --suite export --test-args="-tce=pact-sawb?*,other?methods*,every?policy?method*,mlp?W8A8*,file*,run:*"
    echo "test: aarch64 cross build and qemu suites: $((SECONDS - cross_start)) s" >&2
  elif [ "$cross" = 2 ]; then
    echo "test: ======================================================================" >&2
    echo "test: SKIPPED the aarch64 cross build and its qemu suites: the cross packages are" >&2
    echo "test: missing and this user cannot install them (tools/setup_cross.sh said what to run)" >&2
    echo "test: ======================================================================" >&2
  else
    exit "$cross"
  fi
fi
