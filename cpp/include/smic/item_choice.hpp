// Rate-distortion choice of each item's atoms and levels (the smic layout of the item codec).
//
// Per item, OMP selects up to s_max atoms; every prefix of k = 1..n_found atoms is a candidate:
//   c      least-squares coefficients of the item on its first k atoms (the OMP path),
//   lead   first index of max |c_j|; its atom and sign form the "first" symbol 2 * atom + sign,
//   q_j    ratio quantizer on r_j = float32(c_j / |c_lead|) for j != lead:
//          q_j = sign(r_j) * floor(|r_j| * (1 / step) + rounding), with weight
//          w_j = float32(|q_j| * step) * sign(q_j), and w_lead = +-1,
//   cosine (w . alpha0) / sqrt(max(w^T G w, 1e-30)) over the k atoms (the item has unit norm,
//          alpha0 = its correlations with the atoms, G the Gram matrix),
//   rest   the atoms j != lead with w_j != 0, ascending by atom index, level symbol
//          q_j + max_level, and count = 1 + their number,
//   bits   code length of (count, first, rest) under the item models, or under flat models:
//          log2(s_max + 1) + log2(2K) + (count - 1) * (log2 K + log2 L), L = 2 * max_level + 1,
//   cost   (1 - cosine) + rd_lambda * bits.
// The candidate of lowest cost wins, ties to the smaller k. With one atom per item (s_max = 1),
// rd_lambda > 0 and fitted models, the one candidate is instead the atom j of lowest cost
// among all K, cosine |alpha0_j| / sqrt(G_jj) and bits count_bits[1] + first_bits[2j + sign]
// (ties to the smaller j): entropy-constrained gain-shape VQ, where a rare atom must be
// closer to pay for its longer code. An item for which OMP finds no atom
// (a zero vector) gets count 1, first 0, no rest and cosine 0. This is exactly the reference
// smic_fast.coding.codec.choose_items, except that the coefficients come from the pursuit itself
// (float32 correlations, double Cholesky) rather than from re-solving with the rounded
// float32 OMP coefficients: candidates may differ where a ratio or a cost lies within float
// rounding of a decision boundary.
#pragma once
#include <cstddef>
#include <cstdint>

#include "smic/item_codec.hpp"
#include "smic/omp.hpp"

namespace smic {

struct ItemChoiceParams {
  std::size_t s_max = 4;    // most atoms per item, 1 <= s_max <= min(K, d)
  double step = 0.125;      // ratio quantizer step, in (0, 1]
  double rounding = 0.5;    // ratio quantizer rounding, in [0, 1)
  double rd_lambda = 1.5e-3;  // weight of the bits in the cost, finite and >= 0

  /// Largest |level| of a ratio in [-1, 1]: floor(1 / step + rounding).
  std::int64_t max_level() const;
};

/// Caller-owned outputs for n items: counts, first and cosine (n); rest_index and rest_level
/// (n x (s_max - 1), row-major), unused slots -1.
struct ItemChoiceOutput {
  std::int32_t* counts = nullptr;
  std::int32_t* first = nullptr;
  std::int32_t* rest_index = nullptr;
  std::int32_t* rest_level = nullptr;
  double* cosine = nullptr;
  /// Optional (both or neither; nullptr: not written), n x s_max each: the atoms the chosen
  /// code keeps (the lead and the rest with a non-zero level, in path order) and their
  /// least-squares coefficients on the first k atoms of the path, the OMP solution the chosen
  /// candidate quantised; unused slots -1 and 0. What learn_for_rate refits atoms with.
  std::int32_t* kept_atoms = nullptr;
  float* kept_coefs = nullptr;
};

/// Throw InvalidArgument (naming the argument) unless the parameters are in range and, when
/// given, `models` is a sorted-layout model set for K = coder.n_atoms(), this s_max and
/// L = 2 * max_level + 1 level symbols. choose_items calls it.
void validate_item_choice(const OmpCoder& coder, const ItemChoiceParams& params,
                          const ItemModels* models);

/// Choose the symbols of n unit-norm signals (n x coder.dim(), row-major) as described at the
/// top of this file. `models` == nullptr prices the bits with flat models. Items are coded in
/// blocks on n_threads threads (0: all; a single block runs on the calling thread); the result
/// of an item depends only on that item. Throws InvalidArgument as validate_item_choice and
/// for NaN or infinite signals.
void choose_items(const OmpCoder& coder, const float* signals, std::size_t n,
                  const ItemChoiceParams& params, const ItemModels* models,
                  const ItemChoiceOutput& out, int n_threads = 0);

}  // namespace smic
