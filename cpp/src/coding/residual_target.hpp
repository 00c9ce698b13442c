// What a refinement layer codes of an item: the point of its unit embedding e's ray orthogonal
// to what its atoms decode to (x, unit), e / cos(e, x), minus x. Every reader renormalises the
// row it rebuilds, so any point of the ray decodes like e; this one has no radial part, which
// e - x carries (1 - cos along x), and codes held-out MiniLM items in fewer bits at equal
// cosine (BENCHMARKS.md). Items whose atoms decode far from them (cos < 1/2, or no atoms) aim
// at e itself. An encoder's choice: decoding
// never needs the cosine. The arithmetic is float32 in a fixed order (docs/format.md writes it
// out), so every writer picks the same levels.
#pragma once
#include <cstddef>

#include "smic/transform.hpp"

namespace smic::detail {

/// sum_k a[k] b[k] in eight interleaved float sums, combined pairwise: a fixed order.
inline float lane_dot(const float* a, const float* b, std::size_t dim) {
  float lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::size_t k = 0;
  for (; k + 8 <= dim; k += 8)
    for (int l = 0; l < 8; ++l) lanes[l] += a[k + l] * b[k + l];
  for (; k < dim; ++k) lanes[k & 7] += a[k] * b[k];
  return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
}

/// The factor s of the target s e: 1 / cos(e, x), or 1 below kTransformTargetMinCosine.
inline float residual_target_scale(const float* e, const float* x, std::size_t dim) {
  const float cosine = lane_dot(e, x, dim);
  return cosine >= kTransformTargetMinCosine ? 1.0f / cosine : 1.0f;
}

/// out[k] = s e[k] - x[k] (float32, as every writer computes it).
inline void residual_target(const float* e, const float* x, std::size_t dim, float* out) {
  const float s = residual_target_scale(e, x, dim);
  for (std::size_t k = 0; k < dim; ++k) out[k] = s * e[k] - x[k];
}

}  // namespace smic::detail
