// Internal: micro-kernel shape shared by the packers and every kernel.
#pragma once
#include <cstddef>

namespace smic::detail {

constexpr std::size_t kMR = 6;    // rows of A (signals) per micro-tile
constexpr std::size_t kNR = 16;   // rows of B (atoms) per micro-tile: two AVX registers
constexpr std::size_t kKC = 256;  // depth block: a B micro-panel (16 KiB) stays in L1
constexpr std::size_t kMC = 72;   // rows of A per packed block: stays in L2
// A product with at most this many rows of A takes the row kernel: the micro-kernel would pad
// them to kMR rows and waste most of its work.
constexpr std::size_t kSmallRows = kMR - 1;

// c[r * ldc + j] (+)= sum_k a[k * kMR + r] * b[k * kNR + j] for r < mr, j < nr.
// a and b are zero-padded micro-panels; `accumulate` adds to C instead of overwriting it.
using MicroKernel = void (*)(std::size_t kc, const float* a, const float* b, float* c,
                             std::size_t ldc, std::size_t mr, std::size_t nr, bool accumulate);

// Row kernel (GEMV for m == 1), 1 <= m <= kSmallRows, over one depth block of packed B:
// c[r * ldc + jp * kNR + j] (+)= sum_k a[r * lda + k] * panels[jp * kc * kNR + k * kNR + j]
// for r < m, jp < n_panels and jp * kNR + j < n; A is read unpacked. Every entry is summed in
// the same order, with the same (fused or unfused) operations, as by the micro-kernel of the
// same family, so a row's result does not depend on which kernel computed it.
using RowKernel = void (*)(std::size_t kc, const float* a, std::size_t m, std::size_t lda,
                           const float* panels, std::size_t n_panels, std::size_t n, float* c,
                           std::size_t ldc, bool accumulate);

void micro_kernel_generic(std::size_t kc, const float* a, const float* b, float* c,
                          std::size_t ldc, std::size_t mr, std::size_t nr, bool accumulate);
void row_kernel_generic(std::size_t kc, const float* a, std::size_t m, std::size_t lda,
                        const float* panels, std::size_t n_panels, std::size_t n, float* c,
                        std::size_t ldc, bool accumulate);
#if defined(SMIC_HAVE_AVX2_KERNEL)
void micro_kernel_avx2(std::size_t kc, const float* a, const float* b, float* c, std::size_t ldc,
                       std::size_t mr, std::size_t nr, bool accumulate);
void row_kernel_avx2(std::size_t kc, const float* a, std::size_t m, std::size_t lda,
                     const float* panels, std::size_t n_panels, std::size_t n, float* c,
                     std::size_t ldc, bool accumulate);
#endif

}  // namespace smic::detail
