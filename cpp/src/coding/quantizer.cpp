#include "smic/quantizer.hpp"

#include <cmath>
#include <string>

#include "smic/error.hpp"

namespace smic {

// Messages are built only on failure: this runs on every (de)quantization, one atom's
// coefficient included, and formatting a double costs more than the call.
void ScalarQuantizer::validate() const {
  if (!(std::isfinite(step) && step > 0.0))
    throw InvalidArgument("step must be a finite number > 0, got " + std::to_string(step));
  if (!(rounding >= 0.0 && rounding < 1.0))
    throw InvalidArgument("rounding must be in [0, 1), got " + std::to_string(rounding));
  if (!(bias >= 0.0 && bias < 1.0))
    throw InvalidArgument("bias must be in [0, 1), got " + std::to_string(bias));
}

void ScalarQuantizer::quantize(const float* x, std::size_t n, std::int32_t* q) const {
  validate();
  const double inv_step = 1.0 / step;
  constexpr double kLimit = 2147483647.0;  // largest |q| that fits an int32
  for (std::size_t i = 0; i < n; ++i) {
    const double v = x[i];
    if (!std::isfinite(v))
      throw InvalidArgument("values contains NaN or infinity (at index " + std::to_string(i) + ")");
    const double level = std::floor(std::fabs(v) * inv_step + rounding);
    if (level > kLimit)
      throw InvalidArgument("value " + std::to_string(v) + " at index " + std::to_string(i) +
                            " is too large for step " + std::to_string(step));
    const auto magnitude = static_cast<std::int32_t>(level);
    q[i] = v < 0 ? -magnitude : magnitude;
  }
}

void ScalarQuantizer::dequantize(const std::int32_t* q, std::size_t n, float* x) const {
  validate();
  for (std::size_t i = 0; i < n; ++i) {
    if (q[i] == 0) {
      x[i] = 0.0f;
      continue;
    }
    // |q| as double: -INT32_MIN does not fit an int32.
    const double magnitude = std::fabs(static_cast<double>(q[i]));
    const double value = (magnitude - bias) * step;
    x[i] = static_cast<float>(q[i] < 0 ? -value : value);
  }
}

}  // namespace smic
