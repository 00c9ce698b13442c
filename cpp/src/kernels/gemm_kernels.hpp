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

// Row kernel for one row of A over the float16 copy of B (`panels`: one depth block of it):
// c[jp * kNR + j] (+)= sum_k a[k] * half(b) for jp < n_panels and jp * kNR + j < n. Every
// half converts exactly to the float the float32 panel holds, and the sums run in the row
// kernel's order, so the result is bit-identical to the RowKernel; it reads half the bytes,
// which is what one row (a pass over all of B) is bound by. With `backwards`, the groups are
// visited last to first (same results, the other memory order).
//
// Layout: the float32 panels' depth blocks, and in each block the same bytes per group of
// `group` consecutive panels (fewer in the last group), but a group's rows interleave its
// panels: the half of atom (g0 + p) * kNR + j at depth k, for the group that starts at panel
// g0 and is `width` panels wide, is at group_start + k * width * kNR + p * kNR + j. A pass then
// reads each group as one stream, however many of its panels it carries (separate panels 8 KiB
// apart are as many streams; they fall into the same L1 sets and evict one another beyond
// four). The group is as wide as the kernel family carries panels per pass: PackedB asks
// half_group_width() when it is built.
using HalfRowKernel = void (*)(std::size_t kc, const float* a, const std::uint16_t* panels,
                               std::size_t n_panels, std::size_t group, std::size_t n, float* c,
                               bool accumulate, bool backwards);

// Panels per group of a new PackedB's float16 copy: what the one-row kernel in use carries per
// pass (any width gives the same results with any kernel; only the speed differs).
std::size_t half_group_width();

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
                          std::size_t n_panels, std::size_t group, std::size_t n, float* c,
                          bool accumulate, bool backwards);
#endif
#if defined(SMIC_HAVE_AVX512_KERNEL)
void half_row_kernel_avx512(std::size_t kc, const float* a, const std::uint16_t* panels,
                            std::size_t n_panels, std::size_t group, std::size_t n, float* c,
                            bool accumulate, bool backwards);
#endif

}  // namespace smic::detail
