// Search in the compressed domain (search.hpp): index build (k-means or lead-atom lists), list
// selection, scans, rerank.
#include "smic/search.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <string>

#include "kernels/parallel.hpp"
#include "smic/error.hpp"
#include "kernels/gemm.hpp"
#include "smic/quantizer.hpp"

namespace smic {

namespace {

using Candidate = std::pair<float, uint32_t>;  // (score, position)

constexpr std::size_t kBuildItems = 16384;  // items decoded per parallel task (whole chunks)
constexpr std::size_t kTileItems = 4096;    // items scanned by a block of queries at a time
constexpr std::size_t kQueryBlock = 16;     // queries sharing one pass over a tile
constexpr std::size_t kMinPartItems = 1024; // fewest items worth a task of their own
constexpr uint8_t kPositive = 1, kNegative = 2;

// Higher score first, then lower position: the total order every result follows.
inline bool better(const Candidate& a, const Candidate& b) {
  return a.first > b.first || (a.first == b.first && a.second < b.second);
}

// Keep the k best candidates in a heap whose front is the worst of them.
inline void offer(std::vector<Candidate>& heap, std::size_t k, const Candidate& c) {
  if (heap.size() < k) {
    heap.push_back(c);
    std::push_heap(heap.begin(), heap.end(), better);
  } else if (better(c, heap.front())) {
    std::pop_heap(heap.begin(), heap.end(), better);
    heap.back() = c;
    std::push_heap(heap.begin(), heap.end(), better);
  }
}

// One decoded term of an item before the index is laid out.
struct Term {
  int32_t atom = 0;
  int32_t code = 0;  // index into the weight table
};

// The items' terms as the k-means sees them: item i's coefficients (weight / norm) and atoms.
struct SparseItems {
  const Term* terms = nullptr;
  const int32_t* n_terms = nullptr;
  const float* inverse = nullptr;
  const float* weights = nullptr;  // the weight table
  std::size_t slots = 0;
};

// Products of items `items` with every centroid (K x lists table P = D C^T): item i scores
// sum_j c_ij P[a_ij], a few rows of P, not d-long products. Writes each item's best list
// (the first of equal scores) and its score.
void assign_items(const SparseItems& x, const std::vector<uint32_t>& items, const std::vector<float>& P,
                  std::size_t lists, int n_threads, uint32_t* best, float* best_score) {
  constexpr std::size_t kBlock = 1024;
  detail::parallel_for((items.size() + kBlock - 1) / kBlock, n_threads, [&](std::size_t b) {
    std::vector<float> acc(lists);
    for (std::size_t r = b * kBlock; r < std::min(items.size(), (b + 1) * kBlock); ++r) {
      const std::size_t i = items[r];
      const Term* term = x.terms + i * x.slots;
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int32_t j = 0; j < x.n_terms[i]; ++j) {
        const float c = x.weights[term[j].code] * x.inverse[i];
        const float* row = P.data() + static_cast<std::size_t>(term[j].atom) * lists;
        for (std::size_t l = 0; l < lists; ++l) acc[l] += c * row[l];
      }
      std::size_t arg = 0;
      for (std::size_t l = 1; l < lists; ++l)
        if (acc[l] > acc[arg]) arg = l;
      best[r] = static_cast<uint32_t>(arg);
      best_score[r] = acc[arg];
    }
  });
}

// Spherical k-means over the items' decoded (atoms-only, unit) embeddings, in the code domain:
// a centroid is kept as its coefficients over the atoms (B, lists x K), its embedding is
// C = normalise(B D), and the items' products with it come from P = D C^T (K x lists). Every
// step is a product or a fixed-order sum, so the result does not depend on n_threads.
// Returns the unit centroids (lists x d) and each of `valid`'s lists in `list_of`.
std::vector<float> spherical_kmeans(const SparseItems& x, const std::vector<uint32_t>& valid,
                                    const std::vector<float>& atoms, std::size_t K, std::size_t d,
                                    std::size_t lists, const IndexOptions& options, int n_threads,
                                    std::vector<uint32_t>& list_of) {
  // Training items: a seeded partial Fisher-Yates draw (std::mt19937_64 is the same sequence
  // everywhere; no std:: distribution, whose output is implementation-defined).
  std::vector<uint32_t> order(valid);
  const std::size_t wanted = options.train_items ? options.train_items : 256 * lists;
  const std::size_t S = std::max(lists, std::min(order.size(), wanted));
  std::mt19937_64 rng(options.seed);
  for (std::size_t i = 0; i < S; ++i) std::swap(order[i], order[i + rng() % (order.size() - i)]);
  std::vector<uint32_t> first(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(lists));
  std::vector<uint32_t> sample(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(S));
  std::sort(sample.begin(), sample.end());  // updates sum in item order

  std::vector<float> B(lists * K, 0.0f);
  auto add_item = [&](std::size_t list, std::size_t i) {
    const Term* term = x.terms + i * x.slots;
    for (int32_t j = 0; j < x.n_terms[i]; ++j)
      B[list * K + static_cast<std::size_t>(term[j].atom)] += x.weights[term[j].code] * x.inverse[i];
  };
  for (std::size_t l = 0; l < lists; ++l) add_item(l, first[l]);

  std::vector<float> Dt(d * K);  // D transposed, for C = B D as a product with D^T's rows
  for (std::size_t k = 0; k < K; ++k)
    for (std::size_t j = 0; j < d; ++j) Dt[j * K + k] = atoms[k * d + j];
  std::vector<float> C(lists * d), P(K * lists);
  std::vector<uint32_t> assigned(S);
  std::vector<float> score(S);
  for (std::size_t iteration = 0;; ++iteration) {
    gemm_nt(B.data(), lists, K, Dt.data(), d, K, K, C.data(), d, n_threads);
    for (std::size_t l = 0; l < lists; ++l) {
      float* c = C.data() + l * d;
      double squared = 0;
      for (std::size_t j = 0; j < d; ++j) squared += static_cast<double>(c[j]) * c[j];
      const float inverse = squared > 0 ? static_cast<float>(1.0 / std::sqrt(squared)) : 0.0f;
      for (std::size_t j = 0; j < d; ++j) c[j] *= inverse;
    }
    gemm_nt(atoms.data(), K, d, C.data(), lists, d, d, P.data(), lists, n_threads);
    if (iteration == options.iterations) break;
    assign_items(x, sample, P, lists, n_threads, assigned.data(), score.data());
    std::fill(B.begin(), B.end(), 0.0f);
    std::vector<std::size_t> members(lists, 0);
    for (std::size_t r = 0; r < S; ++r) {
      add_item(assigned[r], sample[r]);
      ++members[assigned[r]];
    }
    // An empty list restarts from one of the items farthest from their centroids.
    std::vector<std::size_t> far;
    for (std::size_t l = 0; l < lists; ++l) {
      if (members[l]) continue;
      if (far.empty()) {
        far.resize(S);
        std::iota(far.begin(), far.end(), std::size_t{0});
        std::sort(far.begin(), far.end(), [&](std::size_t a, std::size_t b) {
          return score[a] < score[b] || (score[a] == score[b] && a < b);
        });
        std::reverse(far.begin(), far.end());  // pop_back gives the farthest
      }
      add_item(l, sample[far.back()]);
      far.pop_back();
    }
  }
  list_of.assign(valid.size(), 0);
  std::vector<float> ignored(valid.size());
  assign_items(x, valid, P, lists, n_threads, list_of.data(), ignored.data());
  return C;
}

}  // namespace

