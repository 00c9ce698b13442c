// The one-row kernel over float16 panels, built for AVX-512 (-mavx512f -mavx512vl): the same
// 256-bit FMA chains as the AVX2 kernel, but the 32 vector registers of AVX-512 hold eight
// panels per pass (16 accumulators) instead of four, twice the chains in flight, over groups
// of eight panels stored as one stream. Measured on Zen 4 (K = d = 1024, one item): about
// 1.5 us less per product than the AVX2 kernel. 512-bit registers did worse there (41 us
// against 31: the float16 conversion of a full 512-bit register is the slow part), so the
// vectors stay 256 bits wide. gemm.cpp calls it only after the CPU and the OS report AVX-512F.
//
// Each lane computes exactly what the AVX2 and generic kernels compute for that atom: the
// same fused multiply-adds over the same exact float16 -> float32 conversions, in the same
// depth order, so every family writes the same bits.
#include "kernels/gemm_kernels.hpp"

#if defined(SMIC_HAVE_AVX512_KERNEL)
#include "kernels/half_row_kernel.hpp"

namespace smic::detail {

void half_row_kernel_avx512(std::size_t kc, const float* a, const std::uint16_t* panels,
                            std::size_t n_panels, std::size_t group, std::size_t n, float* c,
                            bool accumulate, bool backwards) {
  half_row_groups<8>(kc, a, panels, n_panels, group, n, c, accumulate, backwards);  // 16 of 32 registers
}

}  // namespace smic::detail
#endif
