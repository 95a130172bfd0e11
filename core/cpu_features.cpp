// cpu_features.cpp: cpuid detection and the LOWBIT_ISA override (see cpu_features.h).
#include "core/cpu_features.h"

#include "core/arch.h"

#if LOWBIT_ARCH_X86
#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#endif

#include <atomic>
#include <cstdlib>

#include "core/error.h"

namespace lowbit::kernels {

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::scalar: return "scalar";
    case Isa::avx2: return "avx2";
    case Isa::avx_vnni: return "avx_vnni";
    case Isa::avx512: return "avx512";
    case Isa::amx: return "amx";
  }
  return "unknown";
}

Isa parse_isa(const std::string& name) {
  for (Isa isa : kIsaPreference)
    if (name == isa_name(isa)) return isa;
  std::string all;
  for (Isa isa : kIsaPreference) all += std::string(all.empty() ? "" : ", ") + isa_name(isa);
  throw Error("LOWBIT_ISA: unknown ISA '" + name + "', expected one of " + all);
}

#if LOWBIT_ARCH_X86
namespace {
// CPUID.(EAX=7, ECX=1):EAX bit 4. Read directly: clang 14's __builtin_cpu_supports has no
// "avxvnni" (GCC 12's has); the ymm state's OS consent is part of the avx2 check.
bool cpu_has_avx_vnni() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  return __get_cpuid_count(7, 1, &a, &b, &c, &d) && ((a >> 4) & 1u) != 0;
}

// AMX-TILE and AMX-INT8 (CPUID.(EAX=7, ECX=0):EDX bits 24, 25), the OS's XSAVE support of the
// tile state (XCR0 bits 17 TILECFG, 18 TILEDATA), and Linux's per-process consent: the tile data
// is off until arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) grants it (Linux >= 5.16);
// a tile instruction without it is SIGILL. Asked once; the answer holds for every thread.
bool amx_int8_usable() {
  static const bool usable = [] {
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || ((d >> 24) & 1u) == 0 || ((d >> 25) & 1u) == 0) return false;
    if (!__get_cpuid(1, &a, &b, &c, &d) || ((c >> 27) & 1u) == 0) return false;  // OSXSAVE
    unsigned xcr0_lo = 0, xcr0_hi = 0;
    __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
    if (((xcr0_lo >> 17) & 3u) != 3u) return false;
#if defined(__linux__)
    constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
    return false;
#endif
  }();
  return usable;
}
}  // namespace
#endif

bool isa_in_build(Isa isa) {
  switch (isa) {
    case Isa::scalar: return true;
    case Isa::avx2:
    case Isa::avx_vnni:
    case Isa::avx512:
    case Isa::amx: return LOWBIT_ARCH_X86 != 0;
  }
  return false;
}

bool isa_supported(Isa isa) {
  if (!isa_in_build(isa)) return false;
#if LOWBIT_ARCH_X86
  // libgcc's checks include the OS's XSAVE consent (XCR0) for ymm / zmm state.
  __builtin_cpu_init();
  // Every ymm TU is compiled with -mfma too (the direct conv is FMA throughout).
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  switch (isa) {
    case Isa::scalar: return true;
    case Isa::avx2: return avx2;
    case Isa::avx_vnni: return avx2 && cpu_has_avx_vnni();
    case Isa::avx512:
      return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
    case Isa::amx: return isa_supported(Isa::avx512) && amx_int8_usable();
  }
  return false;
#else
  return true;  // the scalar level, the only one in this build
#endif
}

Isa detected_isa() {
  for (Isa isa : kIsaPreference)
    if (isa_supported(isa)) return isa;
  return Isa::scalar;
}

std::string supported_isa_names() {
  std::string s;
  for (Isa isa : kIsaPreference)
    if (isa_supported(isa)) s += std::string(s.empty() ? "" : ", ") + isa_name(isa);
  return s;
}

bool cpu_has_avx512_vpopcntdq() {
#if LOWBIT_ARCH_X86
  __builtin_cpu_init();
  return isa_supported(Isa::avx512) && __builtin_cpu_supports("avx512vpopcntdq");
#else
  return false;
#endif
}

Isa resolve_isa(const char* env_value) {
  if (env_value == nullptr || env_value[0] == '\0') return detected_isa();
  const Isa want = parse_isa(env_value);
  LOWBIT_CHECK(isa_in_build(want), "LOWBIT_ISA=", env_value, " names a level this ", kBuildArch,
               " build does not have (available: ", supported_isa_names(), ")");
  LOWBIT_CHECK(isa_supported(want), "LOWBIT_ISA=", env_value,
               " asks for an ISA this CPU does not support (available: ", supported_isa_names(), ")");
  return want;
}

namespace {
std::atomic<int> g_active{-1};
}

Isa active_isa_level() {
  int v = g_active.load(std::memory_order_acquire);
  if (v < 0) {
    v = static_cast<int>(resolve_isa(std::getenv("LOWBIT_ISA")));
    g_active.store(v, std::memory_order_release);
  }
  return static_cast<Isa>(v);
}

void set_active_isa(Isa isa) {
  LOWBIT_CHECK(isa_in_build(isa), "set_active_isa: this ", kBuildArch, " build has no ", isa_name(isa),
               " level (available: ", supported_isa_names(), ")");
  LOWBIT_CHECK(isa_supported(isa), "set_active_isa: ", isa_name(isa),
               " is not supported by this CPU (available: ", supported_isa_names(), ")");
  g_active.store(static_cast<int>(isa), std::memory_order_release);
}

}  // namespace lowbit::kernels

namespace lowbit {
const char* active_isa() { return kernels::isa_name(kernels::active_isa_level()); }
}  // namespace lowbit