namespace {
IndexOptions with_gram_limit(std::size_t gram_limit) {
  IndexOptions options;
  options.gram_limit = gram_limit;
  return options;
}
}  // namespace

SearchIndex::SearchIndex(const Collection& collection, int n_threads, std::size_t gram_limit)
    : SearchIndex(collection, with_gram_limit(gram_limit), n_threads) {}

SearchIndex::SearchIndex(const Collection& collection, const IndexOptions& options, int n_threads)
    : collection_(&collection), partition_(options.partition) {
  const std::size_t gram_limit = options.gram_limit;
  const CodingDictionary& dictionary = collection.dictionary();
  const CodingParams& params = dictionary.params();
  n_ = collection.size();
  dim_ = collection.dim();
  n_atoms_ = dictionary.n_atoms();
  require(n_ <= std::numeric_limits<uint32_t>::max(),
          "a search index holds at most 2^32 - 1 items, the collection has " + std::to_string(n_));
  require(n_atoms_ <= std::size_t{1} << 16, "a search index needs K <= 65536 atoms");
  if (partition_ == Partition::kKMeans) {
    require(options.n_lists <= std::max<std::size_t>(n_, 1),
            "n_lists (" + std::to_string(options.n_lists) + ") must be at most the number of items (" +
                std::to_string(n_) + ")");
    require(options.iterations >= 1, "k-means needs iterations >= 1");
  }

  // The weight of each code: 0 unused, 1 and 2 the +1 / -1 lead of the smic layout, then one
  // per level symbol, as CodingDictionary::reconstruct dequantises it.
  weights_ = {0.0f, 1.0f, -1.0f};
  const bool paper = params.layout == ItemLayout::kPaper;
  const uint32_t n_levels = params.level_alphabet();
  const auto max_level = static_cast<int32_t>(params.max_level());
  const double half = paper ? static_cast<double>(uint32_t{1} << (params.paper_bits - 1)) : 0.0;
  const double paper_scale = paper ? params.paper_range / half : 0.0;
  std::vector<double> level_weight(n_levels);
  for (uint32_t l = 0; l < n_levels; ++l) {
    if (paper) {
      level_weight[l] = (static_cast<double>(l) - half) * paper_scale;
    } else {
      const ScalarQuantizer q{params.step, 0.5, 0.0};
      const int32_t value = static_cast<int32_t>(l) - max_level;
      float w;
      q.dequantize(&value, 1, &w);
      level_weight[l] = w;
    }
    weights_.push_back(static_cast<float>(level_weight[l]));
  }
  wide_codes_ = weights_.size() > 256;

  // Decode every item's terms (lead first), whole chunks per task.
  const std::size_t slots = params.s_max;
  std::vector<Term> terms(n_ * slots);
  std::vector<int32_t> n_terms(n_, 0);
  std::vector<double> lead_weight(n_, 0.0);
  const std::vector<std::size_t> bounds = collection.chunk_bounds();
  std::vector<std::pair<std::size_t, std::size_t>> tasks;
  for (std::size_t c = 0; c + 1 < bounds.size();) {
    std::size_t e = c + 1;
    while (e + 1 < bounds.size() && bounds[e] - bounds[c] < kBuildItems) ++e;
    tasks.emplace_back(bounds[c], bounds[e]);
    c = e;
  }
  const std::string& name = collection.name();
  detail::parallel_for(tasks.size(), n_threads, [&](std::size_t t) {
    const auto [lo, hi] = tasks[t];
    const ItemCodes codes = collection.codes(lo, hi);
    const std::size_t w = codes.width;
    for (std::size_t r = 0; r < codes.n; ++r) {
      const std::size_t i = lo + r;
      Term* out = terms.data() + i * slots;
      std::vector<double> weight;
      int32_t m = 0;
      auto add = [&](int32_t atom, int32_t code, double value) {
        if (atom < 0 || static_cast<std::size_t>(atom) >= n_atoms_)
          throw FormatError(name + ": item " + std::to_string(i) + " uses atom " +
                            std::to_string(atom) + " of a " + std::to_string(n_atoms_) +
                            "-atom dictionary");
        if (value == 0.0) return;  // contributes nothing
        out[m] = {atom, code};
        weight.push_back(value);
        ++m;
      };
      const int32_t* index = codes.rest_index.data() + r * w;
      const int32_t* level = codes.rest_level.data() + r * w;
      auto level_code = [&](int32_t l) {
        if (l < 0 || static_cast<uint32_t>(l) >= n_levels)
          throw FormatError(name + ": item " + std::to_string(i) + " has level " +
                            std::to_string(l) + " of " + std::to_string(n_levels));
        return l;
      };
      if (paper) {
        for (std::size_t j = 0; j < w; ++j) {
          const int32_t l = level_code(level[j]);
          add(index[j], 3 + l, level_weight[static_cast<std::size_t>(l)]);
        }
        // The largest |weight| leads (the first of equals), as the item's list.
        int32_t lead = 0;
        for (int32_t j = 1; j < m; ++j)
          if (std::fabs(weight[j]) > std::fabs(weight[lead])) lead = j;
        if (m > 0) {
          std::swap(out[0], out[lead]);
          std::swap(weight[0], weight[lead]);
        }
      } else if (codes.counts[r] > 0) {
        const int32_t first = codes.first[r];
        add(first / 2, first % 2 ? 2 : 1, first % 2 ? -1.0 : 1.0);
        for (std::size_t j = 0; j < w; ++j) {
          if (index[j] < 0) continue;
          const int32_t l = level_code(level[j]);
          add(index[j], 3 + l, level_weight[static_cast<std::size_t>(l)]);
        }
      }
      n_terms[i] = m;
      lead_weight[i] = m > 0 ? weight[0] : 0.0;
    }
  });

  // Inverse norms: ||sum_j w_j a_j||^2 = sum_jl w_j w_l G[a_j][a_l].
  const std::vector<float>& atoms = dictionary.atoms();
  std::vector<float> gram;
  if (n_atoms_ <= gram_limit) {
    gram.resize(n_atoms_ * n_atoms_);
    gemm_nt(atoms.data(), n_atoms_, dim_, atoms.data(), n_atoms_, dim_, dim_, gram.data(), n_atoms_,
            n_threads);
  }
  std::vector<float> inverse(n_, 0.0f);
  detail::parallel_for((n_ + kBuildItems - 1) / kBuildItems, n_threads, [&](std::size_t t) {
    std::vector<double> row;
    for (std::size_t i = t * kBuildItems; i < std::min(n_, (t + 1) * kBuildItems); ++i) {
      const Term* term = terms.data() + i * slots;
      const int32_t m = n_terms[i];
      double squared = 0;
      if (!gram.empty()) {
        for (int32_t j = 0; j < m; ++j) {
          const double wj = weights_[static_cast<std::size_t>(term[j].code)];
          const float* g = gram.data() + static_cast<std::size_t>(term[j].atom) * n_atoms_;
          for (int32_t l = 0; l < m; ++l)
            squared += wj * static_cast<double>(weights_[static_cast<std::size_t>(term[l].code)]) *
                       static_cast<double>(g[term[l].atom]);
        }
      } else if (m > 0) {
        row.assign(dim_, 0.0);
        for (int32_t j = 0; j < m; ++j) {
          const double wj = weights_[static_cast<std::size_t>(term[j].code)];
          const float* a = atoms.data() + static_cast<std::size_t>(term[j].atom) * dim_;
          for (std::size_t x = 0; x < dim_; ++x) row[x] += wj * static_cast<double>(a[x]);
        }
        for (double v : row) squared += v * v;
      }
      inverse[i] = squared > 0 ? static_cast<float>(1.0 / std::sqrt(squared)) : 0.0f;
    }
  });

  // Lists: by k-means centroid or by lead atom; list n_lists_ for items with no atom (or a
  // zero reconstruction).
  std::vector<uint32_t> valid;
  terms_ = 1;
  for (std::size_t i = 0; i < n_; ++i) {
    if (n_terms[i] == 0 || inverse[i] == 0.0f) continue;
    valid.push_back(static_cast<uint32_t>(i));
    terms_ = std::max(terms_, static_cast<std::size_t>(n_terms[i]));
  }
  std::vector<uint32_t> list_of(n_);
  if (partition_ == Partition::kLeadAtom) {
    n_lists_ = n_atoms_;
    list_signs_.assign(n_atoms_, 0);
    for (uint32_t i : valid) list_signs_[static_cast<std::size_t>(terms[i * slots].atom)] |= lead_weight[i] > 0 ? kPositive : kNegative;
    for (std::size_t i = 0; i < n_; ++i) list_of[i] = static_cast<uint32_t>(n_atoms_);
    for (uint32_t i : valid) list_of[i] = static_cast<uint32_t>(terms[i * slots].atom);
  } else {
    const std::size_t wanted =
        options.n_lists ? options.n_lists
                        : std::max<std::size_t>(1, static_cast<std::size_t>(std::lround(std::sqrt(static_cast<double>(n_)))));
    n_lists_ = std::min(wanted, valid.size());  // no more lists than items with atoms
    for (std::size_t i = 0; i < n_; ++i) list_of[i] = static_cast<uint32_t>(n_lists_);
    if (n_lists_ > 0) {
      const SparseItems x{terms.data(), n_terms.data(), inverse.data(), weights_.data(), slots};
      std::vector<uint32_t> valid_list;
      centroids_ = spherical_kmeans(x, valid, atoms, n_atoms_, dim_, n_lists_, options, n_threads, valid_list);
      for (std::size_t r = 0; r < valid.size(); ++r) list_of[valid[r]] = valid_list[r];
    }
  }
  std::vector<std::size_t> counts(n_lists_ + 1, 0);
  for (std::size_t i = 0; i < n_; ++i) ++counts[list_of[i]];
  list_offsets_.assign(n_lists_ + 2, 0);
  for (std::size_t l = 0; l <= n_lists_; ++l) list_offsets_[l + 1] = list_offsets_[l] + counts[l];
  std::vector<std::size_t> fill(list_offsets_.begin(), list_offsets_.end() - 1);
  const std::size_t T = terms_;
  const std::size_t code_bytes = wide_codes_ ? 2 : 1;
  stride_ = (4 + 2 * T + code_bytes * T + 3) / 4 * 4;
  records_.assign(n_ * stride_, 0);
  positions_.assign(n_, 0);
  for (std::size_t i = 0; i < n_; ++i) {
    const std::size_t s = fill[list_of[i]]++;
    positions_[s] = static_cast<uint32_t>(i);
    if (list_of[i] == n_lists_) continue;  // empty: inverse norm 0, codes 0
    uint8_t* record = records_.data() + s * stride_;
    std::memcpy(record, &inverse[i], 4);
    const Term* term = terms.data() + i * slots;
    for (int32_t j = 0; j < n_terms[i]; ++j) {
      const auto atom = static_cast<uint16_t>(term[j].atom);
      std::memcpy(record + 4 + 2 * j, &atom, 2);
      if (wide_codes_) {
        const auto code = static_cast<uint16_t>(term[j].code);
        std::memcpy(record + 4 + 2 * T + 2 * j, &code, 2);
      } else {
        record[4 + 2 * T + j] = static_cast<uint8_t>(term[j].code);
      }
    }
  }
}

