// Internal: the transform layer's vector kernels (transform_avx2.cpp) and their portable
// twins (transform.cpp). Every version computes the same floats: see transform_avx2.cpp.
#pragma once
#include <cstddef>

namespace smic::detail {

/// out[u] = the fixed-order dot product of `axis` with row u of `rows` (n_rows x dim).
void transform_dots_avx2(const float* axis, const float* rows, std::size_t n_rows, std::size_t dim,
                         float* out);
/// The same for two axes at once: out0[u] with axis0, out1[u] with axis1.
void transform_dots2_avx2(const float* axis0, const float* axis1, const float* rows,
                          std::size_t n_rows, std::size_t dim, float* out0, float* out1);
/// row[k] += y[a] * axes[a][k] for a = 0 .. count - 1 in that order (each product rounded,
/// then its sum).
void transform_axpy_avx2(const float* y, const float* const* axes, std::size_t count, float* row,
                         std::size_t dim);

}  // namespace smic::detail
