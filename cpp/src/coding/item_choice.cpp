// Rate-distortion choice of item symbols on the recorded OMP path (see item_choice.hpp).
#include "smic/item_choice.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "smic/error.hpp"

namespace smic {
namespace {

constexpr std::int64_t kMaxLevelLimit = std::int64_t{1} << 29;  // keeps 2 * max_level + 1 < 2^31

// Code length of one candidate's symbols: the models' tables (summed in the order of
// item_bits, so the value is the same) or the flat models' closed form.
class BitPricer {
 public:
  BitPricer(const ItemModels* models, std::size_t s_max, std::size_t n_atoms, std::int64_t levels)
      : models_(models) {
    // As the reference computes it: (log2(s+1) + log2(2K)) + rest * (log2 K + log2 L).
    flat_base_ = std::log2(static_cast<double>(s_max + 1)) +
                 std::log2(2.0 * static_cast<double>(n_atoms));
    flat_rest_ = std::log2(static_cast<double>(n_atoms)) + std::log2(static_cast<double>(levels));
  }

  double operator()(std::int32_t count, std::int32_t first,
                    const std::pair<std::int32_t, std::int32_t>* rest) const {
    if (models_ == nullptr) return flat_base_ + static_cast<double>(count - 1) * flat_rest_;
    const double* lt = models_->index_log2_tail().data();
    const double* lf = models_->index_log2_freq().data();
    const double* lv = models_->level_bits().data();
    double b = models_->count_bits()[static_cast<std::size_t>(count)];
    b += models_->first_bits()[static_cast<std::size_t>(first)];
    std::size_t lower = 0;  // previous atom + 1
    for (std::int32_t j = 0; j + 1 < count; ++j) {
      const auto s = static_cast<std::size_t>(rest[j].first);
      b += lt[lower] - lf[s] + lv[static_cast<std::size_t>(rest[j].second)];
      lower = s + 1;
    }
    return b;
  }