std::vector<std::size_t> SearchIndex::list_sizes() const {
  std::vector<std::size_t> out(n_lists_ + 1);
  for (std::size_t l = 0; l <= n_lists_; ++l) out[l] = list_offsets_[l + 1] - list_offsets_[l];
  return out;
}

std::size_t SearchIndex::memory_bytes() const {
  return records_.size() + 4 * positions_.size() + sizeof(std::size_t) * list_offsets_.size() + list_signs_.size() +
         4 * centroids_.size() + 4 * weights_.size() + sizeof(*this);
}

namespace {

template <class T>
inline T load(const uint8_t* p) {
  T value;
  std::memcpy(&value, p, sizeof(T));
  return value;
}

}  // namespace

template <class Code>
void SearchIndex::tile_weights(std::size_t begin, std::size_t end, float* out) const {
  const std::size_t T = terms_;
  for (std::size_t i = begin; i < end; ++i) {
    const uint8_t* record = records_.data() + i * stride_;
    const float inverse = load<float>(record);
    const uint8_t* codes = record + 4 + 2 * T;
    for (std::size_t j = 0; j < T; ++j)
      out[(i - begin) * T + j] = weights_[load<Code>(codes + j * sizeof(Code))] * inverse;
  }
}

void SearchIndex::weights_of(std::size_t begin, std::size_t end, float* out) const {
  if (wide_codes_) {
    tile_weights<uint16_t>(begin, end, out);
  } else {
    tile_weights<uint8_t>(begin, end, out);
  }
}

