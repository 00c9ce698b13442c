// AVX2 kernels: the micro-kernel (6 x 16 tile, 12 accumulator registers), the row kernel for
// products of few rows, and the one-row kernel over float16 panels (F16C). This file alone is
// built with -mavx2 -mfma -mf16c; gemm.cpp calls them only after the CPU reports all three.
//
// Every step is one fused multiply-add (a single rounding), as std::fma in the generic
// kernels: each lane computes what they compute, so the two families agree bit for bit.
// (Fused, not a multiply then an add: with F16C conversions in the same pipes, the unfused
// one-row kernel measured 37 us against 26 us at K = d = 1024.)
#include "kernels/gemm_kernels.hpp"

#if defined(SMIC_HAVE_AVX2_KERNEL)
#include <immintrin.h>

#include "kernels/half_row_kernel.hpp"

namespace smic::detail {

void micro_kernel_avx2(std::size_t kc, const float* a, const float* b, float* c, std::size_t ldc,
                       std::size_t mr, std::size_t nr, bool accumulate) {
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
  for (std::size_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
    __m256 av = _mm256_broadcast_ss(a + 0);
    c00 = _mm256_fmadd_ps(av, b0, c00); c01 = _mm256_fmadd_ps(av, b1, c01);
    av = _mm256_broadcast_ss(a + 1);
    c10 = _mm256_fmadd_ps(av, b0, c10); c11 = _mm256_fmadd_ps(av, b1, c11);
    av = _mm256_broadcast_ss(a + 2);
    c20 = _mm256_fmadd_ps(av, b0, c20); c21 = _mm256_fmadd_ps(av, b1, c21);
    av = _mm256_broadcast_ss(a + 3);
    c30 = _mm256_fmadd_ps(av, b0, c30); c31 = _mm256_fmadd_ps(av, b1, c31);
    av = _mm256_broadcast_ss(a + 4);
    c40 = _mm256_fmadd_ps(av, b0, c40); c41 = _mm256_fmadd_ps(av, b1, c41);
    av = _mm256_broadcast_ss(a + 5);
    c50 = _mm256_fmadd_ps(av, b0, c50); c51 = _mm256_fmadd_ps(av, b1, c51);
    a += kMR;
    b += kNR;
  }
  const __m256 lo[kMR] = {c00, c10, c20, c30, c40, c50}, hi[kMR] = {c01, c11, c21, c31, c41, c51};
  for (std::size_t r = 0; r < mr; ++r) store_row(lo[r], hi[r], c + r * ldc, nr, accumulate);
}


namespace {

// R rows against P consecutive panels starting at panel jp0 (R * P <= 5: R = 1..5 with P = 1,
// or 1 x 4, or 2 x 2). Each accumulator pair is one row's FMA chain over k from zero, exactly
// as in micro_kernel_avx2; several independent chains hide the FMA latency. The accumulators
// are named variables, not an array: GCC keeps an array of __m256 in memory and stores it on
// every iteration, which halves the speed.
template <std::size_t R, std::size_t P>
inline void row_panels(std::size_t kc, const float* a, std::size_t lda, const float* panels,
                       std::size_t jp0, std::size_t n, float* c, std::size_t ldc,
                       bool accumulate) {
  static_assert((P == 1 && R >= 1 && R <= 5) || (R == 1 && P == 4) || (R == 2 && P == 2),
                "unsupported row kernel shape");
  __m256 l0 = _mm256_setzero_ps(), h0 = l0, l1 = l0, h1 = l0, l2 = l0, h2 = l0, l3 = l0,
         h3 = l0, l4 = l0, h4 = l0;
  const std::size_t ps = kc * kNR;  // panel stride
  const float* b = panels + jp0 * ps;
  const float* a0 = a;
  const float* a1 = a + (R > 1 ? lda : 0);
  const float* a2 = a + (R > 2 ? 2 * lda : 0);
  const float* a3 = a + (R > 3 ? 3 * lda : 0);
  const float* a4 = a + (R > 4 ? 4 * lda : 0);
  for (std::size_t k = 0; k < kc; ++k, b += kNR) {
    if constexpr (P == 1) {  // slot r: row r
      const __m256 bl = _mm256_loadu_ps(b), bh = _mm256_loadu_ps(b + 8);
      __m256 av = _mm256_broadcast_ss(a0 + k);
      l0 = _mm256_fmadd_ps(av, bl, l0); h0 = _mm256_fmadd_ps(av, bh, h0);
      if constexpr (R > 1) {
        av = _mm256_broadcast_ss(a1 + k);
        l1 = _mm256_fmadd_ps(av, bl, l1); h1 = _mm256_fmadd_ps(av, bh, h1);
      }
      if constexpr (R > 2) {
        av = _mm256_broadcast_ss(a2 + k);
        l2 = _mm256_fmadd_ps(av, bl, l2); h2 = _mm256_fmadd_ps(av, bh, h2);
      }
      if constexpr (R > 3) {
        av = _mm256_broadcast_ss(a3 + k);
        l3 = _mm256_fmadd_ps(av, bl, l3); h3 = _mm256_fmadd_ps(av, bh, h3);
      }
      if constexpr (R > 4) {
        av = _mm256_broadcast_ss(a4 + k);
        l4 = _mm256_fmadd_ps(av, bl, l4); h4 = _mm256_fmadd_ps(av, bh, h4);
      }
    } else if constexpr (R == 1) {  // slot p: panel jp0 + p
      const __m256 av = _mm256_broadcast_ss(a0 + k);
      l0 = _mm256_fmadd_ps(av, _mm256_loadu_ps(b), l0);
      h0 = _mm256_fmadd_ps(av, _mm256_loadu_ps(b + 8), h0);
      l1 = _mm256_fmadd_ps(av, _mm256_loadu_ps(b + ps), l1);
      h1 = _mm256_fmadd_ps(av, _mm256_loadu_ps(b + ps + 8), h1);
      l2 = _mm256_fmadd_ps(av, _mm256_loadu_ps(b + 2 * ps), l2);
      h2 = _mm256_fmadd_ps(av, _mm256_loadu_ps(b + 2 * ps + 8), h2);
      l3 = _mm256_fmadd_ps(av, _mm256_loadu_ps(b + 3 * ps), l3);
      h3 = _mm256_fmadd_ps(av, _mm256_loadu_ps(b + 3 * ps + 8), h3);
    } else {  // 2 x 2, slot 2 * r + p
      const __m256 bl0 = _mm256_loadu_ps(b), bh0 = _mm256_loadu_ps(b + 8);
      const __m256 bl1 = _mm256_loadu_ps(b + ps), bh1 = _mm256_loadu_ps(b + ps + 8);
      __m256 av = _mm256_broadcast_ss(a0 + k);
      l0 = _mm256_fmadd_ps(av, bl0, l0); h0 = _mm256_fmadd_ps(av, bh0, h0);
      l1 = _mm256_fmadd_ps(av, bl1, l1); h1 = _mm256_fmadd_ps(av, bh1, h1);
      av = _mm256_broadcast_ss(a1 + k);
      l2 = _mm256_fmadd_ps(av, bl0, l2); h2 = _mm256_fmadd_ps(av, bh0, h2);
      l3 = _mm256_fmadd_ps(av, bl1, l3); h3 = _mm256_fmadd_ps(av, bh1, h3);
    }
  }
  const __m256 lo[5] = {l0, l1, l2, l3, l4}, hi[5] = {h0, h1, h2, h3, h4};
  for (std::size_t slot = 0; slot < R * P; ++slot) {
    const std::size_t r = slot / P, col = (jp0 + slot % P) * kNR;
    store_row(lo[slot], hi[slot], c + r * ldc + col, n - col < kNR ? n - col : kNR, accumulate);
  }
}

template <std::size_t R, std::size_t P>
void row_kernel_rows(std::size_t kc, const float* a, std::size_t lda, const float* panels,
                     std::size_t n_panels, std::size_t n, float* c, std::size_t ldc,
                     bool accumulate) {
  std::size_t jp = 0;
  for (; jp + P <= n_panels; jp += P)
    row_panels<R, P>(kc, a, lda, panels, jp, n, c, ldc, accumulate);
  for (; jp < n_panels; ++jp) row_panels<R, 1>(kc, a, lda, panels, jp, n, c, ldc, accumulate);
}

}  // namespace

void row_kernel_avx2(std::size_t kc, const float* a, std::size_t m, std::size_t lda,
                     const float* panels, std::size_t n_panels, std::size_t n, float* c,
                     std::size_t ldc, bool accumulate) {
  // Panels per pass chosen so the accumulators (2 * R * P) and B loads fit 16 registers.
  switch (m) {
    case 1: return row_kernel_rows<1, 4>(kc, a, lda, panels, n_panels, n, c, ldc, accumulate);
    case 2: return row_kernel_rows<2, 2>(kc, a, lda, panels, n_panels, n, c, ldc, accumulate);
    case 3: return row_kernel_rows<3, 1>(kc, a, lda, panels, n_panels, n, c, ldc, accumulate);
    case 4: return row_kernel_rows<4, 1>(kc, a, lda, panels, n_panels, n, c, ldc, accumulate);
    default: return row_kernel_rows<5, 1>(kc, a, lda, panels, n_panels, n, c, ldc, accumulate);
  }
}
static_assert(kSmallRows == 5, "row_kernel_avx2 dispatches 1 to 5 rows");

void half_row_kernel_avx2(std::size_t kc, const float* a, const std::uint16_t* panels,
                          std::size_t n_panels, std::size_t group, std::size_t n, float* c,
                          bool accumulate, bool backwards) {
  half_row_groups<4>(kc, a, panels, n_panels, group, n, c, accumulate, backwards);  // 8 of 16 registers
}

}  // namespace smic::detail
#endif
