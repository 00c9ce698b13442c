// Dictionary learning by approximate K-SVD (Rubinstein, Zibulevsky & Elad 2008) on top of
// batch OMP: alternate sparse coding of every signal with one rank-1 refit per atom on the
// signals that use it. Deterministic for a given seed, whatever the number of threads.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

namespace smic {

struct KsvdOptions {
  std::size_t n_atoms = 256;
  std::size_t n_nonzero = 4;
  std::size_t n_iter = 10;
  std::uint64_t seed = 0;
  int n_threads = 0;  ///< 0: OpenMP's default
  /// Atoms whose absolute correlation with an earlier atom exceeds this are replaced by the
  /// worst-represented signals, as are unused and rarely used atoms (min_usage_fraction).
  double max_coherence = 0.99;
  /// Power iterations of each atom's rank-1 refit (1: approximate K-SVD; more approach the
  /// exact SVD of K-SVD at one extra pass over the atom's signals each).
  std::size_t power_iterations = 1;
  /// Atoms used by fewer signals than this fraction of the mean usage are replaced too.
  double min_usage_fraction = 0.25;
  /// Sparse coding of every iteration: called as sparse_coder(atoms, indices, coefs) to code
  /// all n signals over the n_atoms x dim atoms with n_nonzero atoms each (no tol), writing
  /// n x n_nonzero results like OmpCoder::encode. Empty: OmpCoder on the CPU. Set by the GPU
  /// module (smic_fast._cuda) to code on the GPU while atom updates stay here.
  std::function<void(const float* atoms, std::int32_t* indices, float* coefs)> sparse_coder;
};

/// Called after each iteration with (iteration index, mean squared residual over signals);
/// returning false stops the learning early (the dictionary so far is returned).
using KsvdProgress = std::function<bool(std::size_t iteration, double mean_sq_error)>;

struct KsvdResult {
  std::vector<float> atoms;          ///< n_atoms x dim, rows of unit norm
  std::vector<double> mean_sq_error; ///< after each completed iteration
  std::size_t replaced_atoms = 0;    ///< total replacements of unused or duplicate atoms
};

/// Learn `options.n_atoms` atoms from `signals` (n x dim, row-major), initialised from a
/// seeded random choice of distinct non-zero signals. Requires n >= n_atoms.
KsvdResult learn_dictionary(const float* signals, std::size_t n, std::size_t dim,
                            const KsvdOptions& options, const KsvdProgress& progress = {});

}  // namespace smic