namespace {

// Score items [begin, end): s = sum_j w_j t[a_j], w_j the term's weight times the item's
// inverse norm, either given (`weights`, row i - begin, from weights_of) or computed here by
// the same float product (`weights` null), so both paths give the same bits. T terms
// (compile-time when known, so the loop unrolls); an empty item's zero weights give +0.
template <int kTerms, class Code>
void scan_rows(const float* table, const float* weights, const float* weight_table, const uint8_t* records,
               std::size_t stride, std::size_t terms, const uint32_t* positions, std::size_t begin,
               std::size_t end, std::size_t k, std::vector<Candidate>& heap) {
  const std::size_t T = kTerms > 0 ? static_cast<std::size_t>(kTerms) : terms;
  float worst = heap.size() < k ? -std::numeric_limits<float>::infinity() : heap.front().first;
  for (std::size_t i = begin; i < end; ++i) {
    const uint8_t* record = records + i * stride;
    const uint8_t* atoms = record + 4;
    float s = 0.0f;
    if (weights) {
      const float* w = weights + (i - begin) * T;
      for (std::size_t j = 0; j < T; ++j) s += w[j] * table[load<uint16_t>(atoms + 2 * j)];
    } else {
      const float inverse = load<float>(record);
      const uint8_t* codes = atoms + 2 * T;
      for (std::size_t j = 0; j < T; ++j) {
        const float w = weight_table[load<Code>(codes + j * sizeof(Code))] * inverse;
        s += w * table[load<uint16_t>(atoms + 2 * j)];
      }
    }
    if (s >= worst) {
      offer(heap, k, {s, positions[i]});
      if (heap.size() == k) worst = heap.front().first;
    }
  }
}

template <class Code>
void scan_terms(std::size_t terms, const float* table, const float* weights, const float* weight_table,
                const uint8_t* records, std::size_t stride, const uint32_t* positions, std::size_t begin,
                std::size_t end, std::size_t k, std::vector<Candidate>& heap) {
  switch (terms) {
#define SMIC_SCAN_CASE(T)                                                                          \
  case T:                                                                                          \
    return scan_rows<T, Code>(table, weights, weight_table, records, stride, T, positions, begin, \
                              end, k, heap);
    SMIC_SCAN_CASE(1) SMIC_SCAN_CASE(2) SMIC_SCAN_CASE(3) SMIC_SCAN_CASE(4) SMIC_SCAN_CASE(5)
    SMIC_SCAN_CASE(6) SMIC_SCAN_CASE(8)
#undef SMIC_SCAN_CASE
    default:
      return scan_rows<0, Code>(table, weights, weight_table, records, stride, terms, positions, begin,
                                end, k, heap);
  }
}

}  // namespace

