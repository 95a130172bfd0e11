// cpu_features.h: which SIMD level lowbit's kernels run at (the packed integer GEMMs and the
// direct float convolution), chosen ONCE at start-up.
// The level is the best the CPU supports (cpuid via __builtin_cpu_supports; preference
// amx > avx512 > avx_vnni > avx2 > scalar), unless the environment variable
// LOWBIT_ISA=scalar|avx2|avx_vnni|avx512|amx asks for another level the CPU supports (asking for one
// it lacks is an error: lowbit::Error naming the available levels, never a silent fallback).
// Only an x86-64 build has the x86 levels below (core/arch.h); elsewhere (aarch64) the build has the
// scalar level alone, isa_supported() is false for the others and LOWBIT_ISA=avx2 is that error.
//   scalar  : plain C++ reference kernels (any CPU)
//   avx2    : vpmaddubsw kernels (needs AVX2 + FMA)
//   avx_vnni: VEX ymm vpdpbusd kernels (needs AVX2 + FMA + AVX-VNNI: Alder Lake+, Zen 5, SPR);
//             the direct float convolution runs its avx2 kernels at this level
//   avx512  : zmm vpdpbusd kernels (needs AVX-512 F+BW+VL+VNNI)
//   amx     : the avx512 level with the integer convolution on AMX-INT8 tiles (tdpbusd; needs
//             AMX-TILE + AMX-INT8 and the kernel's consent to the tile state, which
//             isa_supported(amx) asks Linux for once: arch_prctl(ARCH_REQ_XCOMP_PERM)); every
//             other kernel runs its avx512 form at this level
// The levels are NOT nested (Ice Lake and Zen 4 have AVX-512 VNNI but no AVX-VNNI), so code asks
// isa_supported(level), never compares levels. Adding a level: the enum, kIsaPreference, the
// switches that -Wswitch then names (isa_name, isa_in_build, isa_supported), and its row of the
// integer kernel table (quant/kernels/kernel_table.cpp), which inherits what the level lacks from a
// fallback level.
#pragma once
#include <string>

namespace lowbit::kernels {

enum class Isa : int { scalar, avx2, avx_vnni, avx512, amx };  // NOT an order (see above)

// Every level, best first: detected_isa() is the first one isa_supported() accepts.
inline constexpr Isa kIsaPreference[] = {Isa::amx, Isa::avx512, Isa::avx_vnni, Isa::avx2, Isa::scalar};

const char* isa_name(Isa isa);           // "scalar", "avx2", "avx_vnni", "avx512", "amx"
Isa parse_isa(const std::string& name);  // throws lowbit::Error on an unknown name
bool isa_in_build(Isa isa);              // this build has the level's kernels (core/arch.h)
bool isa_supported(Isa isa);             // in the build, and this CPU (and OS) can run its kernels
Isa detected_isa();                      // best level this CPU supports (kIsaPreference order)
std::string supported_isa_names();       // e.g. "avx512, avx_vnni, avx2, scalar" (for messages)
// The avx512 kernels run at the amx level too (everything but the AMX convolution).
inline bool runs_avx512_kernels(Isa isa) { return isa == Isa::avx512 || isa == Isa::amx; }
bool cpu_has_avx512_vpopcntdq();         // for the bit-serial w2a2 variant
// The level LOWBIT_ISA=value would select on this CPU (value == nullptr or "": detected_isa()).
// Throws lowbit::Error when value names an unknown level or one this CPU does not support.
Isa resolve_isa(const char* env_value);
Isa active_isa_level();  // resolve_isa(getenv("LOWBIT_ISA")), evaluated once and cached
// Overrides the active level (tests, benchmarks); throws when !isa_supported(isa).
void set_active_isa(Isa isa);

}  // namespace lowbit::kernels

namespace lowbit {
// Name of the ISA the kernels dispatch to right now: "scalar", "avx2", "avx_vnni", "avx512" or "amx".
const char* active_isa();
}  // namespace lowbit
