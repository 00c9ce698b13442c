#include "smic/omp.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "gemm_kernels.hpp"
#include "parallel.hpp"
#include "vector_kernels.hpp"
#include "smic/error.hpp"

namespace smic {
namespace {

// Scratch for one signal's pursuit; one per thread, sized once.
struct PursuitScratch {
  std::vector<float> alpha;     // correlations of the residual with every atom
  std::vector<const float*> rows;  // Gram rows of the chosen atoms (G is symmetric)
  std::vector<float> gamma_f;   // coefficients on the support, float copy for the update
  std::vector<double> chol;     // lower-triangular Cholesky factor of G_II, row-major s x s
  std::vector<double> rhs;      // alpha0 restricted to the support
  std::vector<double> gamma;    // coefficients on the support
  std::vector<double> w;        // new row of the Cholesky factor

  void resize(std::size_t n_atoms, std::size_t s) {
    alpha.resize(n_atoms);
    rows.resize(s);
    gamma_f.resize(s);
    chol.assign(s * s, 0.0);
    rhs.resize(s);
    gamma.resize(s);
    w.resize(s);
  }
};

// Solve L y = b in place (L lower triangular, row stride s).
void forward_substitute(const double* chol, std::size_t s, std::size_t t, double* y) {
  for (std::size_t i = 0; i < t; ++i) {
    double acc = y[i];
    for (std::size_t j = 0; j < i; ++j) acc -= chol[i * s + j] * y[j];
    y[i] = acc / chol[i * s + i];
  }
}

// Solve L^T y = b in place.
void backward_substitute(const double* chol, std::size_t s, std::size_t t, double* y) {
  for (std::size_t i = t; i-- > 0;) {
    double acc = y[i];
    for (std::size_t j = i + 1; j < t; ++j) acc -= chol[j * s + i] * y[j];
    y[i] = acc / chol[i * s + i];
  }
}

// Batch-OMP for one signal given alpha0 = D x and ||x||^2; returns the number of atoms found.
// With path_gamma (n_nonzero x n_nonzero), row t receives gamma after step t + 1 (the
// least-squares coefficients on the first t + 1 atoms); s.rhs then holds alpha0 on them.
std::size_t pursue(const float* alpha0, double norm_sq, const float* gram, std::size_t n_atoms,
                   std::size_t n_nonzero, double tol, PursuitScratch& s, std::int32_t* indices,
                   float* coefs, double* path_gamma = nullptr) {
  std::fill(indices, indices + n_nonzero, -1);
  std::fill(coefs, coefs + n_nonzero, 0.0f);
  if (tol >= 0.0 && norm_sq <= tol) return 0;
  const float* alpha = alpha0;  // correlations of the current residual
  double* chol = s.chol.data();
  const double negligible = 1e-6 * std::sqrt(norm_sq);
  std::size_t t = 0;
  for (; t < n_nonzero; ++t) {
    float best_abs = 0.0f;
    const std::size_t best = detail::argmax_abs(alpha, n_atoms, &best_abs);
    if (!(best_abs > negligible)) break;  // residual is (numerically) orthogonal to D
    const float* g_best = gram + best * n_atoms;
    s.rows[t] = g_best;
    // The row is read in full below; its lines are requested together now (it is seldom in
    // cache for one item: the pass over the atoms evicts it).
    for (std::size_t j = 0; j < n_atoms; j += 16) __builtin_prefetch(g_best + j);
    const double g_jj = g_best[best];
    if (t == 0) {
      chol[0] = std::sqrt(g_jj);
    } else {
      double* w = s.w.data();
      for (std::size_t i = 0; i < t; ++i) w[i] = g_best[indices[i]];
      forward_substitute(chol, n_nonzero, t, w);
      double w_sq = 0.0;
      for (std::size_t i = 0; i < t; ++i) w_sq += w[i] * w[i];
      const double diag = g_jj - w_sq;
      if (!(diag > 1e-7)) break;  // new atom is (numerically) in the span of the support
      for (std::size_t i = 0; i < t; ++i) chol[t * n_nonzero + i] = w[i];
      chol[t * n_nonzero + t] = std::sqrt(diag);
    }
    indices[t] = static_cast<std::int32_t>(best);
    s.rhs[t] = alpha0[best];
    // gamma = (L L^T)^-1 alpha0_I
    std::copy(s.rhs.begin(), s.rhs.begin() + t + 1, s.gamma.begin());
    forward_substitute(chol, n_nonzero, t + 1, s.gamma.data());
    backward_substitute(chol, n_nonzero, t + 1, s.gamma.data());
    if (path_gamma != nullptr)
      std::copy(s.gamma.begin(), s.gamma.begin() + t + 1, path_gamma + t * n_nonzero);
    if (t + 1 == n_nonzero) {
      ++t;
      break;
    }
    if (tol >= 0.0) {
      // ||x - D_I gamma||^2 = ||x||^2 - gamma . alpha0_I, since G_II gamma = alpha0_I.
      double explained = 0.0;
      for (std::size_t i = 0; i <= t; ++i) explained += s.gamma[i] * s.rhs[i];
      if (norm_sq - explained <= tol) {
        ++t;
        break;
      }
    }
    // alpha = alpha0 - G_I gamma (G symmetric: the saved rows of the chosen atoms); the
    // chosen atoms' own correlations are zero in exact arithmetic and are cleared.
    for (std::size_t i = 0; i <= t; ++i) s.gamma_f[i] = static_cast<float>(s.gamma[i]);
    detail::subtract_combination(alpha0, s.rows.data(), s.gamma_f.data(), t + 1, n_atoms,
                                 s.alpha.data());
    for (std::size_t i = 0; i <= t; ++i) s.alpha[indices[i]] = 0.0f;
    alpha = s.alpha.data();
  }
  for (std::size_t i = 0; i < t; ++i) coefs[i] = static_cast<float>(s.gamma[i]);
  return t;
}

// ||x||^2 in double, four partial sums (a single one is a chain of dependent adds).
double squared_norm(const float* x, std::size_t dim) {
  double part[4] = {0.0, 0.0, 0.0, 0.0};
  std::size_t i = 0;
  for (; i + 4 <= dim; i += 4)
    for (std::size_t l = 0; l < 4; ++l) part[l] += double(x[i + l]) * x[i + l];
  for (; i < dim; ++i) part[0] += double(x[i]) * x[i];
  return (part[0] + part[1]) + (part[2] + part[3]);
}

// Correlations of blocks of kMC signals (one blocked product each, or the row kernel for a
// block of few signals), then per_signal(i, alpha0 of signal i, ||x_i||^2, scratch) for each
// signal of the block. Blocks run in parallel; the result of a signal depends on nothing else.
template <class PerSignal>
void for_each_signal(const PackedB& packed, const float* signals, std::size_t n, std::size_t dim,
                     std::size_t n_atoms, std::size_t n_nonzero, int n_threads,
                     PerSignal&& per_signal) {
  const std::size_t block = detail::kMC;
  const std::size_t n_blocks = (n + block - 1) / block;
  detail::parallel_for(n_blocks, n_threads, [&](std::size_t blk) {
    thread_local std::vector<float> corr;
    thread_local PursuitScratch scratch;
    const std::size_t i0 = blk * block;
    const std::size_t m = std::min(block, n - i0);
    if (corr.size() < m * n_atoms) corr.resize(m * n_atoms);
    scratch.resize(n_atoms, n_nonzero);
    gemm_nt_packed(signals + i0 * dim, m, dim, packed, corr.data(), n_atoms);
    for (std::size_t r = 0; r < m; ++r) {
      const float* x = signals + (i0 + r) * dim;
      per_signal(i0 + r, corr.data() + r * n_atoms, squared_norm(x, dim), scratch);
    }
  });
}

}  // namespace

void require_finite(const float* values, std::size_t n, const char* what) {
  if (detail::all_finite(values, n)) return;
  for (std::size_t i = 0; i < n; ++i) {
    if (!std::isfinite(values[i]))
      throw InvalidArgument(std::string(what) + " contains NaN or infinity (first at flat index " +
                            std::to_string(i) + ")");
  }
}

OmpCoder::OmpCoder(const float* atoms, std::size_t n_atoms, std::size_t dim, int n_threads)
    : OmpCoder(atoms, nullptr, nullptr, n_atoms, dim, n_threads) {}

OmpCoder::OmpCoder(const float* atoms, const float* rows, const float* row_scale,
                   std::size_t n_atoms, std::size_t dim, int n_threads)
    : n_atoms_(n_atoms), dim_(dim) {
  require(n_atoms > 0, "D must have at least one atom (K = 0)");
  require(dim > 0, "D must have at least one dimension (d = 0)");
  require_finite(atoms, n_atoms * dim, "D");
  for (std::size_t k = 0; k < n_atoms; ++k) {
    double sq = 0.0;
    for (std::size_t i = 0; i < dim; ++i) sq += double(atoms[k * dim + i]) * atoms[k * dim + i];
    if (std::fabs(std::sqrt(sq) - 1.0) > 1e-3)
      throw InvalidArgument("D must have rows of unit norm: row " + std::to_string(k) +
                            " has norm " + std::to_string(std::sqrt(sq)));
  }
  if (rows) require_finite(rows, n_atoms * dim, "the atoms' rows");
  if (row_scale) require_finite(row_scale, n_atoms, "the atoms' scales");
  packed_ = rows ? PackedB(rows, n_atoms, dim, dim, row_scale) : PackedB(atoms, n_atoms, dim, dim);
  gram_.resize(n_atoms * n_atoms);
  gemm_nt(atoms, n_atoms, dim, atoms, n_atoms, dim, dim, gram_.data(), n_atoms, n_threads);
}

// Messages are built only on failure: this runs on every call, single items included.
void check_sparsity(std::size_t n_nonzero, std::size_t n_atoms, std::size_t dim, double tol) {
  if (n_nonzero < 1) throw InvalidArgument("n_nonzero must be >= 1");
  if (n_nonzero > n_atoms)
    throw InvalidArgument("n_nonzero (" + std::to_string(n_nonzero) +
                          ") must be <= the number of atoms K (" + std::to_string(n_atoms) + ")");
  if (n_nonzero > dim)
    throw InvalidArgument("n_nonzero (" + std::to_string(n_nonzero) +
                          ") must be <= the dimension d (" + std::to_string(dim) + ")");
  if (std::isnan(tol)) throw InvalidArgument("tol must not be NaN");
}

void OmpCoder::check_encode_args(const float* signals, std::size_t n, std::size_t n_nonzero,
                                 double tol) const {
  check_sparsity(n_nonzero, n_atoms_, dim_, tol);
  require_finite(signals, n * dim_, "X");
}

void OmpCoder::encode(const float* signals, std::size_t n, std::size_t n_nonzero, double tol,
                      std::int32_t* indices, float* coefs, int n_threads) const {
  check_encode_args(signals, n, n_nonzero, tol);
  for_each_signal(packed_, signals, n, dim_, n_atoms_, n_nonzero, n_threads,
                  [&](std::size_t i, const float* alpha0, double norm_sq, PursuitScratch& s) {
                    pursue(alpha0, norm_sq, gram_.data(), n_atoms_, n_nonzero, tol, s,
                           indices + i * n_nonzero, coefs + i * n_nonzero);
                  });
}

void OmpCoder::pursue_paths(const float* signals, std::size_t n, std::size_t n_nonzero,
                            const OmpPathVisitor& visit, int n_threads) const {
  check_encode_args(signals, n, n_nonzero, -1.0);
  for_each_signal(packed_, signals, n, dim_, n_atoms_, n_nonzero, n_threads,
                  [&](std::size_t i, const float* alpha0, double norm_sq, PursuitScratch& s) {
                    thread_local std::vector<std::int32_t> atoms;
                    thread_local std::vector<float> coefs;
                    thread_local std::vector<double> gamma;
                    atoms.resize(n_nonzero);
                    coefs.resize(n_nonzero);
                    gamma.resize(n_nonzero * n_nonzero);
                    OmpPath path;
                    path.n_found = pursue(alpha0, norm_sq, gram_.data(), n_atoms_, n_nonzero,
                                          -1.0, s, atoms.data(), coefs.data(), gamma.data());
                    path.stride = n_nonzero;
                    path.atoms = atoms.data();
                    path.alpha0 = s.rhs.data();
                    path.gamma = gamma.data();
                    visit(i, path);
                  });
}

void batch_omp(const float* signals, std::size_t n, const float* atoms, std::size_t n_atoms,
               std::size_t dim, std::size_t n_nonzero, double tol, std::int32_t* indices,
               float* coefs, int n_threads) {
  const OmpCoder coder(atoms, n_atoms, dim, n_threads);
  coder.encode(signals, n, n_nonzero, tol, indices, coefs, n_threads);
}

}  // namespace smic