void SearchIndex::scan(const float* table, const float* weights, std::size_t begin,
                       std::size_t end, std::size_t k, std::vector<Candidate>& heap) const {
  if (wide_codes_) {
    scan_terms<uint16_t>(terms_, table, weights, weights_.data(), records_.data(), stride_,
                         positions_.data(), begin, end, k, heap);
  } else {
    scan_terms<uint8_t>(terms_, table, weights, weights_.data(), records_.data(), stride_,
                        positions_.data(), begin, end, k, heap);
  }
}

std::vector<float> SearchIndex::atom_products(const float* queries, std::size_t n,
                                              int n_threads) const {
  std::vector<float> table(n * n_atoms_);
  const std::vector<float>& atoms = collection_->dictionary().atoms();
  gemm_nt(queries, n, dim_, atoms.data(), n_atoms_, dim_, dim_, table.data(), n_atoms_, n_threads);
  return table;
}

std::vector<float> SearchIndex::scores(const float* query) const {
  std::vector<float> unit(dim_);
  const std::vector<double> norm = CodingDictionary::normalize(query, 1, dim_, unit.data());
  require(norm[0] > 0, "the query is zero");
  const std::vector<float> table = atom_products(unit.data(), 1, 1);
  std::vector<float> out(n_, 0.0f);
  std::vector<Candidate> heap;
  std::vector<float> row_weights(terms_);
  for (std::size_t i = 0; i < n_; ++i) {
    heap.clear();  // a one-slot heap gives the item's score alone
    weights_of(i, i + 1, row_weights.data());
    scan(table.data(), row_weights.data(), i, i + 1, 1, heap);
    out[positions_[i]] = heap.front().first;
  }
  return out;
}

