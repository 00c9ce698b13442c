#include "smic/ksvd.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "kernels/parallel.hpp"
#include "smic/error.hpp"
#include "kernels/gemm.hpp"
#include "smic/omp.hpp"

namespace smic {
namespace {

// splitmix64: a portable generator, so a seed gives the same dictionary on every platform.
struct SplitMix64 {
  std::uint64_t state;
  std::uint64_t next() {
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  std::size_t below(std::size_t n) { return static_cast<std::size_t>(next() % n); }
};

double squared_norm(const float* v, std::size_t dim) {
  double s = 0.0;
  for (std::size_t i = 0; i < dim; ++i) s += double(v[i]) * v[i];
  return s;
}

// Copy `src` into `dst` scaled to unit norm; false when src is (numerically) zero.
bool set_normalised(const float* src, std::size_t dim, float* dst) {
  const double norm = std::sqrt(squared_norm(src, dim));
  if (!(norm > 1e-12)) return false;
  for (std::size_t i = 0; i < dim; ++i) dst[i] = static_cast<float>(src[i] / norm);
  return true;
}

// Signals in a seeded random order (partial Fisher-Yates draws on demand).
class RandomOrder {
 public:
  RandomOrder(std::size_t n, std::uint64_t seed) : perm_(n), rng_{seed} {
    std::iota(perm_.begin(), perm_.end(), std::size_t{0});
  }
  bool next(std::size_t& out) {
    if (pos_ == perm_.size()) return false;
    std::swap(perm_[pos_], perm_[pos_ + rng_.below(perm_.size() - pos_)]);
    out = perm_[pos_++];
    return true;
  }

