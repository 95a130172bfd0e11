// cpu_features.cpp: cpuid detection and the LOWBIT_ISA override (see cpu_features.h).
#include "core/cpu_features.h"

#include <atomic>
#include <cstdlib>

#include "core/error.h"

namespace lowbit::kernels {

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::scalar: return "scalar";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
  }
  return "unknown";
}

Isa parse_isa(const std::string& name) {
  if (name == "scalar") return Isa::scalar;
  if (name == "avx2") return Isa::avx2;
  if (name == "avx512") return Isa::avx512;
  throw Error("LOWBIT_ISA: unknown ISA '" + name + "', expected scalar, avx2 or avx512");
}

Isa detected_isa() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni"))
    return Isa::avx512;
  if (__builtin_cpu_supports("avx2")) return Isa::avx2;
#endif
  return Isa::scalar;
}

bool cpu_has_avx512_vpopcntdq() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  return detected_isa() == Isa::avx512 && __builtin_cpu_supports("avx512vpopcntdq");
#else
  return false;
#endif
}

Isa resolve_isa(const char* env_value) {
  const Isa best = detected_isa();
  if (env_value == nullptr || env_value[0] == '\0') return best;
  const Isa want = parse_isa(env_value);
  LOWBIT_CHECK(static_cast<int>(want) <= static_cast<int>(best), "LOWBIT_ISA=", env_value,
               " asks for an ISA this CPU does not support (best available: ", isa_name(best), ")");
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
  LOWBIT_CHECK(static_cast<int>(isa) <= static_cast<int>(detected_isa()), "set_active_isa: ",
               isa_name(isa), " is not supported by this CPU (best available: ",
               isa_name(detected_isa()), ")");
  g_active.store(static_cast<int>(isa), std::memory_order_release);
}

}  // namespace lowbit::kernels

namespace lowbit {
const char* active_isa() { return kernels::isa_name(kernels::active_isa_level()); }
}  // namespace lowbit
