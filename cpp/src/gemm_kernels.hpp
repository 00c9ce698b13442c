// Internal: micro-kernel shape shared by the packers and every kernel.
#pragma once
#include <cstddef>

namespace smic::detail {

constexpr std::size_t kMR = 6;    // rows of A (signals) per micro-tile
constexpr std::size_t kNR = 16;   // rows of B (atoms) per micro-tile: two AVX registers
constexpr std::size_t kKC = 256;  // depth block: a B micro-panel (16 KiB) stays in L1
constexpr std::size_t kMC = 72;   // rows of A per packed block: stays in L2

// c[r * ldc + j] (+)= sum_k a[k * kMR + r] * b[k * kNR + j] for r < mr, j < nr.
// a and b are zero-padded micro-panels; `accumulate` adds to C instead of overwriting it.
using MicroKernel = void (*)(std::size_t kc, const float* a, const float* b, float* c,
                             std::size_t ldc, std::size_t mr, std::size_t nr, bool accumulate);

void micro_kernel_generic(std::size_t kc, const float* a, const float* b, float* c,
                          std::size_t ldc, std::size_t mr, std::size_t nr, bool accumulate);
#if defined(SMIC_HAVE_AVX2_KERNEL)
void micro_kernel_avx2(std::size_t kc, const float* a, const float* b, float* c, std::size_t ldc,
                       std::size_t mr, std::size_t nr, bool accumulate);
#endif

}  // namespace smic::detail