std::vector<std::vector<std::size_t>> SearchIndex::probe_lists(const float* unit_queries,
                                                               const float* table, std::size_t n,
                                                               std::size_t nprobe, int n_threads) const {
  // Each list's score for each query: its centroid's cosine (kKMeans), or the product with its
  // lead atom, with the sign its items give it (kLeadAtom). The nprobe best, ties to the lower
  // list, and always the list of empty items.
  const std::size_t L = n_lists_;
  std::vector<float> coarse;
  if (partition_ == Partition::kKMeans)
    coarse = [&] {
      std::vector<float> c(n * L);
      gemm_nt(unit_queries, n, dim_, centroids_.data(), L, dim_, dim_, c.data(), L, n_threads);
      return c;
    }();
  std::vector<std::vector<std::size_t>> probed(n);
  detail::parallel_for(n, n_threads, [&](std::size_t q) {
    std::vector<Candidate> rank;
    rank.reserve(L);
    if (partition_ == Partition::kKMeans) {
      const float* c = coarse.data() + q * L;
      for (std::size_t l = 0; l < L; ++l)
        if (list_offsets_[l + 1] > list_offsets_[l]) rank.emplace_back(c[l], static_cast<uint32_t>(l));
    } else {
      const float* t = table + q * n_atoms_;
      for (std::size_t l = 0; l < L; ++l) {
        if (!list_signs_[l]) continue;  // no items
        float s = -std::numeric_limits<float>::infinity();
        if (list_signs_[l] & kPositive) s = t[l];
        if (list_signs_[l] & kNegative) s = std::max(s, -t[l]);
        rank.emplace_back(s, static_cast<uint32_t>(l));
      }
    }
    const std::size_t m = std::min(nprobe, rank.size());
    std::partial_sort(rank.begin(), rank.begin() + static_cast<std::ptrdiff_t>(m), rank.end(), better);
    auto& lists = probed[q];
    for (std::size_t j = 0; j < m; ++j) lists.push_back(rank[j].second);
    lists.push_back(L);
  });
  return probed;
}

