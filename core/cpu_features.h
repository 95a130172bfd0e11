// cpu_features.h: which SIMD level lowbit's kernels run at (the packed integer GEMMs and the
// direct float convolution), chosen ONCE at start-up.
// The level is the best the CPU supports (cpuid via __builtin_cpu_supports), unless the
// environment variable LOWBIT_ISA=scalar|avx2|avx512 asks for a LOWER one (asking for a level
// the CPU lacks is an error: lowbit::Error, never a silent fallback).
//   scalar: plain C++ reference kernels (any x86-64)
//   avx2  : vpmaddubsw kernels (needs AVX2)
//   avx512: vpdpbusd kernels (needs AVX-512 F+BW+VL+VNNI)
#pragma once
#include <string>

namespace lowbit::kernels {

enum class Isa : int { scalar = 0, avx2 = 1, avx512 = 2 };

const char* isa_name(Isa isa);
Isa parse_isa(const std::string& name);  // throws lowbit::Error on an unknown name
Isa detected_isa();                      // best level this CPU supports
bool cpu_has_avx512_vpopcntdq();         // for the bit-serial w2a2 variant
// The level LOWBIT_ISA=value would select on this CPU (value == nullptr or "": detected_isa()).
// Throws lowbit::Error when value names an unknown level or one above detected_isa().
Isa resolve_isa(const char* env_value);
Isa active_isa_level();  // resolve_isa(getenv("LOWBIT_ISA")), evaluated once and cached
// Overrides the active level (tests, benchmarks); throws when isa > detected_isa().
void set_active_isa(Isa isa);

}  // namespace lowbit::kernels

namespace lowbit {
// Name of the ISA the kernels dispatch to right now: "scalar", "avx2" or "avx512".
const char* active_isa();
}  // namespace lowbit
