// Internal: screening the atoms of one item's pursuit with a cheap product and a proven bound.
//
// One item's correlations D x cost a pass over all the atoms (2 MB of float16 at K = d = 1024),
// yet a pursuit of a few steps only needs to know which atom has the largest residual
// correlation at each step. AtomScreen keeps an int8 copy of the atoms (1 MB there) and gives
// every atom an approximate correlation together with a bound on its distance from the exact
// float product (the one gemm_nt_packed computes). The pursuit then computes exact products
// only for the atoms whose interval can still hold the maximum, so it picks the same atoms,
// with the same float coefficients, as the full product: one item's bytes stay those the batch
// path writes.
//
// The bound, for an atom stored as s * h (h exactly float16 values, s its scale) and
// x ~ tau_x * v (v integers in [-127, 127], w = x - tau_x v), with h ~ tau * q (q int8,
// r = h - tau q):
//   |<h, x> - tau tau_x <q, v>| <= tau |q| |w| + |r| |x|
// plus the float rounding of the exact product (a chain of fused multiply-adds over the depth:
// at most (d + blocks + 2) units in the last place of |h| |x|). Every term is a Cauchy-Schwarz
// bound, so the pursuit's choice is exact, not probable; tests compare it with the full product.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace smic::detail {

class AtomScreen {
 public:
  /// `values`: n_atoms x dim row-major, each exactly a float16 value; `scale`: n_atoms factors
  /// (atom k = scale[k] * values[k]) or nullptr for none.
  AtomScreen(const float* values, const float* scale, std::size_t n_atoms, std::size_t dim);

  std::size_t n_atoms() const { return n_atoms_; }
  std::size_t dim() const { return dim_; }
  /// An upper bound on |<atom, x>| / |x| over the atoms (the largest exact atom norm, rounded up).
  double max_atom_norm() const { return max_atom_norm_; }

  /// approx[k] close to atom k's exact product with x, and bound[k] >= the distance between
  /// the two (floats rounded so that the bound holds); x_norm >= |x|.
  void approximate(const float* x, double x_norm, float* approx, float* bound) const;

  /// out[i] = the exact product of atom atoms[i] with x, bit for bit as gemm_nt_packed gives it
  /// (per depth block of 256 a chain of fused multiply-adds from zero, the blocks added in
  /// order, then the scale's multiply).
  void exact(const float* x, const std::int32_t* atoms, std::size_t n, float* out) const;

  /// The int8 copy's layout: blocks of kBlock atoms, depth in quads, [block][quad][atom][4].
  static constexpr std::size_t kBlock = 64;

 private:
  std::size_t n_atoms_, dim_, quads_, n_blocks_;
  double max_atom_norm_ = 0.0;
  std::vector<std::int8_t> levels_;     // q, in the layout above (zeros pad atoms and depth)
  std::vector<std::uint16_t> halves_;   // h, row-major n_atoms x dim (for exact products)
  std::vector<float> scale_;            // s (1 when none was given)
  std::vector<float> level_factor_;     // s * tau (the approximation's factor per atom)
  std::vector<std::int32_t> level_sum_; // sum of q over the depth (the u8 offset's correction)
  std::vector<float> bound_per_w_;      // |s| tau |q|, rounded up
  std::vector<float> bound_per_x_;      // |s| (|r| + rounding of the exact chain), rounded up
};

/// The VNNI kernels are usable and chosen (CPU, OS and SMIC_KERNELS allowing AVX-512).
bool use_vnni_kernels();
/// set_atom_screening's modes.
enum class ScreenMode { kAuto, kOn, kOff };
extern ScreenMode g_mode;
/// True under "on": screen even small dictionaries (which "auto" leaves to the full product).
bool atom_screening_forced();

}  // namespace smic::detail
