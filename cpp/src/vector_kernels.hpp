// Internal: the short vector loops of the pursuit, in AVX2 + FMA and in plain C++, picked at
// load time (cpu.hpp), so one binary is fast on new CPUs and runs on old ones, with the same
// results on both.
#pragma once
#include <cstddef>

namespace smic::detail {

/// alpha[j] = alpha0[j] - sum_{i < t} g[i] * rows[i][j], for j < n: one fused multiply-add
/// per row, in row order, on every machine (std::fma where the CPU has no FMA).
void subtract_combination(const float* alpha0, const float* const* rows, const float* g,
                          std::size_t t, std::size_t n, float* alpha);

/// Index of the first entry of largest magnitude (0 for n == 0); its magnitude in *max_abs.
std::size_t argmax_abs(const float* a, std::size_t n, float* max_abs);

}  // namespace smic::detail
