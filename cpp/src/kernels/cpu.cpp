#include "kernels/cpu.hpp"

#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#endif

namespace smic::detail {

bool cpu_has_avx2() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  static const bool has = [] {
    // F16C from CPUID leaf 1 (ECX bit 29): not every compiler's __builtin_cpu_supports knows
    // it. The OS's saving of the AVX state is covered by the "avx2" check.
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & (1u << 29)) != 0;
    return f16c && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return has;
#else
  return false;
#endif
}

bool cpu_has_avx512() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  // libgcc sets "avx512f" only when the OS also saves the 512-bit state (XCR0).
  static const bool has = cpu_has_avx2() && __builtin_cpu_supports("avx512f");
  return has;
#else
  return false;
#endif
}

namespace {

bool kernels_env_is(const char* want) {
  const char* value = std::getenv("SMIC_KERNELS");
  return value != nullptr && std::strcmp(value, want) == 0;
}

}  // namespace

bool kernels_forced_portable() {
  static const bool forced = kernels_env_is("portable");
  return forced;
}

bool kernels_capped_at_avx2() {
  static const bool capped = kernels_env_is("avx2");
  return capped;
}

}  // namespace smic::detail
