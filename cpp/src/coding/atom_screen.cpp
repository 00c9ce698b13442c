#include "coding/atom_screen.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "format/bytes.hpp"
#include "kernels/cpu.hpp"
#include "kernels/screen_kernels.hpp"
#include "kernels/gemm.hpp"
#include "smic/omp.hpp"

namespace smic::detail {

ScreenMode g_mode = ScreenMode::kAuto;  // set_atom_screening's choice

namespace {

bool cpu_has_vnni() {
#if defined(SMIC_HAVE_AVX512_KERNEL) && (defined(__GNUC__) || defined(__clang__))
  static const bool has = cpu_has_avx512() && __builtin_cpu_supports("avx512vl") &&
                          __builtin_cpu_supports("avx512vnni");
  return has;
#else
  return false;
#endif
}

}  // namespace

// The VNNI kernels under the same switches as the AVX-512 product kernel.
bool use_vnni_kernels() { return cpu_has_vnni() && use_avx512_kernels(); }

namespace {

// The smallest float >= value (value >= 0).
float round_up(double value) {
  float f = static_cast<float>(value);
  if (static_cast<double>(f) < value) f = std::nextafter(f, std::numeric_limits<float>::infinity());
  return f;
}

void screen_levels_generic(const std::uint8_t* xu, const std::int8_t* levels, std::size_t n_blocks,
                           std::size_t quads, std::int32_t* out) {
  constexpr std::size_t block = AtomScreen::kBlock;
  for (std::size_t b = 0; b < n_blocks; ++b) {
    std::int32_t* o = out + b * block;
    std::fill(o, o + block, 0);
    const std::int8_t* p = levels + b * quads * block * 4;
    for (std::size_t q = 0; q < quads; ++q, p += block * 4)
      for (std::size_t a = 0; a < block; ++a)
        for (std::size_t i = 0; i < 4; ++i) o[a] += std::int32_t{xu[4 * q + i]} * p[a * 4 + i];
  }
}

float quantize_row_generic(const float* x, std::size_t dim, std::uint8_t* xu, float* w_sq) {
  float max_abs = 0.0f;
  for (std::size_t j = 0; j < dim; ++j) max_abs = std::fmax(max_abs, std::fabs(x[j]));
  *w_sq = 0.0f;
  if (!(max_abs > 0.0f)) {
    std::fill(xu, xu + dim, std::uint8_t{128});
    return 0.0f;
  }
  const float tau = max_abs / 127.0f, inv = 127.0f / max_abs;
  for (std::size_t j = 0; j < dim; ++j) {
    const float v = std::fmin(std::fmax(std::nearbyint(x[j] * inv), -127.0f), 127.0f);
    const float w = std::fma(-v, tau, x[j]);
    *w_sq = std::fma(w, w, *w_sq);
    xu[j] = static_cast<std::uint8_t>(static_cast<int>(v) + 128);
  }
  return tau;
}

void exact_rows_generic(const float* x, const std::uint16_t* const* rows, std::size_t dim,
                        float* out) {
  for (std::size_t l = 0; l < 8; ++l) {
    float total = 0.0f;
    for (std::size_t p0 = 0; p0 < dim; p0 += kKC) {
      float acc = 0.0f;
      for (std::size_t k = p0; k < std::min(dim, p0 + kKC); ++k)
        acc = std::fma(x[k], half_to_float(rows[l][k]), acc);
      total = p0 == 0 ? acc : total + acc;
    }
    out[l] = total;
  }
}

}  // namespace

AtomScreen::AtomScreen(const float* values, const float* scale, std::size_t n_atoms,
                       std::size_t dim)
    : n_atoms_(n_atoms),
      dim_(dim),
      quads_((dim + 3) / 4),
      n_blocks_((n_atoms + kBlock - 1) / kBlock),
      levels_(n_blocks_ * quads_ * kBlock * 4, 0),
      halves_(n_atoms * dim),
      scale_(n_atoms, 1.0f),
      level_factor_(n_atoms),
      level_sum_(n_atoms),
      bound_per_w_(n_atoms),
      bound_per_x_(n_atoms) {
  const std::size_t depth_blocks = (dim + kKC - 1) / kKC;
  // The exact product's rounding: a chain of dim fused multiply-adds, the blocks' additions
  // and the scale's multiply, each within one unit in the last place (2^-24) of sum |h x|.
  const double rounding = 1.01 * static_cast<double>(dim + depth_blocks + 2) * std::ldexp(1.0, -24);
  for (std::size_t k = 0; k < n_atoms; ++k) {
    const float* h = values + k * dim;
    const double s = scale ? scale[k] : 1.0;
    scale_[k] = static_cast<float>(s);
    double max_abs = 0.0;
    for (std::size_t j = 0; j < dim; ++j) max_abs = std::max(max_abs, std::fabs(double{h[j]}));
    const double tau = max_abs / 127.0;
    double h_sq = 0.0, q_sq = 0.0, r_sq = 0.0;
    std::int32_t q_sum = 0;
    std::int8_t* block = levels_.data() + (k / kBlock) * quads_ * kBlock * 4 + (k % kBlock) * 4;
    for (std::size_t j = 0; j < dim; ++j) {
      halves_[k * dim + j] = float_to_half(h[j]);
      const double q = tau > 0.0 ? std::clamp(std::nearbyint(h[j] / tau), -127.0, 127.0) : 0.0;
      const double r = h[j] - tau * q;
      h_sq += double{h[j]} * h[j];
      q_sq += q * q;
      r_sq += r * r;
      q_sum += static_cast<std::int32_t>(q);
      block[(j / 4) * kBlock * 4 + j % 4] = static_cast<std::int8_t>(q);
    }
    level_factor_[k] = static_cast<float>(s * tau);
    level_sum_[k] = q_sum;
    bound_per_w_[k] = round_up(std::fabs(s) * tau * std::sqrt(q_sq) * (1 + 1e-9));
    bound_per_x_[k] = round_up(std::fabs(s) * (std::sqrt(r_sq) + rounding * std::sqrt(h_sq)) * (1 + 1e-9));
    max_atom_norm_ = std::max(max_atom_norm_, std::fabs(s) * std::sqrt(h_sq));
  }
  max_atom_norm_ *= 1.0 + 1e-6;
}

void AtomScreen::approximate(const float* x, double x_norm, float* approx, float* bound) const {
  thread_local std::vector<std::uint8_t> xu;
  thread_local std::vector<std::int32_t> sums;
  xu.assign(quads_ * 4, std::uint8_t{128});
  sums.resize(n_blocks_ * kBlock);
  float w_sq = 0.0f, tau = 0.0f;
#if defined(SMIC_HAVE_AVX512_KERNEL)
  if (use_vnni_kernels()) {
    thread_local bool backwards = false;  // alternate, as the one-row product does (L2 reuse)
    tau = quantize_row_avx512(x, dim_, xu.data(), &w_sq);
    screen_levels_avx512(xu.data(), levels_.data(), n_blocks_, quads_, sums.data(), backwards);
    backwards = !backwards;
  } else
#endif
  {
    tau = quantize_row_generic(x, dim_, xu.data(), &w_sq);
    screen_levels_generic(xu.data(), levels_.data(), n_blocks_, quads_, sums.data());
  }
  // |x - tau v|, its float sum of squares inflated well past that sum's rounding.
  const float w_norm = std::sqrt(w_sq) * 1.01f;
  const float x_norm_up = round_up(x_norm * (1 + 1e-9));
  for (std::size_t k = 0; k < n_atoms_; ++k) {
    const auto dot = static_cast<float>(sums[k] - 128 * level_sum_[k]);
    approx[k] = level_factor_[k] * tau * dot;
    bound[k] = (bound_per_w_[k] * w_norm + bound_per_x_[k] * x_norm_up) * 1.0001f;
  }
}

void AtomScreen::exact(const float* x, const std::int32_t* atoms, std::size_t n, float* out) const {
  const std::uint16_t* rows[8];
  alignas(32) float lanes[8];
#if defined(SMIC_HAVE_AVX512_KERNEL)
  const bool vnni = use_vnni_kernels();
#endif
  for (std::size_t i = 0; i < n; i += 8) {
    const std::size_t m = std::min<std::size_t>(8, n - i);
    for (std::size_t l = 0; l < 8; ++l)
      rows[l] = halves_.data() + static_cast<std::size_t>(atoms[i + std::min(l, m - 1)]) * dim_;
#if defined(SMIC_HAVE_AVX512_KERNEL)
    if (vnni)
      exact_rows_avx512(x, rows, dim_, lanes);
    else
#endif
      exact_rows_generic(x, rows, dim_, lanes);
    for (std::size_t l = 0; l < m; ++l) out[i + l] = lanes[l] * scale_[atoms[i + l]];
  }
}

bool atom_screening_forced() { return g_mode == ScreenMode::kOn; }

}  // namespace smic::detail

namespace smic {

using detail::ScreenMode;
using detail::g_mode;

bool set_atom_screening(const char* mode) {
  if (mode == nullptr) return false;
  if (std::strcmp(mode, "auto") == 0) {
    g_mode = ScreenMode::kAuto;
  } else if (std::strcmp(mode, "on") == 0) {
    g_mode = ScreenMode::kOn;
  } else if (std::strcmp(mode, "off") == 0) {
    g_mode = ScreenMode::kOff;
  } else {
    return false;
  }
  return true;
}

bool atom_screening_enabled() {
  switch (g_mode) {
    case ScreenMode::kOn: return true;
    case ScreenMode::kOff: return false;
    default: return detail::use_vnni_kernels() && std::strcmp(gemm_kernel_name(), "avx512") == 0;
  }
}

}  // namespace smic
