// Internal: the short vector loops of the pursuit, in AVX2 + FMA and in plain C++, picked at
// load time (cpu.hpp), so one binary is fast on new CPUs and runs on old ones, with the same
// results on both.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace smic::detail {

/// alpha[j] = alpha0[j] - sum_{i < t} g[i] * rows[i][j], for j < n: one fused multiply-add
/// per row, in row order, on every machine (std::fma where the CPU has no FMA).
void subtract_combination(const float* alpha0, const float* const* rows, const float* g,
                          std::size_t t, std::size_t n, float* alpha);

/// out[i] = the same combination at atoms[i] only: alpha0[atoms[i]] - sum_{r < t} g[r] *
/// rows[r][atoms[i]], with subtract_combination's fused operations in its order (bit-equal).
void subtract_combination_at(const float* alpha0, const float* const* rows, const float* g,
                             std::size_t t, const std::int32_t* atoms, std::size_t n, float* out);

/// Whether 1 marks a float that is NaN or infinite (all exponent bits set): an integer test
/// that compilers vectorize, where a loop of std::isfinite stays scalar.
inline std::uint32_t is_nonfinite(float value) {
  std::uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return static_cast<std::uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
}

/// True when no entry is NaN or infinite (one pass, no early exit: the common case is clean).
inline bool all_finite(const float* values, std::size_t n) {
  std::uint32_t bad = 0;
  for (std::size_t i = 0; i < n; ++i) bad |= is_nonfinite(values[i]);
  return bad == 0;
}

/// The largest lower bound |c[k]| - (b[k] + margin) over k < n, or `floor` if that is larger:
/// the atom screen's threshold (atom_screen.hpp).
float max_lower_bound(const float* c, const float* b, std::size_t n, float margin, float floor);

/// Writes to out, in increasing order, every k < n whose upper bound |c[k]| + (b[k] + margin)
/// is at least `floor`; returns how many.
std::size_t collect_candidates(const float* c, const float* b, std::size_t n, float margin,
                               float floor, std::int32_t* out);

/// Index of the first entry of largest magnitude (0 for n == 0); its magnitude in *max_abs.
std::size_t argmax_abs(const float* a, std::size_t n, float* max_abs);

}  // namespace smic::detail
