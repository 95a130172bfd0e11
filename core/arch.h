// arch.h: which CPU architecture families this build has kernels for, decided in one place.
// LOWBIT_ARCH_X86 is 1 in an x86-64 build (the one family with SIMD levels today: avx2, avx_vnni,
// avx512, amx), 0 elsewhere (aarch64: only the scalar level; NEON kernels are later work). The meson
// files gate the x86 kernel libraries on the same family (host_machine.cpu_family() == 'x86_64');
// C++ code that names an x86 level's symbols, cpuid or x86 assembly tests this macro and nothing else.
#pragma once

#if defined(__x86_64__)
#define LOWBIT_ARCH_X86 1
#else
#define LOWBIT_ARCH_X86 0
#endif

namespace lowbit {
// The architecture this build targets, for messages ("x86-64", "aarch64" or "other").
#if LOWBIT_ARCH_X86
inline constexpr const char* kBuildArch = "x86-64";
#elif defined(__aarch64__)
inline constexpr const char* kBuildArch = "aarch64";
#else
inline constexpr const char* kBuildArch = "other";
#endif
}  // namespace lowbit
