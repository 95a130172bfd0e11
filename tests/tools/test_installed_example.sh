#!/usr/bin/env bash
# test_installed_example.sh: the README's C++ example (tools/examples/train_fashion.cpp) built
# against the INSTALLED library the way a user builds it: `meson install --destdir` into a
# scratch folder, then `c++ ... $(pkg-config --cflags --libs lowbit)`. It then runs at 1 and 2
# ranks (mpirun -np 2 when MPI is there) and checks that a run stopped after epoch 1 and resumed
# ends with exactly the checkpoint of an uninterrupted run (cmp: byte for byte).
# Usage (meson runs it): test_installed_example.sh BUILD_DIR SOURCE_DIR [MPIRUN]
set -euo pipefail
build=$1 src=$2 mpirun=${3:-}
work=$(mktemp -d "${TMPDIR:-/tmp}/lowbit_installed.XXXXXX")
trap 'rm -rf "$work"' EXIT

meson install -C "$build" --destdir "$work/root" --no-rebuild --quiet >/dev/null
pc=$(find "$work/root" -name lowbit.pc | head -n 1)
[ -n "$pc" ] || { echo "meson install wrote no lowbit.pc" >&2; exit 1; }
export PKG_CONFIG_PATH="$(dirname "$pc")${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
# The .pc files are relocatable (prefix relative to ${pcfiledir}): no PKG_CONFIG_SYSROOT_DIR.
flags=$(pkg-config --cflags --libs lowbit)
echo "c++ -std=c++20 -O2 train_fashion.cpp $flags"
${CXX:-c++} -std=c++20 -O2 "$src/tools/examples/train_fashion.cpp" $flags -o "$work/train_fashion"
lib=$(pkg-config --variable=libdir lowbit)
export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

data=fashion-mnist epochs=2 steps=6
check_resume() {  # $1: launcher prefix ("" or "mpirun -np 2"), $2: label
  local run="$1" out="$work/$2"
  $run "$work/train_fashion" $data "$out/full" $epochs $steps
  $run "$work/train_fashion" $data "$out/split" $epochs $steps --stop-after 1
  $run "$work/train_fashion" $data "$out/split" $epochs $steps --resume
  cmp "$out/full/last.ckpt" "$out/split/last.ckpt"
  echo "$2: stopped after epoch 1 + resumed == uninterrupted (byte-identical checkpoint)"
}
check_resume "" one_rank
if [ -n "$mpirun" ]; then
  check_resume "timeout 300 $mpirun --oversubscribe -np 2" two_ranks
else
  echo "no mpirun: 2-rank run skipped"
fi
