#include "kernels/vector_kernels.hpp"

#include "kernels/cpu.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#endif

namespace smic::detail {

namespace {

void subtract_combination_generic(const float* alpha0, const float* const* rows, const float* g,
                                  std::size_t t, std::size_t n, float* alpha) {
  for (std::size_t j = 0; j < n; ++j) {
    float acc = alpha0[j];
    for (std::size_t i = 0; i < t; ++i) acc = std::fma(-g[i], rows[i][j], acc);
    alpha[j] = acc;
  }
}

#if defined(__GNUC__) && defined(__x86_64__)
// Thirty-two entries at a time (four independent accumulators: one would chain t dependent
// FMAs per eight entries; measured 1.5x faster for K = 1024 and t up to 15), each entry's
// fused multiply-adds in row order, as the generic loop (bit-equal).
__attribute__((target("avx2,fma"))) void subtract_combination_avx2(
    const float* alpha0, const float* const* rows, const float* g, std::size_t t, std::size_t n,
    float* alpha) {
  std::size_t j = 0;
  for (; j + 32 <= n; j += 32) {
    __m256 a0 = _mm256_loadu_ps(alpha0 + j), a1 = _mm256_loadu_ps(alpha0 + j + 8);
    __m256 a2 = _mm256_loadu_ps(alpha0 + j + 16), a3 = _mm256_loadu_ps(alpha0 + j + 24);
    for (std::size_t i = 0; i < t; ++i) {
      const __m256 gi = _mm256_set1_ps(g[i]);
      const float* r = rows[i] + j;
      a0 = _mm256_fnmadd_ps(gi, _mm256_loadu_ps(r), a0);
      a1 = _mm256_fnmadd_ps(gi, _mm256_loadu_ps(r + 8), a1);
      a2 = _mm256_fnmadd_ps(gi, _mm256_loadu_ps(r + 16), a2);
      a3 = _mm256_fnmadd_ps(gi, _mm256_loadu_ps(r + 24), a3);
    }
    _mm256_storeu_ps(alpha + j, a0);
    _mm256_storeu_ps(alpha + j + 8, a1);
    _mm256_storeu_ps(alpha + j + 16, a2);
    _mm256_storeu_ps(alpha + j + 24, a3);
  }
  for (; j + 8 <= n; j += 8) {
    __m256 acc = _mm256_loadu_ps(alpha0 + j);
    for (std::size_t i = 0; i < t; ++i)
      acc = _mm256_fnmadd_ps(_mm256_set1_ps(g[i]), _mm256_loadu_ps(rows[i] + j), acc);
    _mm256_storeu_ps(alpha + j, acc);
  }
  for (; j < n; ++j) {
    float acc = alpha0[j];
    for (std::size_t i = 0; i < t; ++i) acc = std::fma(-g[i], rows[i][j], acc);
    alpha[j] = acc;
  }
}
#endif

#if defined(__GNUC__) && defined(__x86_64__)
// Sixty-four entries at a time in sixteen-float registers, the tail under a mask: each entry's
// fused multiply-adds in row order, as the generic loop (bit-equal). Half the instructions of
// the AVX2 kernel for the pass a 16-atom pursuit spends most of its time in.
__attribute__((target("avx512f,fma"))) void subtract_combination_avx512(
    const float* alpha0, const float* const* rows, const float* g, std::size_t t, std::size_t n,
    float* alpha) {
  std::size_t j = 0;
  for (; j + 64 <= n; j += 64) {
    __m512 a0 = _mm512_loadu_ps(alpha0 + j), a1 = _mm512_loadu_ps(alpha0 + j + 16);
    __m512 a2 = _mm512_loadu_ps(alpha0 + j + 32), a3 = _mm512_loadu_ps(alpha0 + j + 48);
    for (std::size_t i = 0; i < t; ++i) {
      const __m512 gi = _mm512_set1_ps(g[i]);
      const float* r = rows[i] + j;
      a0 = _mm512_fnmadd_ps(gi, _mm512_loadu_ps(r), a0);
      a1 = _mm512_fnmadd_ps(gi, _mm512_loadu_ps(r + 16), a1);
      a2 = _mm512_fnmadd_ps(gi, _mm512_loadu_ps(r + 32), a2);
      a3 = _mm512_fnmadd_ps(gi, _mm512_loadu_ps(r + 48), a3);
    }
    _mm512_storeu_ps(alpha + j, a0);
    _mm512_storeu_ps(alpha + j + 16, a1);
    _mm512_storeu_ps(alpha + j + 32, a2);
    _mm512_storeu_ps(alpha + j + 48, a3);
  }
  for (; j < n; j += 16) {
    const std::size_t left = n - j;
    const __mmask16 mask = left >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << left) - 1);
    __m512 acc = _mm512_maskz_loadu_ps(mask, alpha0 + j);
    for (std::size_t i = 0; i < t; ++i)
      acc = _mm512_fnmadd_ps(_mm512_set1_ps(g[i]), _mm512_maskz_loadu_ps(mask, rows[i] + j), acc);
    _mm512_mask_storeu_ps(alpha + j, mask, acc);
  }
}
#endif

