// Internal: the atom screen's AVX-512 VNNI kernels (screen_avx512.cpp; see atom_screen.hpp).
// atom_screen.cpp holds their plain C++ twins and calls these only after a CPUID check.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/gemm_kernels.hpp"

namespace smic::detail {

// out[b * 64 + a] = sum over depth of xu * levels for atom a of block b, every block of
// levels ([block][quad][64 atoms][4 depths], int8) against xu (quads * 4 unsigned bytes); the
// blocks visited last to first with `backwards`.
void screen_levels_avx512(const std::uint8_t* xu, const std::int8_t* levels, std::size_t n_blocks,
                          std::size_t quads, std::int32_t* out, bool backwards);

// x ~ tau * v with v = round(x / tau) in [-127, 127] and tau = max |x| / 127; writes v + 128 to
// xu[0 .. dim), the float sum of squares of x - tau * v to *w_sq, and returns tau (0 when x
// is zero, xu then all 128).
float quantize_row_avx512(const float* x, std::size_t dim, std::uint8_t* xu, float* w_sq);

// out[l] = the exact product of x with the float16 row rows[l] (l < 8, dim deep): per depth
// block of kKC a chain of fused multiply-adds from zero, the blocks' sums added in order.
void exact_rows_avx512(const float* x, const std::uint16_t* const* rows, std::size_t dim,
                       float* out);

}  // namespace smic::detail