SearchResult SearchIndex::search(const float* queries, std::size_t n,
                                 const SearchOptions& options) const {
  require(options.k >= 1, "k must be >= 1");
  if (options.rerank)
    require(collection_->residual_step().has_value(),
            collection_->name() + " has no refinement layer (RESD): its scores are already those "
                                  "of the decoded embeddings, there is nothing to rerank");
  std::vector<float> unit(n * dim_);
  const std::vector<double> norms = CodingDictionary::normalize(queries, n, dim_, unit.data());
  for (std::size_t q = 0; q < n; ++q)
    require(norms[q] > 0, "query " + std::to_string(q) + " is zero (a cosine needs a direction)");
  const int threads = detail::resolve_threads(options.n_threads);
  const std::vector<float> table = atom_products(unit.data(), n, threads);
  const std::size_t K = n_atoms_;
  const std::size_t L = n_lists_;
  // Candidates kept per query: k, or the rerank count (at most every item) when larger.
  const std::size_t wanted = std::max(options.k, std::min(options.rerank, n_));
  const bool probe = options.nprobe > 0 && options.nprobe < L;
  const std::vector<std::vector<std::size_t>> probed =
      probe ? probe_lists(unit.data(), table.data(), n, options.nprobe, threads)
            : std::vector<std::vector<std::size_t>>{};

  std::size_t parts = 1;
  std::vector<std::vector<Candidate>> heaps;
  if (probe) {
    // Query-major: each query scans its few lists with its row of the atom table hot in cache,
    // into one heap of its own (no per-part heaps to allocate and merge).
    heaps.resize(n);
    detail::parallel_for(n, threads, [&](std::size_t q) {
      auto& heap = heaps[q];
      heap.reserve(wanted);
      for (std::size_t l : probed[q])
        scan(table.data() + q * K, nullptr, list_offsets_[l], list_offsets_[l + 1], wanted, heap);
    });
  } else {
    // Blocks of queries x parts of the items, so that one query still uses every thread.
    const std::size_t blocks = (n + kQueryBlock - 1) / kQueryBlock;
    parts = std::max<std::size_t>(
        1, std::min<std::size_t>(blocks >= static_cast<std::size_t>(threads) ? 1 : (threads + blocks - 1) / blocks,
                                 std::max<std::size_t>(1, n_ / kMinPartItems)));
    heaps.resize(n * parts);
    detail::parallel_for(blocks * parts, threads, [&](std::size_t u) {
      const std::size_t block = u / parts, part = u % parts;
      const std::size_t q0 = block * kQueryBlock, q1 = std::min(n, q0 + kQueryBlock);
      const std::size_t begin = n_ * part / parts, end = n_ * (part + 1) / parts;
      std::vector<float> weights(kTileItems * terms_);
      for (std::size_t tile = begin; tile < end; tile += kTileItems) {
        const std::size_t tile_end = std::min(end, tile + kTileItems);
        weights_of(tile, tile_end, weights.data());  // shared by the block's queries
        for (std::size_t q = q0; q < q1; ++q)
          scan(table.data() + q * K, weights.data(), tile, tile_end, wanted, heaps[q * parts + part]);
      }
    });
  }

  SearchResult result;
  result.n_queries = n;
  result.k = wanted;
  result.positions.assign(n * wanted, -1);
  result.scores.assign(n * wanted, -std::numeric_limits<float>::infinity());
  for (std::size_t q = 0; q < n; ++q) {
    std::vector<Candidate> all;
    for (std::size_t p = 0; p < parts; ++p)
      all.insert(all.end(), heaps[q * parts + p].begin(), heaps[q * parts + p].end());
    const std::size_t m = std::min(wanted, all.size());
    std::partial_sort(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(m), all.end(), better);
    for (std::size_t j = 0; j < m; ++j) {
      result.positions[q * wanted + j] = all[j].second;
      result.scores[q * wanted + j] = all[j].first;
    }
  }
  if (options.rerank) rerank(unit.data(), n, result, threads);
  if (result.k != options.k) {  // keep the best k columns
    SearchResult kept;
    kept.n_queries = n;
    kept.k = options.k;
    for (std::size_t q = 0; q < n; ++q) {
      kept.positions.insert(kept.positions.end(), result.positions.begin() + q * result.k,
                            result.positions.begin() + q * result.k + options.k);
      kept.scores.insert(kept.scores.end(), result.scores.begin() + q * result.k,
                         result.scores.begin() + q * result.k + options.k);
    }
    result = std::move(kept);
  }
  return result;
}

