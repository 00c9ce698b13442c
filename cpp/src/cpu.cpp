#include "cpu.hpp"

#include <cstdlib>
#include <cstring>

namespace smic::detail {

bool cpu_has_avx2() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                          __builtin_cpu_supports("f16c");
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
