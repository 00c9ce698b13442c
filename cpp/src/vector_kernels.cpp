#include "vector_kernels.hpp"

#include <algorithm>
#include <cmath>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define SMIC_MULTIVERSION __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define SMIC_MULTIVERSION
#endif

namespace smic::detail {

SMIC_MULTIVERSION
void subtract_combination(const float* alpha0, const float* rows, std::size_t stride,
                          const float* g, std::size_t t, std::size_t n, float* alpha) {
  // Blocks of 64 entries stay in registers across the t rows.
  constexpr std::size_t kBlock = 64;
  std::size_t j0 = 0;
  for (; j0 + kBlock <= n; j0 += kBlock) {
    float acc[kBlock];
    for (std::size_t j = 0; j < kBlock; ++j) acc[j] = alpha0[j0 + j];
    for (std::size_t i = 0; i < t; ++i) {
      const float gi = g[i];
      const float* row = rows + i * stride + j0;
      for (std::size_t j = 0; j < kBlock; ++j) acc[j] -= gi * row[j];
    }
    for (std::size_t j = 0; j < kBlock; ++j) alpha[j0 + j] = acc[j];
  }
  for (std::size_t j = j0; j < n; ++j) {
    float acc = alpha0[j];
    for (std::size_t i = 0; i < t; ++i) acc -= g[i] * rows[i * stride + j];
    alpha[j] = acc;
  }
}

SMIC_MULTIVERSION
std::size_t argmax_abs(const float* a, std::size_t n, float* max_abs) {
  // Pass 1: the maximum magnitude, in 8 independent lanes (vectorised).
  float lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::size_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (std::size_t l = 0; l < 8; ++l) {
      const float v = std::fabs(a[j + l]);
      lanes[l] = lanes[l] < v ? v : lanes[l];
    }
  float best = 0.0f;
  for (float v : lanes) best = best < v ? v : best;
  for (; j < n; ++j) best = std::max(best, std::fabs(a[j]));
  *max_abs = best;
  // Pass 2: the first index holding it (ties go to the lowest index, as numpy.argmax).
  for (std::size_t k = 0; k < n; ++k)
    if (std::fabs(a[k]) == best) return k;
  return 0;
}

}  // namespace smic::detail
