#include "smic/omp.hpp"

#include <algorithm>
#include <cmath>
#include <memory>
#include <mutex>
#include <string>

#include "coding/atom_screen.hpp"
#include "kernels/gemm.hpp"
#include "kernels/gemm_kernels.hpp"
#include "kernels/parallel.hpp"
#include "kernels/vector_kernels.hpp"
#include "smic/error.hpp"

namespace smic {

struct OmpCoder::Screen {
  detail::AtomScreen atoms;
  double gram_max_abs;  // the largest |G| entry (the residual chains' rounding scale)
};

namespace {

// Scratch for one signal's pursuit; one per thread, sized once.
struct PursuitScratch {
  std::vector<float> alpha;     // correlations of the residual with every atom
  std::vector<const float*> rows;  // Gram rows of the chosen atoms (G is symmetric)
  std::vector<float> gamma_f;   // coefficients on the support, float copy for the update
  std::vector<double> chol;     // lower-triangular Cholesky factor of G_II, row-major s x s
  std::vector<double> rhs;      // alpha0 restricted to the support
  std::vector<double> y;        // L y = rhs (forward substitution), one new entry per step
  std::vector<double> gamma;    // coefficients on the support
  std::vector<double> w;        // new row of the Cholesky factor

  void resize(std::size_t n_atoms, std::size_t s) {
    alpha.resize(n_atoms);
    rows.resize(s);
    gamma_f.resize(s);
    chol.assign(s * s, 0.0);
    rhs.resize(s);
    y.resize(s);
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

// The largest |residual correlation| of a pursuit's step from all the correlations D x: step t
// > 0 subtracts the combination of the chosen atoms' Gram rows (rows[i] scaled by g[i]),
// clears the chosen atoms, and takes the first largest magnitude (numpy.argmax's tie rule).
class FullCorrelations {
 public:
  FullCorrelations(const float* alpha0, std::size_t n_atoms, float* scratch)
      : alpha0_(alpha0), n_atoms_(n_atoms), alpha_(scratch) {}

  std::size_t select(std::size_t t, const float* const* rows, const float* g,
                     const std::int32_t* chosen, float* best_abs) {
    if (t == 0) return detail::argmax_abs(alpha0_, n_atoms_, best_abs);
    detail::subtract_combination(alpha0_, rows, g, t, n_atoms_, alpha_);
    for (std::size_t i = 0; i < t; ++i) alpha_[chosen[i]] = 0.0f;
    return detail::argmax_abs(alpha_, n_atoms_, best_abs);
  }
  float alpha0(std::size_t atom) const { return alpha0_[atom]; }
  const float* all() const { return alpha0_; }

 private:
  const float* alpha0_;
  std::size_t n_atoms_;
  float* alpha_;
};

// The same choices from the atom screen (atom_screen.hpp): approximate correlations with
// proven error bounds for every atom, exact products only for the atoms whose interval can
// still hold the step's maximum. An atom left out has an exact residual correlation below the
// largest lower bound (which an atom compared exactly reaches) or below an exact magnitude
// already found, so the first largest atom compared is the first largest atom; residual
// correlations compared use FullCorrelations' operations, so they are its values.
class ScreenedCorrelations {
 public:
  ScreenedCorrelations(const detail::AtomScreen& screen, const float* x, double norm_sq,
                       double gram_max_abs)
      : screen_(screen), x_(x), n_atoms_(screen.n_atoms()), gram_max_abs_(gram_max_abs) {
    Scratch& s = scratch();
    s.approx.resize(n_atoms_);
    s.bound.resize(n_atoms_);
    s.current.resize(n_atoms_);
    s.exact.resize(n_atoms_);
    s.known_in.resize(n_atoms_, 0);
    s.known.clear();
    if (++s.item == 0) {  // stamps wrapped: forget every stamp
      std::fill(s.known_in.begin(), s.known_in.end(), 0u);
      s.item = 1;
    }
    const double x_norm = std::sqrt(norm_sq);
    screen.approximate(x, x_norm, s.approx.data(), s.bound.data());
    // The largest magnitude either chain passes through: |alpha0| and its approximation
    // (bounds included), plus the subtracted combination's (below).
    largest_product_ = x_norm * screen.max_atom_norm() +
                       *std::max_element(s.bound.begin(), s.bound.end());
  }

  std::size_t select(std::size_t t, const float* const* rows, const float* g,
                     const std::int32_t* chosen, float* best_abs) {
    Scratch& s = scratch();
    const float* current = s.approx.data();
    double g_sum = 0.0;
    for (std::size_t i = 0; i < t; ++i) g_sum += std::fabs(g[i]);
    if (t > 0) {
      detail::subtract_combination(s.approx.data(), rows, g, t, n_atoms_, s.current.data());
      s.bound[chosen[t - 1]] = 0.0f;
      for (std::size_t i = 0; i < t; ++i) s.current[chosen[i]] = 0.0f;
      current = s.current.data();
    }
    // Rounding of both chains (the approximate one here, the exact one of FullCorrelations)
    // and of the approximation's own float products: a few units in the last place of the
    // largest magnitude they pass through, taken with a wide margin.
    const auto margin = static_cast<float>(16.0 * double(t + 2) * std::ldexp(1.0, -24) *
                                           (largest_product_ + g_sum * gram_max_abs_));
    // The atoms whose exact products earlier steps computed: their exact residual
    // correlations first (the step's winner is often among them).
    std::size_t best = 0;
    float best_value = 0.0f;
    auto consider = [&](const std::int32_t* atoms, std::size_t n) {
      s.values.resize(n);
      detail::subtract_combination_at(s.exact.data(), rows, g, t, atoms, n, s.values.data());
      for (std::size_t i = 0; i < n; ++i) {
        const auto k = static_cast<std::size_t>(atoms[i]);
        const float value = std::fabs(s.values[i]);
        if (!is_chosen(atoms[i], chosen, t) && (value > best_value || (value == best_value && k < best))) {
          best_value = value;
          best = k;
        }
      }
    };
    consider(s.known.data(), s.known.size());
    // Candidates: atoms whose interval reaches both the largest lower bound (a chosen atom's
    // interval is [-margin, margin]) and the best exact magnitude so far; an atom below either
    // is below the step's maximum.
    const float threshold = std::max(
        best_value, detail::max_lower_bound(current, s.bound.data(), n_atoms_, margin, -margin));
    s.candidates.resize(n_atoms_);
    s.candidates.resize(detail::collect_candidates(current, s.bound.data(), n_atoms_, margin,
                                                   threshold, s.candidates.data()));
    s.pending.clear();
    for (const std::int32_t k : s.candidates)
      if (s.known_in[k] != s.item && !is_chosen(k, chosen, t))
        s.pending.push_back({std::fabs(current[k]) + (s.bound[k] + margin), k});
    // Branch and bound: exact products eight at a time, largest upper bounds first, while an
    // upper bound still reaches the best exact magnitude.
    std::int32_t batch[8];
    float values[8];
    auto by_upper = [](const Pending& a, const Pending& b) { return a.upper > b.upper; };
    while (true) {
      s.pending.erase(std::remove_if(s.pending.begin(), s.pending.end(),
                                     [&](const Pending& p) { return p.upper < best_value; }),
                      s.pending.end());
      if (s.pending.empty()) break;
      const std::size_t m = std::min<std::size_t>(8, s.pending.size());
      if (s.pending.size() > m)
        std::nth_element(s.pending.begin(), s.pending.begin() + m, s.pending.end(), by_upper);
      for (std::size_t j = 0; j < m; ++j) batch[j] = s.pending[j].atom;
      s.pending.erase(s.pending.begin(), s.pending.begin() + m);
      screen_.exact(x_, batch, m, values);
      for (std::size_t j = 0; j < m; ++j) {
        s.exact[batch[j]] = values[j];
        s.known_in[batch[j]] = s.item;
        s.known.push_back(batch[j]);
      }
      consider(batch, m);
    }
    *best_abs = best_value;
    return best;
  }
  float alpha0(std::size_t atom) const { return scratch().exact[atom]; }
  const float* all() const { return nullptr; }  // only the atoms compared exactly are known

 private:
  struct Pending {
    float upper;
    std::int32_t atom;
  };
  struct Scratch {
    std::vector<float> approx, bound, current, exact;
    std::vector<std::uint32_t> known_in;  // item stamp of each atom's exact product
    std::uint32_t item = 0;
    std::vector<std::int32_t> candidates;
    std::vector<std::int32_t> known;  // atoms with an exact product for this item
    std::vector<float> values;        // exact residual correlations being compared
    std::vector<Pending> pending;     // candidates without an exact product yet
  };
  static Scratch& scratch() {
    thread_local Scratch s;
    return s;
  }
  static bool is_chosen(std::int32_t k, const std::int32_t* chosen, std::size_t t) {
    for (std::size_t i = 0; i < t; ++i)
      if (chosen[i] == k) return true;
    return false;
  }
  const detail::AtomScreen& screen_;
  const float* x_;
  std::size_t n_atoms_;
  double gram_max_abs_, largest_product_ = 0.0;
};

// Batch-OMP for one signal, its correlations given by `corr` (FullCorrelations or
// ScreenedCorrelations: the same choices), with ||x||^2; returns the number of atoms found.
// With path_gamma (n_nonzero x n_nonzero), row t receives gamma after step t + 1 (the
// least-squares coefficients on the first t + 1 atoms); s.rhs then holds alpha0 on them.
template <class Correlations>
std::size_t pursue(Correlations& corr, double norm_sq, const float* gram, std::size_t gram_stride,
                   const float* gram_diag, std::size_t n_atoms, std::size_t n_nonzero, double tol,
                   PursuitScratch& s, std::int32_t* indices, float* coefs, double* path_gamma = nullptr) {
  std::fill(indices, indices + n_nonzero, -1);
  std::fill(coefs, coefs + n_nonzero, 0.0f);
  if (tol >= 0.0 && norm_sq <= tol) return 0;
  double* chol = s.chol.data();
  const double negligible = 1e-6 * std::sqrt(norm_sq);
  std::size_t t = 0;
  for (; t < n_nonzero; ++t) {
    float best_abs = 0.0f;
    const std::size_t best = corr.select(t, s.rows.data(), s.gamma_f.data(), indices, &best_abs);
    if (!(best_abs > negligible)) break;  // residual is (numerically) orthogonal to D
    const float* g_best = gram + best * gram_stride;
    s.rows[t] = g_best;
    // The row is read in full by the next selection; its lines are requested together now
    // (it is seldom in cache for one item: the pass over the atoms evicts it).
    for (std::size_t j = 0; j < n_atoms; j += 16) __builtin_prefetch(g_best + j);
    // The new row is read from memory while the factor grows: its entries on the support are
    // G[i, best] of the chosen atoms' rows, already in cache (G is stored exactly symmetric),
    // and its diagonal is kept apart.
    const double g_jj = gram_diag[best];
    if (t == 0) {
      chol[0] = std::sqrt(g_jj);
    } else {
      double* w = s.w.data();
      for (std::size_t i = 0; i < t; ++i) w[i] = s.rows[i][best];
      forward_substitute(chol, n_nonzero, t, w);
      double w_sq = 0.0;
      for (std::size_t i = 0; i < t; ++i) w_sq += w[i] * w[i];
      const double diag = g_jj - w_sq;
      if (!(diag > 1e-7)) break;  // new atom is (numerically) in the span of the support
      for (std::size_t i = 0; i < t; ++i) chol[t * n_nonzero + i] = w[i];
      chol[t * n_nonzero + t] = std::sqrt(diag);
    }
    indices[t] = static_cast<std::int32_t>(best);
    s.rhs[t] = corr.alpha0(best);
    // gamma = (L L^T)^-1 alpha0_I: L y = alpha0_I gains one entry per step (the earlier ones
    // are those forward_substitute would recompute, operation for operation), then L^T gamma = y.
    {
      double acc = s.rhs[t];
      for (std::size_t j = 0; j < t; ++j) acc -= chol[t * n_nonzero + j] * s.y[j];
      s.y[t] = acc / chol[t * n_nonzero + t];
    }
    std::copy(s.y.begin(), s.y.begin() + t + 1, s.gamma.begin());
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
    // The next selection subtracts G_I gamma (G symmetric: the saved rows of the chosen
    // atoms) from alpha0, with the coefficients as floats.
    for (std::size_t i = 0; i <= t; ++i) s.gamma_f[i] = static_cast<float>(s.gamma[i]);
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
// block of few signals), then per_signal(i, correlations of signal i, ||x_i||^2, scratch) for
// each signal of the block. A block of one signal screens the atoms instead when `screen` is
// given (the same choices). Blocks run in parallel; the result of a signal depends on nothing
// else.
template <class PerSignal>
void for_each_signal(const PackedB& packed, const OmpCoder::Screen* screen, const float* signals,
                     std::size_t n, std::size_t dim, std::size_t n_atoms, std::size_t n_nonzero,
                     int n_threads, PerSignal&& per_signal) {
  const std::size_t block = detail::kMC;
  const std::size_t n_blocks = (n + block - 1) / block;
  detail::parallel_for(n_blocks, n_threads, [&](std::size_t blk) {
    thread_local std::vector<float> corr;
    thread_local PursuitScratch scratch;
    const std::size_t i0 = blk * block;
    const std::size_t m = std::min(block, n - i0);
    scratch.resize(n_atoms, n_nonzero);
    if (m == 1 && screen != nullptr) {
      const float* x = signals + i0 * dim;
      const double norm_sq = squared_norm(x, dim);
      // The bounds are relative to |x|: far from 1 (an item is coded at unit norm), floats
      // would underflow or overflow before they do.
      if (norm_sq >= 1e-12 && norm_sq <= 1e12) {
        ScreenedCorrelations screened(screen->atoms, x, norm_sq, screen->gram_max_abs);
        per_signal(i0, screened, norm_sq, scratch);
        return;
      }
    }
    if (corr.size() < m * n_atoms) corr.resize(m * n_atoms);
    gemm_nt_packed(signals + i0 * dim, m, dim, packed, corr.data(), n_atoms);
    for (std::size_t r = 0; r < m; ++r) {
      const float* x = signals + (i0 + r) * dim;
      FullCorrelations full(corr.data() + r * n_atoms, n_atoms, scratch.alpha.data());
      per_signal(i0 + r, full, squared_norm(x, dim), scratch);
    }
  });
}

// Screening pays once the float16 atoms outgrow the L2 cache it saves reading from: measured
// on Zen 4 (1 MB L2), even at K x d = 2^18 (512 KB), 10-25 % faster from 3 x 2^17 (768 KB) up.
constexpr std::size_t kScreenMinValues = std::size_t{3} << 17;
constexpr std::size_t kScreenMaxDim = std::size_t{1} << 16;

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
  packed_ = rows ? std::make_shared<const PackedB>(rows, n_atoms, dim, dim, row_scale)
                 : std::make_shared<const PackedB>(atoms, n_atoms, dim, dim);
  const std::size_t lines = (n_atoms + 15) / 16;  // 64-byte lines per row, made odd
  gram_stride_ = 16 * (lines | 1);
  gram_.assign(n_atoms * gram_stride_, 0.0f);
  // The upper triangle, in bands of rows from the diagonal on (each entry is the same chain
  // of fused multiply-adds wherever its tile lies: gemm_nt's results do not depend on the
  // blocking), then mirrored: about 56% of the full product's work at K = 1024, where the full
  // product cost a tenth of a batch's correlations (20,000 x 768).
  constexpr std::size_t kBand = 128;
  for (std::size_t i0 = 0; i0 < n_atoms; i0 += kBand) {
    const std::size_t rows_in_band = std::min(kBand, n_atoms - i0);
    gemm_nt(atoms + i0 * dim, rows_in_band, dim, atoms + i0 * dim, n_atoms - i0, dim, dim,
            gram_.data() + i0 * gram_stride_ + i0, gram_stride_, n_threads);
  }
  // Exactly symmetric (what the pursuit relies on), and its diagonal apart.
  gram_diag_.resize(n_atoms);
  for (std::size_t i = 0; i < n_atoms; ++i) {
    gram_diag_[i] = gram_[i * gram_stride_ + i];
    for (std::size_t j = i + 1; j < n_atoms; ++j)
      gram_[j * gram_stride_ + i] = gram_[i * gram_stride_ + j];
  }
  screen_slot_ = std::make_shared<ScreenSlot>();
}

// Built on the first one-item pursuit that screens (a coder used only for batches never
// pays for it): the screen reads the atoms back from the packed product's float32 panels.
struct OmpCoder::ScreenSlot {
  std::once_flag built;
  std::unique_ptr<Screen> screen;
};

const OmpCoder::Screen* OmpCoder::screen_for_one_item() const {
  if (!screen_slot_ || !packed_->has_half() || !atom_screening_enabled()) return nullptr;
  if (!detail::atom_screening_forced() && n_atoms_ * dim_ < kScreenMinValues) return nullptr;
  // The int8 sums stay within int32 (255 * 127 * d < 2^31) up to this depth.
  if (dim_ > kScreenMaxDim) return nullptr;
  std::call_once(screen_slot_->built, [&] {
    std::vector<float> values(n_atoms_ * dim_);
    for (std::size_t k = 0; k < n_atoms_; ++k)
      for (std::size_t j = 0; j < dim_; ++j)
        values[k * dim_ + j] = packed_->panel(j / detail::kKC, k / detail::kNR)
                                   [(j % detail::kKC) * detail::kNR + k % detail::kNR];
    float gram_max_abs = 0.0f;
    for (const float g : gram_) gram_max_abs = std::max(gram_max_abs, std::fabs(g));
    screen_slot_->screen = std::unique_ptr<Screen>(new Screen{
        detail::AtomScreen(values.data(), packed_->row_scale(), n_atoms_, dim_), gram_max_abs});
  });
  return screen_slot_->screen.get();
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
  for_each_signal(*packed_, screen_for_one_item(), signals, n, dim_, n_atoms_, n_nonzero, n_threads,
                  [&](std::size_t i, auto& corr, double norm_sq, PursuitScratch& s) {
                    pursue(corr, norm_sq, gram_.data(), gram_stride_, gram_diag_.data(), n_atoms_,
                           n_nonzero, tol, s, indices + i * n_nonzero, coefs + i * n_nonzero);
                  });
}

void OmpCoder::pursue_paths(const float* signals, std::size_t n, std::size_t n_nonzero,
                            const OmpPathVisitor& visit, int n_threads,
                            bool all_correlations) const {
  check_encode_args(signals, n, n_nonzero, -1.0);
  const Screen* screen = all_correlations ? nullptr : screen_for_one_item();
  for_each_signal(*packed_, screen, signals, n, dim_, n_atoms_, n_nonzero, n_threads,
                  [&](std::size_t i, auto& corr, double norm_sq, PursuitScratch& s) {
                    thread_local std::vector<std::int32_t> atoms;
                    thread_local std::vector<float> coefs;
                    thread_local std::vector<double> gamma;
                    atoms.resize(n_nonzero);
                    coefs.resize(n_nonzero);
                    gamma.resize(n_nonzero * n_nonzero);
                    OmpPath path;
                    path.n_found = pursue(corr, norm_sq, gram_.data(), gram_stride_, gram_diag_.data(),
                                          n_atoms_, n_nonzero, -1.0, s, atoms.data(), coefs.data(),
                                          gamma.data());
                    path.stride = n_nonzero;
                    path.atoms = atoms.data();
                    path.alpha0 = s.rhs.data();
                    path.gamma = gamma.data();
                    path.correlations = all_correlations ? corr.all() : nullptr;
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
