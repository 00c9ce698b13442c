// Uniform scalar quantizer with a dead zone, for sparse coefficients.
//
//   q     = sign(x) * floor(|x| / step + rounding)      rounding in [0, 1)
//   x_hat = sign(q) * (|q| - bias) * step              bias in [0, 1)
//
// rounding = 0.5 is plain rounding; a smaller rounding widens the zero bin (the dead zone is
// |x| < (1 - rounding) * step) and shifts every decision threshold up, which suits the
// peaked, heavy-tailed coefficient distributions of sparse codes. bias moves reconstruction
// points toward zero (towards the centroid of a decaying density within each bin).
#pragma once
#include <cstddef>
#include <cstdint>

namespace smic {

struct ScalarQuantizer {
  double step = 1.0;
  double rounding = 0.5;
  double bias = 0.0;

  /// Throws InvalidArgument unless step > 0 is finite, rounding and bias are in [0, 1).
  void validate() const;
  /// Quantize n values. Throws InvalidArgument if a value is not finite or |x| / step would
  /// not fit in an int32.
  void quantize(const float* x, std::size_t n, std::int32_t* q) const;
  /// Reconstruction points of n integers.
  void dequantize(const std::int32_t* q, std::size_t n, float* x) const;
};

}  // namespace smic
