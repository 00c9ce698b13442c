// Internal: the one-row kernel over float16 panels, as a template that gemm_avx2.cpp and
// gemm_avx512.cpp each instantiate for their own target (16 or 32 vector registers). Include
// it only there: everything here has internal linkage, so the two instruction sets never meet
// in one function.
#pragma once
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "kernels/gemm_kernels.hpp"

namespace smic::detail {
namespace {

// Write or add acc (kNR lanes) into the first nr entries of crow, as the micro-kernel does.
inline void store_row(__m256 lo, __m256 hi, float* crow, std::size_t nr, bool accumulate) {
  if (nr == kNR) {
    if (accumulate) {
      lo = _mm256_add_ps(lo, _mm256_loadu_ps(crow));
      hi = _mm256_add_ps(hi, _mm256_loadu_ps(crow + 8));
    }
    _mm256_storeu_ps(crow, lo);
    _mm256_storeu_ps(crow + 8, hi);
    return;
  }
  alignas(32) float tile[kNR];
  _mm256_store_ps(tile, lo);
  _mm256_store_ps(tile + 8, hi);
  for (std::size_t j = 0; j < nr; ++j) crow[j] = accumulate ? crow[j] + tile[j] : tile[j];
}

inline __m256 load_halves(const std::uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// Panels p0 .. p0 + P - 1 of a group of `width` panels (layout: see HalfRowKernel), whose first
// panel is column panel jp0 of B: row_panels<1, P>'s FMA chains, each B vector converted from 8
// halves (exact) instead of loaded as 8 floats.
template <std::size_t P>
inline void half_row_part(std::size_t kc, const float* a, const std::uint16_t* group,
                          std::size_t width, std::size_t p0, std::size_t jp0, std::size_t n,
                          float* c, bool accumulate) {
  static_assert(P >= 1 && P <= 8, "1 to 8 panels per pass");
  // Named accumulators, not an array: GCC keeps an array of __m256 in memory and stores it on
  // every iteration, which halves the speed.
  __m256 l0 = _mm256_setzero_ps(), l1 = l0, l2 = l0, l3 = l0, l4 = l0, l5 = l0, l6 = l0, l7 = l0;
  __m256 h0 = l0, h1 = l0, h2 = l0, h3 = l0, h4 = l0, h5 = l0, h6 = l0, h7 = l0;
  const std::size_t row = width * kNR;
  const std::uint16_t* b = group + p0 * kNR;
  for (std::size_t k = 0; k < kc; ++k, b += row) {
    const __m256 av = _mm256_broadcast_ss(a + k);
#define SMIC_HALF_PANEL_STEP(i)                                                   \
  if constexpr (P > i) {                                                          \
    l##i = _mm256_fmadd_ps(av, load_halves(b + i * kNR), l##i);                   \
    h##i = _mm256_fmadd_ps(av, load_halves(b + i * kNR + 8), h##i);               \
  }
    SMIC_HALF_PANEL_STEP(0) SMIC_HALF_PANEL_STEP(1) SMIC_HALF_PANEL_STEP(2)
    SMIC_HALF_PANEL_STEP(3) SMIC_HALF_PANEL_STEP(4) SMIC_HALF_PANEL_STEP(5)
    SMIC_HALF_PANEL_STEP(6) SMIC_HALF_PANEL_STEP(7)
#undef SMIC_HALF_PANEL_STEP
  }
  const __m256 lo[8] = {l0, l1, l2, l3, l4, l5, l6, l7}, hi[8] = {h0, h1, h2, h3, h4, h5, h6, h7};
  for (std::size_t p = 0; p < P; ++p) {
    const std::size_t col = (jp0 + p0 + p) * kNR;
    store_row(lo[p], hi[p], c + col, n - col < kNR ? n - col : kNR, accumulate);
  }
}

// The HalfRowKernel, at most MaxP panels (2 * MaxP accumulators) per pass over a group (all of
// it when the group is at most MaxP wide, as the copy made for this kernel's family is).
template <std::size_t MaxP>
void half_row_groups(std::size_t kc, const float* a, const std::uint16_t* panels,
                     std::size_t n_panels, std::size_t group_width, std::size_t n, float* c,
                     bool accumulate, bool backwards) {
  static_assert(MaxP >= 1 && MaxP <= 8, "1 to 8 panels per pass");
  const std::size_t n_groups = (n_panels + group_width - 1) / group_width;
  for (std::size_t i = 0; i < n_groups; ++i) {
    const std::size_t jp0 = (backwards ? n_groups - 1 - i : i) * group_width;
    const std::size_t width = n_panels - jp0 < group_width ? n_panels - jp0 : group_width;
    const std::uint16_t* group = panels + jp0 * kc * kNR;
    for (std::size_t p0 = 0; p0 < width; p0 += MaxP) {
      const std::size_t parts = width - p0 < MaxP ? width - p0 : MaxP;
      switch (parts) {  // constant trip counts keep the accumulators in registers
        case 1: half_row_part<1>(kc, a, group, width, p0, jp0, n, c, accumulate); break;
        case 2: half_row_part<2>(kc, a, group, width, p0, jp0, n, c, accumulate); break;
        case 3: half_row_part<3>(kc, a, group, width, p0, jp0, n, c, accumulate); break;
        case 4: half_row_part<4>(kc, a, group, width, p0, jp0, n, c, accumulate); break;
        case 5: half_row_part<5 <= MaxP ? 5 : 1>(kc, a, group, width, p0, jp0, n, c, accumulate); break;
        case 6: half_row_part<6 <= MaxP ? 6 : 1>(kc, a, group, width, p0, jp0, n, c, accumulate); break;
        case 7: half_row_part<7 <= MaxP ? 7 : 1>(kc, a, group, width, p0, jp0, n, c, accumulate); break;
        default: half_row_part<MaxP>(kc, a, group, width, p0, jp0, n, c, accumulate); break;
      }
    }
  }
}

}  // namespace
}  // namespace smic::detail
