// Internal: micro-kernel shape shared by the packers and every kernel.
#pragma once
#include <cstddef>
#include <cstdint>

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
// the same order, with the same operations (fused multiply-adds), as by the micro-kernel,
// so a row's result does not depend on which kernel computed it.
using RowKernel = void (*)(std::size_t kc, const float* a, std::size_t m, std::size_t lda,
                           const float* panels, std::size_t n_panels, std::size_t n, float* c,
                           std::size_t ldc, bool accumulate);

// Row kernel for one row of A over B panels stored as IEEE half floats (PackedB's float16
// copy, same layout as the float32 panels): c[jp * kNR + j] (+)= sum_k a[k] * half(b). Every
// half converts exactly to the float the float32 panel holds, and the sums run in the row
// kernel's order, so the result is bit-identical to the RowKernel; it reads half the bytes,
// which is what one row (a pass over all of B) is bound by. With `backwards`, the panels are
// visited last to first (same results, the other memory order).
using HalfRowKernel = void (*)(std::size_t kc, const float* a, const std::uint16_t* panels,
                               std::size_t n_panels, std::size_t n, float* c, bool accumulate,
                               bool backwards);

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
void half_row_kernel_avx2(std::size_t kc, const float* a, const std::uint16_t* panels,
                          std::size_t n_panels, std::size_t n, float* c, bool accumulate,
                          bool backwards);
#endif

}  // namespace smic::detail