void SearchIndex::rerank(const float* unit_queries, std::size_t n, SearchResult& result,
                         int n_threads) const {
  // The refined embeddings of every candidate, decoded once each, a chunk at a time (reading
  // one item of a refinement chunk decodes the rows before it in that chunk).
  std::vector<uint32_t> wanted;
  for (int64_t p : result.positions)
    if (p >= 0) wanted.push_back(static_cast<uint32_t>(p));
  std::sort(wanted.begin(), wanted.end());
  wanted.erase(std::unique(wanted.begin(), wanted.end()), wanted.end());
  const std::vector<std::size_t> bounds = collection_->chunk_bounds();
  std::vector<std::pair<std::size_t, std::size_t>> groups;  // [first, last) into wanted
  for (std::size_t j = 0; j < wanted.size();) {
    const std::size_t chunk = static_cast<std::size_t>(
        std::upper_bound(bounds.begin(), bounds.end(), wanted[j]) - bounds.begin() - 1);
    std::size_t e = j + 1;
    while (e < wanted.size() && wanted[e] < bounds[chunk + 1]) ++e;
    groups.emplace_back(j, e);
    j = e;
  }
  std::vector<float> refined(wanted.size() * dim_);
  detail::parallel_for(groups.size(), n_threads, [&](std::size_t g) {
    const auto [first, last] = groups[g];
    const std::size_t lo = wanted[first], hi = wanted[last - 1] + 1;
    std::vector<float> rows((hi - lo) * dim_);
    collection_->decode(lo, hi, rows.data());
    for (std::size_t j = first; j < last; ++j)
      std::copy_n(rows.data() + (wanted[j] - lo) * dim_, dim_, refined.data() + j * dim_);
  });
  const std::size_t width = result.k;
  detail::parallel_for(n, n_threads, [&](std::size_t q) {
    std::vector<Candidate> rescored;
    const float* query = unit_queries + q * dim_;
    for (std::size_t j = 0; j < width; ++j) {
      const int64_t p = result.positions[q * width + j];
      if (p < 0) continue;
      const std::size_t row = static_cast<std::size_t>(
          std::lower_bound(wanted.begin(), wanted.end(), static_cast<uint32_t>(p)) - wanted.begin());
      const float* x = refined.data() + row * dim_;
      double dot = 0;
      for (std::size_t i = 0; i < dim_; ++i) dot += static_cast<double>(x[i]) * query[i];
      rescored.emplace_back(static_cast<float>(dot), static_cast<uint32_t>(p));
    }
    std::sort(rescored.begin(), rescored.end(), better);
    for (std::size_t j = 0; j < width; ++j) {
      result.positions[q * width + j] = j < rescored.size() ? static_cast<int64_t>(rescored[j].second) : -1;
      result.scores[q * width + j] =
          j < rescored.size() ? rescored[j].first : -std::numeric_limits<float>::infinity();
    }
  });
}

}  // namespace smic