void subtract_combination_at_generic(const float* alpha0, const float* const* rows,
                                     const float* g, std::size_t t, const std::int32_t* atoms,
                                     std::size_t n, float* out) {
  for (std::size_t i = 0; i < n; ++i) {
    const auto k = static_cast<std::size_t>(atoms[i]);
    float acc = alpha0[k];
    for (std::size_t r = 0; r < t; ++r) acc = std::fma(-g[r], rows[r][k], acc);
    out[i] = acc;
  }
}

#if defined(__GNUC__) && defined(__x86_64__)
// The FMA instruction instead of a call to libm's fmaf per term (same result).
__attribute__((target("avx2,fma"))) void subtract_combination_at_avx2(
    const float* alpha0, const float* const* rows, const float* g, std::size_t t,
    const std::int32_t* atoms, std::size_t n, float* out) {
  for (std::size_t i = 0; i < n; ++i) {
    const auto k = static_cast<std::size_t>(atoms[i]);
    __m128 acc = _mm_set_ss(alpha0[k]);
    for (std::size_t r = 0; r < t; ++r)
      acc = _mm_fnmadd_ss(_mm_set_ss(g[r]), _mm_set_ss(rows[r][k]), acc);
    out[i] = _mm_cvtss_f32(acc);
  }
}
#endif

using SubtractCombination = void (*)(const float*, const float* const*, const float*,
                                     std::size_t, std::size_t, float*);

SubtractCombination pick_subtract_combination() {
#if defined(__GNUC__) && defined(__x86_64__)
  if (use_avx512_kernels()) return subtract_combination_avx512;
  if (use_avx2_kernels()) return subtract_combination_avx2;
#endif
  return subtract_combination_generic;
}

const SubtractCombination g_subtract_combination = pick_subtract_combination();

}  // namespace

void subtract_combination(const float* alpha0, const float* const* rows, const float* g,
                          std::size_t t, std::size_t n, float* alpha) {
  g_subtract_combination(alpha0, rows, g, t, n, alpha);
}

void subtract_combination_at(const float* alpha0, const float* const* rows, const float* g,
                             std::size_t t, const std::int32_t* atoms, std::size_t n, float* out) {
#if defined(__GNUC__) && defined(__x86_64__)
  static const bool avx2 = use_avx2_kernels();
  if (avx2) return subtract_combination_at_avx2(alpha0, rows, g, t, atoms, n, out);
#endif
  subtract_combination_at_generic(alpha0, rows, g, t, atoms, n, out);
}

namespace {

std::size_t argmax_abs_generic(const float* a, std::size_t n, float* max_abs) {
  std::size_t best = 0;
  float best_abs = 0.0f;
  for (std::size_t k = 0; k < n; ++k) {
    const float v = std::fabs(a[k]);
    if (v > best_abs) {  // strict: ties keep the lowest index, as numpy.argmax
      best_abs = v;
      best = k;
    }
  }
  *max_abs = best_abs;
  return best;
}

#if defined(__GNUC__) && defined(__x86_64__)
#define SMIC_HAVE_AVX2_ARGMAX 1
// One pass, eight lanes: each lane keeps its largest magnitude and the first index holding
// it; the lanes are then merged by magnitude, then lowest index. Same result as the generic
// loop (NaN entries are skipped by both: a comparison with NaN is false).
__attribute__((target("avx2"))) std::size_t argmax_abs_avx2(const float* a, std::size_t n,
                                                            float* max_abs) {
  if (n < 16) return argmax_abs_generic(a, n, max_abs);
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 best = _mm256_setzero_ps();
  __m256i best_index = _mm256_setzero_si256();
  __m256i index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i step = _mm256_set1_epi32(8);
  std::size_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 v = _mm256_andnot_ps(sign, _mm256_loadu_ps(a + j));
    const __m256 greater = _mm256_cmp_ps(v, best, _CMP_GT_OQ);
    best = _mm256_blendv_ps(best, v, greater);
    best_index = _mm256_blendv_epi8(best_index, index, _mm256_castps_si256(greater));
    index = _mm256_add_epi32(index, step);
  }
  alignas(32) float lane_abs[8];
  alignas(32) int32_t lane_index[8];
  _mm256_store_ps(lane_abs, best);
  _mm256_store_si256(reinterpret_cast<__m256i*>(lane_index), best_index);
  float best_abs = 0.0f;
  std::size_t best_at = 0;
  for (int l = 0; l < 8; ++l) {
    const auto at = static_cast<std::size_t>(lane_index[l]);
    if (lane_abs[l] > best_abs || (lane_abs[l] == best_abs && best_abs > 0.0f && at < best_at)) {
      best_abs = lane_abs[l];
      best_at = at;
    }
  }
  for (; j < n; ++j) {
    const float v = std::fabs(a[j]);
    if (v > best_abs) {
      best_abs = v;
      best_at = j;
    }
  }
  *max_abs = best_abs;
  return best_at;
}
#endif