 private:
  const ItemModels* models_;
  double flat_base_ = 0, flat_rest_ = 0;
};

// One candidate: symbols and cosine.
struct Candidate {
  std::int32_t count = 1, first = 0;
  double cosine = 0.0;
  std::vector<std::pair<std::int32_t, std::int32_t>> rest;  // (atom, level symbol), ascending
};

struct ChoiceScratch {
  std::vector<double> weights;
  Candidate current, best;
};

// The candidate on the first k atoms of the path (coefficients c = gamma row k - 1).
void make_candidate(const OmpPath& path, std::size_t k, const float* gram, std::size_t gram_stride,
                    const ItemChoiceParams& p, std::int64_t max_level, double inv_step,
                    std::vector<double>& w, Candidate& out) {
  const double* c = path.gamma + (k - 1) * path.stride;
  std::size_t lead = 0;
  double lead_abs = std::fabs(c[0]);
  for (std::size_t j = 1; j < k; ++j)
    if (std::fabs(c[j]) > lead_abs) {  // strict: the first maximum, as numpy.argmax
      lead = j;
      lead_abs = std::fabs(c[j]);
    }
  const bool negative = c[lead] < 0;
  const double scale = lead_abs > 0 ? lead_abs : 1.0;
  out.rest.clear();
  for (std::size_t j = 0; j < k; ++j) {
    if (j == lead) {
      w[j] = negative ? -1.0 : 1.0;
      continue;
    }
    // The ratio quantizer of quantizer.cpp on the float32 ratio, then its dequantizer (bias 0).
    const double r = static_cast<float>(c[j] / scale);
    // |r| <= 1, so the level is at most max_level; the clamp only guards the tables.
    const double mag = std::min(std::floor(std::fabs(r) * inv_step + p.rounding),
                                static_cast<double>(max_level));
    const double weight = static_cast<double>(static_cast<float>(mag * p.step));
    w[j] = r < 0 ? -weight : weight;
    if (w[j] != 0.0) {
      const auto q = static_cast<std::int32_t>(mag);
      out.rest.emplace_back(path.atoms[j],
                            static_cast<std::int32_t>((r < 0 ? -q : q) + max_level));
    }
  }
  std::sort(out.rest.begin(), out.rest.end());  // atoms are distinct: ascending by atom
  double dot = 0.0, quad = 0.0;
  for (std::size_t i = 0; i < k; ++i) {
    dot += w[i] * path.alpha0[i];
    const float* g_row = gram + static_cast<std::size_t>(path.atoms[i]) * gram_stride;
    double row = 0.0;
    for (std::size_t j = 0; j < k; ++j)
      row += static_cast<double>(g_row[path.atoms[j]]) * w[j];
    quad += w[i] * row;
  }
  out.cosine = dot / std::sqrt(std::max(quad, 1e-30));
  out.count = static_cast<std::int32_t>(1 + out.rest.size());
  out.first = 2 * path.atoms[lead] + (negative ? 1 : 0);
}

// The one-atom code of lowest cost (1 - |c_j| / sqrt(G_jj)) + rd_lambda * bits(count 1,
// first 2j + sign) over all K atoms, c_j = correlations[j]; ties to the smaller atom. Cosine
// and bits are computed as make_candidate and BitPricer compute them for a one-atom path.
void choose_one_atom(const float* correlations, const std::vector<double>& atom_norm,
                     const ItemModels& models, double rd_lambda, Candidate& out) {
  const double count_bits = models.count_bits()[1];
  const double* first_bits = models.first_bits().data();
  double best_cost = std::numeric_limits<double>::infinity();
  for (std::size_t j = 0; j < atom_norm.size(); ++j) {
    const double c = correlations[j];
    const std::size_t first = 2 * j + (c < 0 ? 1 : 0);
    const double cosine = std::fabs(c) / atom_norm[j];
    const double cost = (1.0 - cosine) + rd_lambda * (count_bits + first_bits[first]);
    if (cost < best_cost) {
      best_cost = cost;
      out.first = static_cast<std::int32_t>(first);
      out.cosine = cosine;
    }
  }
  out.count = 1;
  out.rest.clear();
}

void write_choice(const Candidate& best, std::size_t i, std::size_t width,
                  const ItemChoiceOutput& out) {
  out.counts[i] = best.count;
  out.first[i] = best.first;
  out.cosine[i] = best.cosine;
  std::int32_t* index = out.rest_index + i * width;
  std::int32_t* level = out.rest_level + i * width;
  for (std::size_t j = 0; j < width; ++j) {
    const bool used = j < best.rest.size();
    index[j] = used ? best.rest[j].first : -1;
    level[j] = used ? best.rest[j].second : -1;
  }
}

}  // namespace

std::int64_t ItemChoiceParams::max_level() const {
  return static_cast<std::int64_t>(std::floor(1.0 / step + rounding));
}

// Messages are built only on failure: this runs on every call, single items included.
void validate_item_choice(const OmpCoder& coder, const ItemChoiceParams& p,
                          const ItemModels* models) {
  const std::size_t limit = std::min(coder.n_atoms(), coder.dim());
  if (!(p.s_max >= 1 && p.s_max <= limit))
    throw InvalidArgument("s_max must be in [1, min(K, d)] = [1, " + std::to_string(limit) +
                          "], got " + std::to_string(p.s_max));
  if (!(std::isfinite(p.step) && p.step > 0.0 && p.step <= 1.0))
    throw InvalidArgument("step must be in (0, 1], got " + std::to_string(p.step));
  if (!(p.rounding >= 0.0 && p.rounding < 1.0))
    throw InvalidArgument("rounding must be in [0, 1), got " + std::to_string(p.rounding));
  if (!(std::isfinite(p.rd_lambda) && p.rd_lambda >= 0.0))
    throw InvalidArgument("rd_lambda must be a finite number >= 0, got " +
                          std::to_string(p.rd_lambda));
  // floor(1 / step + rounding) is checked in double before any conversion to an integer.
  if (!(1.0 / p.step + p.rounding < static_cast<double>(kMaxLevelLimit)))
    throw InvalidArgument("step is too small: more than 2^29 quantizer levels (step = " +
                          std::to_string(p.step) + ")");
  if (models == nullptr) return;
  const std::int64_t levels = 2 * p.max_level() + 1;
  if (models->layout() != ItemLayout::kSorted)
    throw InvalidArgument("models must be built for the sorted layout (paper=False)");
  if (models->n_atoms() != coder.n_atoms())
    throw InvalidArgument("models are for K = " + std::to_string(models->n_atoms()) +
                          " atoms but the coder has " + std::to_string(coder.n_atoms()));
  if (models->s_max() != p.s_max)
    throw InvalidArgument("models are for s_max = " + std::to_string(models->s_max()) +
                          " but s_max = " + std::to_string(p.s_max));
  if (models->n_levels() != levels)
    throw InvalidArgument("models have " + std::to_string(models->n_levels()) +
                          " level symbols but step and rounding give 2 * max_level + 1 = " +
                          std::to_string(levels));
}

void choose_items(const OmpCoder& coder, const float* signals, std::size_t n,
                  const ItemChoiceParams& p, const ItemModels* models,
                  const ItemChoiceOutput& out, int n_threads) {
  validate_item_choice(coder, p, models);
  const std::size_t s_max = p.s_max, width = s_max - 1, n_atoms = coder.n_atoms();
  const std::int64_t max_level = p.max_level();
  const double inv_step = 1.0 / p.step;  // as ScalarQuantizer::quantize
  const BitPricer bits(models, s_max, n_atoms, 2 * max_level + 1);
  const float* gram = coder.gram().data();
  const std::size_t gram_stride = coder.gram_stride();
  // One atom per item, priced by fitted tables: the atom is chosen by its cost among all K
  // (entropy-constrained), so every item needs all its correlations.
  const bool price_every_atom = s_max == 1 && p.rd_lambda > 0.0 && models != nullptr;
  std::vector<double> atom_norm;  // sqrt(G_jj): the one-atom cosine is |<atom, x>| / that
  if (price_every_atom) {
    atom_norm.resize(n_atoms);
    for (std::size_t j = 0; j < n_atoms; ++j)
      atom_norm[j] = std::sqrt(std::max(static_cast<double>(gram[j * gram_stride + j]), 1e-30));
  }
  coder.pursue_paths(signals, n, s_max, [&](std::size_t i, const OmpPath& path) {
    thread_local ChoiceScratch s;
    s.weights.resize(s_max);
    const Candidate* best = &s.best;
    s.best.count = 1;  // when no atom is found: atom 0, positive, cosine 0
    s.best.first = 0;
    s.best.cosine = 0.0;
    s.best.rest.clear();
    if (price_every_atom && path.n_found > 0) {
      choose_one_atom(path.correlations, atom_norm, *models, p.rd_lambda, s.best);
      write_choice(s.best, i, width, out);
      if (out.kept_atoms != nullptr && out.kept_coefs != nullptr) {  // s_max = 1: one slot
        const std::int32_t a = s.best.first / 2;
        const auto g = static_cast<double>(gram[static_cast<std::size_t>(a) * (gram_stride + 1)]);
        out.kept_atoms[i] = a;  // with its least-squares coefficient <a, x> / G_aa
        out.kept_coefs[i] = static_cast<float>(path.correlations[a] / std::max(g, 1e-30));
      }
      return;
    }
    double best_cost = std::numeric_limits<double>::infinity();
    std::size_t best_k = 0;
    for (std::size_t k = 1; k <= path.n_found; ++k) {
      make_candidate(path, k, gram, gram_stride, p, max_level, inv_step, s.weights, s.current);
      const Candidate& c = s.current;
      const double cost = (1.0 - c.cosine) + p.rd_lambda * bits(c.count, c.first, c.rest.data());
      if (k == 1 || cost < best_cost) {  // strict: ties keep the smaller k
        std::swap(s.current, s.best);
        best_cost = cost;
        best_k = k;
      }
    }
    write_choice(*best, i, width, out);
    if (out.kept_atoms != nullptr && out.kept_coefs != nullptr) {
      std::int32_t* atoms = out.kept_atoms + i * s_max;
      float* coefs = out.kept_coefs + i * s_max;
      std::size_t slot = 0;
      const std::int32_t lead_atom = best->first / 2;
      const double* gamma = best_k > 0 ? path.gamma + (best_k - 1) * path.stride : nullptr;
      for (std::size_t j = 0; j < best_k; ++j) {
        const std::int32_t a = path.atoms[j];
        bool kept = a == lead_atom;
        for (std::size_t r = 0; r < best->rest.size() && !kept; ++r) kept = best->rest[r].first == a;
        if (!kept) continue;
        atoms[slot] = a;
        coefs[slot++] = static_cast<float>(gamma[j]);
      }
      for (; slot < s_max; ++slot) {
        atoms[slot] = -1;
        coefs[slot] = 0.0f;
      }
    }
  }, n_threads, price_every_atom);
}

}  // namespace smic
