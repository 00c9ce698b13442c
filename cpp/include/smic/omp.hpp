// Batch orthogonal matching pursuit (Rubinstein, Zibulevsky & Elad 2008): the Gram matrix
// G = D D^T is computed once, each signal's correlations D x come from one blocked product
// per block of signals, and the support grows with a progressive Cholesky factorisation of
// G restricted to it, so no residual vector is ever formed.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "smic/gemm.hpp"

namespace smic {

/// Throw InvalidArgument naming `what` unless all `n` values are finite.
void require_finite(const float* values, std::size_t n, const char* what);

/// A dictionary prepared for sparse coding: atoms packed for the product kernel, Gram matrix
/// precomputed. Build once, code many batches (in any number of threads).
class OmpCoder {
 public:
  /// `atoms`: n_atoms x dim, row-major, rows of unit norm (checked to 1e-3).
  OmpCoder(const float* atoms, std::size_t n_atoms, std::size_t dim, int n_threads = 0);

  std::size_t n_atoms() const { return n_atoms_; }
  std::size_t dim() const { return dim_; }
  const std::vector<float>& gram() const { return gram_; }

  /// Code `n` signals (n x dim, row-major). Writes n x n_nonzero atom indices and coefficients;
  /// a slot left unused by an early stop holds index -1 and coefficient 0. With tol >= 0, a
  /// signal stops as soon as its squared residual norm is <= tol (scikit-learn's `tol`).
  /// A signal also stops when the best remaining correlation is negligible or the next atom
  /// is linearly dependent on the chosen ones.
  void encode(const float* signals, std::size_t n, std::size_t n_nonzero, double tol,
              std::int32_t* indices, float* coefs, int n_threads = 0) const;

 private:
  std::size_t n_atoms_, dim_;
  PackedB packed_;
  std::vector<float> gram_;
};

/// One-shot batch OMP: prepares an OmpCoder for `atoms` and codes `signals` with it.
void batch_omp(const float* signals, std::size_t n, const float* atoms, std::size_t n_atoms,
               std::size_t dim, std::size_t n_nonzero, double tol, std::int32_t* indices,
               float* coefs, int n_threads = 0);

}  // namespace smic
