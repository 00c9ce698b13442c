// AVX2 kernels of the transform layer (transform.cpp): the same sums as the portable code, in
// the same order, so that levels and reconstructions are bit-identical on every CPU: eight
// interleaved float sums per dot product (one ymm register: lane l sums elements k = l mod 8),
// every product rounded before its sum (mul then add, never a fused multiply-add), combined as
// ((0 + 1) + (2 + 3)) + ((4 + 5) + (6 + 7)). Compiled with -mavx2 and run after a CPUID check.
#include "kernels/transform_kernels.hpp"

#if defined(SMIC_HAVE_AVX2_KERNEL)
#include <immintrin.h>

#include <cstddef>

namespace smic::detail {

namespace {

inline float combine(__m256 v) {
  alignas(32) float l[8];
  _mm256_store_ps(l, v);
  return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

}  // namespace

void transform_dots_avx2(const float* axis, const float* rows, std::size_t n_rows, std::size_t dim,
                         float* out) {
  const std::size_t body = dim / 8 * 8;
  std::size_t u = 0;
  for (; u + 4 <= n_rows; u += 4) {  // four rows share each load of the axis
    const float* r0 = rows + u * dim;
    const float* r1 = r0 + dim;
    const float* r2 = r1 + dim;
    const float* r3 = r2 + dim;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (std::size_t k = 0; k < body; k += 8) {
      const __m256 x = _mm256_loadu_ps(axis + k);
      a0 = _mm256_add_ps(a0, _mm256_mul_ps(x, _mm256_loadu_ps(r0 + k)));
      a1 = _mm256_add_ps(a1, _mm256_mul_ps(x, _mm256_loadu_ps(r1 + k)));
      a2 = _mm256_add_ps(a2, _mm256_mul_ps(x, _mm256_loadu_ps(r2 + k)));
      a3 = _mm256_add_ps(a3, _mm256_mul_ps(x, _mm256_loadu_ps(r3 + k)));
    }
    __m256* acc[4] = {&a0, &a1, &a2, &a3};
    const float* rs[4] = {r0, r1, r2, r3};
    for (int v = 0; v < 4; ++v) {
      alignas(32) float l[8];
      _mm256_store_ps(l, *acc[v]);
      for (std::size_t k = body; k < dim; ++k) l[k & 7] += axis[k] * rs[v][k];
      out[u + v] = ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
    }
  }
  for (; u < n_rows; ++u) {
    const float* r = rows + u * dim;
    __m256 a = _mm256_setzero_ps();
    for (std::size_t k = 0; k < body; k += 8)
      a = _mm256_add_ps(a, _mm256_mul_ps(_mm256_loadu_ps(axis + k), _mm256_loadu_ps(r + k)));
    if (body == dim) {
      out[u] = combine(a);
    } else {
      alignas(32) float l[8];
      _mm256_store_ps(l, a);
      for (std::size_t k = body; k < dim; ++k) l[k & 7] += axis[k] * r[k];
      out[u] = ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
    }
  }
}

void transform_dots2_avx2(const float* axis0, const float* axis1, const float* rows,
                          std::size_t n_rows, std::size_t dim, float* out0, float* out1) {
  // Two axes times four rows: eight independent sums, enough to keep both add pipes busy (one
  // axis times four rows waits on the add latency), with six loads per eight products.
  const std::size_t body = dim / 8 * 8;
  const auto finish = [&](__m256 acc, const float* axis, const float* r) {
    alignas(32) float l[8];
    _mm256_store_ps(l, acc);
    for (std::size_t k = body; k < dim; ++k) l[k & 7] += axis[k] * r[k];
    return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
  };
  std::size_t u = 0;
  for (; u + 4 <= n_rows; u += 4) {
    const float* r0 = rows + u * dim;
    const float* r1 = r0 + dim;
    const float* r2 = r1 + dim;
    const float* r3 = r2 + dim;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    __m256 b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    for (std::size_t k = 0; k < body; k += 8) {
      const __m256 x = _mm256_loadu_ps(axis0 + k), z = _mm256_loadu_ps(axis1 + k);
      const __m256 v0 = _mm256_loadu_ps(r0 + k), v1 = _mm256_loadu_ps(r1 + k);
      const __m256 v2 = _mm256_loadu_ps(r2 + k), v3 = _mm256_loadu_ps(r3 + k);
      a0 = _mm256_add_ps(a0, _mm256_mul_ps(x, v0));
      b0 = _mm256_add_ps(b0, _mm256_mul_ps(z, v0));
      a1 = _mm256_add_ps(a1, _mm256_mul_ps(x, v1));
      b1 = _mm256_add_ps(b1, _mm256_mul_ps(z, v1));
      a2 = _mm256_add_ps(a2, _mm256_mul_ps(x, v2));
      b2 = _mm256_add_ps(b2, _mm256_mul_ps(z, v2));
      a3 = _mm256_add_ps(a3, _mm256_mul_ps(x, v3));
      b3 = _mm256_add_ps(b3, _mm256_mul_ps(z, v3));
    }
    out0[u] = finish(a0, axis0, r0);
    out0[u + 1] = finish(a1, axis0, r1);
    out0[u + 2] = finish(a2, axis0, r2);
    out0[u + 3] = finish(a3, axis0, r3);
    out1[u] = finish(b0, axis1, r0);
    out1[u + 1] = finish(b1, axis1, r1);
    out1[u + 2] = finish(b2, axis1, r2);
    out1[u + 3] = finish(b3, axis1, r3);
  }
  if (u < n_rows) {
    transform_dots_avx2(axis0, rows + u * dim, n_rows - u, dim, out0 + u);
    transform_dots_avx2(axis1, rows + u * dim, n_rows - u, dim, out1 + u);
  }
}

void transform_axpy_avx2(const float* y, const float* const* axes, std::size_t count, float* row,
                         std::size_t dim) {
  std::size_t a = 0;
  for (; a + 4 <= count; a += 4) {  // four axes per pass over the row: ((((row + y0 a0) + y1 a1) ...
    const __m256 y0 = _mm256_set1_ps(y[a]), y1 = _mm256_set1_ps(y[a + 1]);
    const __m256 y2 = _mm256_set1_ps(y[a + 2]), y3 = _mm256_set1_ps(y[a + 3]);
    const float *x0 = axes[a], *x1 = axes[a + 1], *x2 = axes[a + 2], *x3 = axes[a + 3];
    std::size_t k = 0;
    for (; k + 8 <= dim; k += 8) {
      __m256 v = _mm256_loadu_ps(row + k);
      v = _mm256_add_ps(v, _mm256_mul_ps(y0, _mm256_loadu_ps(x0 + k)));
      v = _mm256_add_ps(v, _mm256_mul_ps(y1, _mm256_loadu_ps(x1 + k)));
      v = _mm256_add_ps(v, _mm256_mul_ps(y2, _mm256_loadu_ps(x2 + k)));
      v = _mm256_add_ps(v, _mm256_mul_ps(y3, _mm256_loadu_ps(x3 + k)));
      _mm256_storeu_ps(row + k, v);
    }
    for (; k < dim; ++k)
      row[k] = (((row[k] + y[a] * x0[k]) + y[a + 1] * x1[k]) + y[a + 2] * x2[k]) + y[a + 3] * x3[k];
  }
  for (; a < count; ++a) {
    const __m256 yv = _mm256_set1_ps(y[a]);
    const float* x = axes[a];
    std::size_t k = 0;
    for (; k + 8 <= dim; k += 8)
      _mm256_storeu_ps(row + k, _mm256_add_ps(_mm256_loadu_ps(row + k), _mm256_mul_ps(yv, _mm256_loadu_ps(x + k))));
    for (; k < dim; ++k) row[k] += y[a] * x[k];
  }
}

}  // namespace smic::detail
#endif  // SMIC_HAVE_AVX2_KERNEL