 private:
  std::vector<std::size_t> perm_;
  SplitMix64 rng_;
  std::size_t pos_ = 0;
};

// Where each atom is used: CSR lists of (signal * n_nonzero + slot), in signal order.
struct AtomUsage {
  std::vector<std::size_t> offsets, entries;
  void build(const std::vector<std::int32_t>& indices, std::size_t n_atoms) {
    offsets.assign(n_atoms + 1, 0);
    for (std::int32_t k : indices)
      if (k >= 0) ++offsets[static_cast<std::size_t>(k) + 1];
    std::partial_sum(offsets.begin(), offsets.end(), offsets.begin());
    entries.resize(offsets.back());
    std::vector<std::size_t> fill(offsets.begin(), offsets.end() - 1);
    for (std::size_t e = 0; e < indices.size(); ++e)
      if (indices[e] >= 0) entries[fill[static_cast<std::size_t>(indices[e])]++] = e;
  }
};

}  // namespace

KsvdResult learn_dictionary(const float* signals, std::size_t n, std::size_t dim,
                            const KsvdOptions& opt, const KsvdProgress& progress) {
  const std::size_t n_atoms = opt.n_atoms, s = opt.n_nonzero;
  require(n_atoms > 0, "n_atoms must be >= 1");
  require(dim > 0, "X must have at least one column (d = 0)");
  require(n >= n_atoms, "n_atoms (" + std::to_string(n_atoms) +
                            ") must be <= the number of signals (" + std::to_string(n) + ")");
  require(s >= 1 && s <= n_atoms && s <= dim,
          "n_nonzero must be in [1, min(n_atoms, d)], got " + std::to_string(s));
  require(opt.power_iterations >= 1, "power_iterations must be >= 1");
  require(opt.min_usage_fraction >= 0.0 && opt.min_usage_fraction < 1.0,
          "min_usage_fraction must be in [0, 1)");
  require(opt.max_coherence > 0.0 && opt.max_coherence <= 1.0, "max_coherence must be in (0, 1]");
  require_finite(signals, n * dim, "X");

  KsvdResult result;
  std::vector<float>& atoms = result.atoms;
  atoms.assign(n_atoms * dim, 0.0f);

  // Initialise from distinct non-zero signals in seeded random order.
  RandomOrder order(n, opt.seed);
  std::size_t filled = 0, pick = 0;
  while (filled < n_atoms && order.next(pick))
    if (set_normalised(signals + pick * dim, dim, atoms.data() + filled * dim)) ++filled;
  require(filled == n_atoms, "X has fewer non-zero signals (" + std::to_string(filled) +
                                 ") than n_atoms (" + std::to_string(n_atoms) + ")");

  std::vector<std::int32_t> indices(n * s);
  std::vector<float> coefs(n * s);
  std::vector<float> residual(n * dim);
  std::vector<double> residual_sq(n);
  std::vector<double> new_atom(dim);
  std::vector<float> old_atom(dim), gram(n_atoms * n_atoms);
  std::vector<double> g_old, g_cur;
  AtomUsage usage;

  for (std::size_t iter = 0; iter < opt.n_iter; ++iter) {
    if (opt.sparse_coder) {
      opt.sparse_coder(atoms.data(), indices.data(), coefs.data());
    } else {
      const OmpCoder coder(atoms.data(), n_atoms, dim, opt.n_threads);
      coder.encode(signals, n, s, -1.0, indices.data(), coefs.data(), opt.n_threads);
    }

    // residual_i = x_i - sum_t coef_it * atom_(index_it)
    detail::parallel_for((n + 255) / 256, opt.n_threads, [&](std::size_t blk) {
      for (std::size_t i = blk * 256; i < std::min(n, blk * 256 + 256); ++i) {
        float* r = residual.data() + i * dim;
        std::copy(signals + i * dim, signals + (i + 1) * dim, r);
        for (std::size_t t = 0; t < s; ++t) {
          const std::int32_t k = indices[i * s + t];
          if (k < 0) continue;
          const float c = coefs[i * s + t];
          const float* a = atoms.data() + static_cast<std::size_t>(k) * dim;
          for (std::size_t j = 0; j < dim; ++j) r[j] -= c * a[j];
        }
      }
    });

    // One rank-1 refit per atom, in order, on the signals that use it:
    // new atom ∝ E_I g with E_I = R_I + g a^T, then g' = E_I^T atom', R_I = E_I - g' atom'^T.
    usage.build(indices, n_atoms);
    std::vector<std::size_t> unused;
    const bool last_iteration = iter + 1 == opt.n_iter;
    // Rarely used atoms are re-seeded, except after the last refit (their users would lose them).
    const double min_usage = last_iteration ? 0.0 : opt.min_usage_fraction *
                                                        double(usage.entries.size()) / double(n_atoms);
    for (std::size_t k = 0; k < n_atoms; ++k) {
      const std::size_t begin = usage.offsets[k], end = usage.offsets[k + 1];
      float* atom = atoms.data() + k * dim;
      if (begin == end || double(end - begin) < min_usage) {
        unused.push_back(k);
        continue;
      }
      // Power iterations on E_I = R_I + g_old a_old^T (never formed): atom ∝ E_I g, g = E_I^T atom.
      const std::size_t m = end - begin;
      g_old.resize(m);
      g_cur.resize(m);
      for (std::size_t e = 0; e < m; ++e) g_old[e] = g_cur[e] = coefs[usage.entries[begin + e]];
      std::copy(atom, atom + dim, old_atom.begin());
      bool degenerate = false;
      double old_dot_new = 0.0;
      for (std::size_t round = 0; round < opt.power_iterations && !degenerate; ++round) {
        double g_dot = 0.0;
        std::fill(new_atom.begin(), new_atom.end(), 0.0);
        for (std::size_t e = 0; e < m; ++e) {
          const double g = g_cur[e];
          const float* r = residual.data() + (usage.entries[begin + e] / s) * dim;
          for (std::size_t j = 0; j < dim; ++j) new_atom[j] += g * r[j];
          g_dot += g * g_old[e];
        }
        double norm_sq = 0.0;
        for (std::size_t j = 0; j < dim; ++j) {
          new_atom[j] += g_dot * old_atom[j];
          norm_sq += new_atom[j] * new_atom[j];
        }
        if (!(norm_sq > 1e-24)) {
          degenerate = true;
          break;
        }
        const double inv_norm = 1.0 / std::sqrt(norm_sq);
        old_dot_new = 0.0;
        for (std::size_t j = 0; j < dim; ++j) {
          new_atom[j] *= inv_norm;
          old_dot_new += old_atom[j] * new_atom[j];
          atom[j] = static_cast<float>(new_atom[j]);
        }
        for (std::size_t e = 0; e < m; ++e) {
          const float* r = residual.data() + (usage.entries[begin + e] / s) * dim;
          double dot = 0.0;
          for (std::size_t j = 0; j < dim; ++j) dot += double(r[j]) * atom[j];
          g_cur[e] = dot + g_old[e] * old_dot_new;
        }
      }
      if (degenerate) {
        std::copy(old_atom.begin(), old_atom.end(), atom);
        unused.push_back(k);
        continue;
      }
      for (std::size_t e = 0; e < m; ++e) {
        const std::size_t entry = usage.entries[begin + e];
        float* r = residual.data() + (entry / s) * dim;
        const float g_o = static_cast<float>(g_old[e]), g_n = static_cast<float>(g_cur[e]);
        for (std::size_t j = 0; j < dim; ++j) r[j] += g_o * old_atom[j] - g_n * atom[j];
        coefs[entry] = g_n;
      }
    }

    for (std::size_t i = 0; i < n; ++i)
      residual_sq[i] = squared_norm(residual.data() + i * dim, dim);
    double mse = 0.0;
    for (double v : residual_sq) mse += v;
    mse /= static_cast<double>(n);
    result.mean_sq_error.push_back(mse);

    // Replace unused atoms and near-duplicates (|<a_k, a_k2>| > max_coherence, k2 < k) by
    // the worst-represented signals.
    gemm_nt(atoms.data(), n_atoms, dim, atoms.data(), n_atoms, dim, dim, gram.data(), n_atoms,
            opt.n_threads);
    std::vector<char> is_unused(n_atoms, 0);
    for (std::size_t k : unused) is_unused[k] = 1;
    for (std::size_t k = 0; k < n_atoms && !last_iteration; ++k) {
      if (is_unused[k]) continue;
      for (std::size_t k2 = 0; k2 < k; ++k2) {
        if (!is_unused[k2] && std::fabs(gram[k * n_atoms + k2]) > opt.max_coherence) {
          unused.push_back(k);
          is_unused[k] = 1;
          break;
        }
      }
    }
    if (!unused.empty()) {
      std::vector<std::size_t> worst(n);
      std::iota(worst.begin(), worst.end(), std::size_t{0});
      std::stable_sort(worst.begin(), worst.end(), [&](std::size_t x, std::size_t y) {
        return residual_sq[x] > residual_sq[y];
      });
      std::size_t next = 0;
      for (std::size_t k : unused) {
        while (next < n && !set_normalised(signals + worst[next] * dim, dim,
                                           atoms.data() + k * dim))
          ++next;
        if (next < n) ++next;
        ++result.replaced_atoms;
      }
    }
    if (progress && !progress(iter, mse)) break;
  }
  return result;
}

}  // namespace smic
