#include "cpu.hpp"

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

bool kernels_forced_portable() {
  static const bool forced = [] {
    const char* value = std::getenv("SMIC_KERNELS");
    return value != nullptr && std::strcmp(value, "portable") == 0;
  }();
  return forced;
}

}  // namespace smic::detail
