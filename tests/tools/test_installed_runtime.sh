#!/usr/bin/env bash
# test_installed_runtime.sh: the serving examples built against the INSTALLED packages, as a user
# builds them: `meson install --destdir` into a scratch folder, then the relocatable .pc files
# found through PKG_CONFIG_PATH alone.
#  * tools/examples/classify.c: plain C, `cc ... $(pkg-config --cflags --libs lowbit-runtime)`;
#    `ldd` must list no MPI, OpenBLAS or gfortran library.
#  * tools/examples/export_and_serve.cpp: trains a W2A2 CNN briefly, export_model, serves.
#  * classify's lines for the exported model's PNGs == `lowbit infer`'s text lines, byte for byte.
# Usage (meson runs it): test_installed_runtime.sh BUILD_DIR SOURCE_DIR LOWBIT_EXE
set -euo pipefail
build=$1 src=$2 lowbit=$3
work=$(mktemp -d "${TMPDIR:-/tmp}/lowbit_runtime.XXXXXX")
trap 'rm -rf "$work"' EXIT

meson install -C "$build" --destdir "$work/root" --no-rebuild --quiet >/dev/null
pc=$(find "$work/root" -name lowbit-runtime.pc | head -n 1)
[ -n "$pc" ] || { echo "meson install wrote no lowbit-runtime.pc" >&2; exit 1; }
if find "$work/root" -path '*/include/*' \( -name '*.cpp' -o -name 'meson.build' -o -name '*.md' \) | grep -q .; then
  echo "meson install put non-headers under include/:" >&2
  find "$work/root" -path '*/include/*' \( -name '*.cpp' -o -name 'meson.build' -o -name '*.md' \) | head >&2
  exit 1
fi
# The *_internal.h contracts stay out, and no installed header includes a header that is not.
inc=$(find "$work/root" -type d -path '*/include/lowbit' | head -n 1)
if find "$inc" -name '*_internal.h' | grep .; then
  echo "meson install put the internal headers above under include/" >&2
  exit 1
fi
missing=$(cd "$inc" && grep -rho '^#include "[^"]*"' --include='*.h' . | sed 's/^#include "\(.*\)"$/\1/' | sort -u |
  while read -r h; do [ -f "$h" ] || echo "$h"; done)
if [ -n "$missing" ]; then
  echo "installed headers include headers that are not installed: $missing" >&2
  exit 1
fi
export PKG_CONFIG_PATH="$(dirname "$pc")${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
echo "cc classify.c $(pkg-config --cflags --libs lowbit-runtime)"
${CC:-cc} -std=c99 -O2 -Wall "$src/tools/examples/classify.c" $(pkg-config --cflags --libs lowbit-runtime) -o "$work/classify"
lib=$(pkg-config --variable=libdir lowbit-runtime)
export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
ldd "$work/classify"
if ldd "$work/classify" | grep -Ei 'mpi|openblas|gfortran|liblowbit\.so'; then
  echo "classify links more than liblowbit-runtime needs (above)" >&2
  exit 1
fi
echo "sizes: classify $(stat -c %s "$work/classify") bytes, $(basename "$(readlink -f "$lib/liblowbit-runtime.so")") $(stat -c %s "$(readlink -f "$lib/liblowbit-runtime.so")") bytes"

echo "c++ export_and_serve.cpp $(pkg-config --cflags --libs lowbit)"
${CXX:-c++} -std=c++20 -O2 "$src/tools/examples/export_and_serve.cpp" $(pkg-config --cflags --libs lowbit) \
  -o "$work/export_and_serve"
"$work/export_and_serve" fashion-mnist "$work/out" 20

mapfile -t pngs < <(find "$work/out/images" -name '*.png' | LC_ALL=C sort)
[ "${#pngs[@]}" -gt 0 ] || { echo "no PNG written" >&2; exit 1; }
"$work/classify" "$work/out/model.lbm" "${pngs[@]}" > "$work/classify.txt"
"$lowbit" infer --model "$work/out/model.lbm" "${pngs[@]}" > "$work/infer.txt"
cat "$work/classify.txt"
diff "$work/classify.txt" "$work/infer.txt"
echo "classify == lowbit infer on ${#pngs[@]} test-set PNGs (same classes and probabilities)"