using ArgmaxAbs = std::size_t (*)(const float*, std::size_t, float*);

ArgmaxAbs pick_argmax_abs() {
#if defined(SMIC_HAVE_AVX2_ARGMAX)
  if (use_avx2_kernels()) return argmax_abs_avx2;
#endif
  return argmax_abs_generic;
}

const ArgmaxAbs g_argmax_abs = pick_argmax_abs();

}  // namespace

std::size_t argmax_abs(const float* a, std::size_t n, float* max_abs) {
  return g_argmax_abs(a, n, max_abs);
}

namespace {

float max_lower_bound_generic(const float* c, const float* b, std::size_t n, float margin,
                              float floor) {
  for (std::size_t k = 0; k < n; ++k) floor = std::max(floor, std::fabs(c[k]) - (b[k] + margin));
  return floor;
}

std::size_t collect_candidates_generic(const float* c, const float* b, std::size_t n,
                                       float margin, float floor, std::int32_t* out) {
  std::size_t found = 0;
  for (std::size_t k = 0; k < n; ++k)
    if (std::fabs(c[k]) + (b[k] + margin) >= floor) out[found++] = static_cast<std::int32_t>(k);
  return found;
}

#if defined(__GNUC__) && defined(__x86_64__)
__attribute__((target("avx2"))) float max_lower_bound_avx2(const float* c, const float* b,
                                                           std::size_t n, float margin,
                                                           float floor) {
  const __m256 sign = _mm256_set1_ps(-0.0f), m = _mm256_set1_ps(margin);
  __m256 best = _mm256_set1_ps(floor);
  std::size_t k = 0;
  for (; k + 8 <= n; k += 8) {
    const __m256 lower = _mm256_sub_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(c + k)),
                                       _mm256_add_ps(_mm256_loadu_ps(b + k), m));
    best = _mm256_max_ps(best, lower);
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, best);
  for (const float v : lanes) floor = std::max(floor, v);
  return max_lower_bound_generic(c + k, b + k, n - k, margin, floor);
}

__attribute__((target("avx2"))) std::size_t collect_candidates_avx2(
    const float* c, const float* b, std::size_t n, float margin, float floor, std::int32_t* out) {
  const __m256 sign = _mm256_set1_ps(-0.0f), m = _mm256_set1_ps(margin), f = _mm256_set1_ps(floor);
  std::size_t found = 0, k = 0;
  for (; k + 8 <= n; k += 8) {
    const __m256 upper = _mm256_add_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(c + k)),
                                       _mm256_add_ps(_mm256_loadu_ps(b + k), m));
    auto mask = static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(upper, f, _CMP_GE_OQ)));
    while (mask != 0) {
      out[found++] = static_cast<std::int32_t>(k + static_cast<std::size_t>(__builtin_ctz(mask)));
      mask &= mask - 1;
    }
  }
  for (; k < n; ++k)
    if (std::fabs(c[k]) + (b[k] + margin) >= floor) out[found++] = static_cast<std::int32_t>(k);
  return found;
}
#endif

}  // namespace

float max_lower_bound(const float* c, const float* b, std::size_t n, float margin, float floor) {
#if defined(__GNUC__) && defined(__x86_64__)
  static const bool avx2 = use_avx2_kernels();
  if (avx2) return max_lower_bound_avx2(c, b, n, margin, floor);
#endif
  return max_lower_bound_generic(c, b, n, margin, floor);
}

std::size_t collect_candidates(const float* c, const float* b, std::size_t n, float margin,
                               float floor, std::int32_t* out) {
#if defined(__GNUC__) && defined(__x86_64__)
  static const bool avx2 = use_avx2_kernels();
  if (avx2) return collect_candidates_avx2(c, b, n, margin, floor, out);
#endif
  return collect_candidates_generic(c, b, n, margin, floor, out);
}

}  // namespace smic::detail
