// Transform-coded refinement layer (XFRM in dictionaries, RESD payloads of format version 4).
#include "smic/transform.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "coding/residual_target.hpp"
#include "format/bytes.hpp"
#include "kernels/cpu.hpp"
#include "kernels/transform_kernels.hpp"
#include "smic/coding_dictionary.hpp"
#include "smic/error.hpp"

namespace smic {
using detail::use_avx2_kernels;
#if defined(SMIC_HAVE_AVX2_KERNEL)
using detail::transform_axpy_avx2;
using detail::transform_dots2_avx2;
using detail::transform_dots_avx2;
#endif
namespace {

constexpr std::size_t kSymbols = kTransformEscape + 1;
constexpr int32_t kMaxLevel = int32_t{1} << 24;
constexpr unsigned kLengthBits = 5;  // escape: the bit length of value + 1, 0..24, flat

uint32_t neighbour(int32_t previous) {
  const uint32_t a = static_cast<uint32_t>(previous < 0 ? -static_cast<int64_t>(previous) : previous);
  return a >= 2 ? 2u : a;
}

// Flat bits: `bits` (<= 16) low bits of v.
void put_bits(RangeEncoder& enc, uint32_t v, unsigned bits) {
  enc.encode_pow2_unchecked(v & ((1u << bits) - 1), 1, bits);
}
uint32_t get_bit(RangeDecoder& dec) {  // get_bits(dec, 1) without a division
  const uint32_t v = dec.decode_bit_target_unchecked();
  dec.consume_unchecked(v, 1);
  return v;
}
uint32_t get_bits(RangeDecoder& dec, unsigned bits) {
  const uint32_t v = dec.decode_target_pow2_unchecked(bits);
  dec.consume_unchecked(v, 1);
  return v;
}

// floor(log2 v) for v >= 1: v is in [2^length, 2^(length + 1)).
unsigned bit_length(uint32_t v) {
  unsigned length = 0;
  while ((v >> length) > 1) ++length;
  return length;
}

// Flat bits an escaped magnitude a >= kTransformEscape adds: its length, then its low bits.
double escape_bits(uint32_t a) { return kLengthBits + bit_length(a - kTransformEscape + 1); }

// Elias-gamma style: the bit length L of v >= 1 (flat, kLengthBits), then its L - 1 low bits.
void put_escape(RangeEncoder& enc, uint32_t v) {
  const unsigned length = bit_length(v);
  put_bits(enc, length, kLengthBits);
  for (unsigned done = 0; done < length; done += 16) {
    const unsigned bits = std::min(16u, length - done);
    put_bits(enc, v >> done, bits);
  }
}
uint32_t get_escape(RangeDecoder& dec) {
  const unsigned length = get_bits(dec, kLengthBits);
  if (length > 24) throw DecodeError("corrupt escape in transform levels");
  uint32_t v = 0;
  for (unsigned done = 0; done < length; done += 16) {
    const unsigned bits = std::min(16u, length - done);
    v |= get_bits(dec, bits) << done;
  }
  return v | (uint32_t{1} << length);
}

}  // namespace

TransformModel::TransformModel(std::size_t dim, std::size_t rank, std::size_t n_classes,
                               std::vector<uint16_t> atom_class, const float* mean,
                               const float* basis, std::vector<int16_t> scale, double rounding,
                               double bias, std::vector<uint64_t> counts,
                               std::vector<uint64_t> gain_counts, double rdo,
                               TransformQuantiser quantiser)
    : dim_(dim), rank_(rank), n_classes_(n_classes), atom_class_(std::move(atom_class)),
      scale_(std::move(scale)), rounding_(rounding), bias_(bias), counts_(std::move(counts)),
      gain_counts_(std::move(gain_counts)), rdo_(rdo), quantiser_(quantiser) {
  require(dim >= 2 && dim <= 16384, "transform: dim must be in [2, 16384]");
  require(rank >= 1 && rank < dim, "transform: rank must be in [1, dim - 1]");
  require(n_classes >= 1 && n_classes <= kTransformMaxClasses,
          "transform: n_classes must be in [1, " + std::to_string(kTransformMaxClasses) + "]");
  require(n_classes * rank * dim <= (std::size_t{1} << 28), "transform: axes too large");
  require(!atom_class_.empty() && atom_class_.size() <= 65536, "transform: atom_class must have 1 to 65536 entries");
  for (uint16_t c : atom_class_) require(c < n_classes, "transform: atom_class beyond n_classes");
  require(scale_.size() == n_classes * rank, "transform: scale must hold n_classes x rank values");
  for (int16_t s : scale_) require(s >= -256 && s <= 256, "transform: scale out of [-256, 256]");
  require(std::isfinite(rounding) && rounding >= 0 && rounding < 1, "transform: rounding must be in [0, 1)");
  require(std::isfinite(bias) && bias >= 0 && bias < 1, "transform: bias must be in [0, 1)");
  require(std::isfinite(rdo) && rdo >= 0 && rdo <= 16, "transform: rdo must be in [0, 16]");
  require(quantiser == TransformQuantiser::kGreedy || quantiser == TransformQuantiser::kTrellis ||
              quantiser == TransformQuantiser::kDependent,
          "transform: unknown quantiser");
  const std::size_t n_tables = n_contexts(quantiser);
  if (counts_.empty()) counts_.assign(n_tables * kSymbols, 0);
  require(counts_.size() == n_tables * kSymbols, "transform: counts must hold " +
              std::to_string(n_tables * kSymbols) + " values");
  if (gain_counts_.empty()) gain_counts_.assign(kTransformGains, 0);
  require(gain_counts_.size() == kTransformGains,
          "transform: gain_counts must hold " + std::to_string(kTransformGains) + " values");
  mean_.assign(mean, mean + n_classes * dim);
  for (float v : mean_) require(std::isfinite(v) && std::fabs(v) <= 2, "transform: mean must be finite, |mean| <= 2");
  const std::size_t n_basis = n_classes * rank * dim;
  basis_half_.resize(n_basis);
  basis_.resize(n_basis);
  for (std::size_t i = 0; i < n_basis; ++i) {
    require(std::isfinite(basis[i]) && std::fabs(basis[i]) <= 1.0f, "transform: axes must be finite, |value| <= 1");
    basis_half_[i] = detail::float_to_half(basis[i]);
    basis_[i] = detail::half_to_float(basis_half_[i]);
  }
  expected_energy_.assign(n_classes, 0.0);
  for (std::size_t c = 0; c < n_classes; ++c)
    for (std::size_t j = 0; j < rank; ++j)
      expected_energy_[c] += std::exp2(scale_[c * rank + j] / 2.0);  // sigma^2 = 2^(scale / 2)
  {
    const std::vector<uint32_t> freqs = frequencies_from_counts(gain_counts_.data(), kTransformGains);
    gain_model_ = std::make_unique<StaticModel>(freqs.data(), freqs.size());
    for (uint32_t f : freqs)
      gain_bits_.push_back(-std::log2(static_cast<double>(f) / gain_model_->total()));
  }
  models_.reserve(n_tables);
  model_bits_.reserve(n_tables * kSymbols);
  for (std::size_t c = 0; c < n_tables; ++c) {
    const std::vector<uint32_t> freqs = frequencies_from_counts(counts_.data() + c * kSymbols, kSymbols);
    models_.emplace_back(freqs.data(), freqs.size());
    const double total = models_.back().total();
    for (std::size_t s = 0; s < kSymbols; ++s)
      model_bits_.push_back(-std::log2(static_cast<double>(freqs[s]) / total));
  }
}

std::shared_ptr<const TransformModel> TransformModel::parse(const uint8_t* data, std::size_t size,
                                                            const std::string& name,
                                                            TransformQuantiser quantiser) {
  detail::Reader reader(data, size, name + ": transform section");
  const std::size_t dim = reader.u32(), rank = reader.u32(), n_classes = reader.u32(),
                    n_atoms = reader.u32();
  const double rounding = reader.f64(), bias = reader.f64(), rdo = reader.f64();
  if (dim < 2 || dim > 16384 || rank < 1 || rank >= dim || n_classes < 1 ||
      n_classes > kTransformMaxClasses || n_atoms < 1 || n_atoms > 65536)
    throw FormatError(name + ": implausible transform section (dim " + std::to_string(dim) +
                      ", rank " + std::to_string(rank) + ", classes " + std::to_string(n_classes) + ")");
  const std::size_t n_mean = n_classes * dim, n_basis = n_classes * rank * dim,
                    n_scale = n_classes * rank;
  reader.need(2 * n_atoms + 4 * n_mean + 2 * n_basis + 2 * n_scale);
  std::vector<uint16_t> atom_class(n_atoms);
  for (auto& c : atom_class) c = detail::get_u16(reader.take(2));
  std::vector<float> mean(n_mean), basis(n_basis);
  for (auto& v : mean) {
    const uint32_t bits = detail::get_u32(reader.take(4));
    std::memcpy(&v, &bits, 4);
  }
  for (auto& v : basis) v = detail::half_to_float(detail::get_u16(reader.take(2)));
  std::vector<int16_t> scale(n_scale);
  for (auto& s : scale) s = static_cast<int16_t>(detail::get_u16(reader.take(2)));
  std::vector<uint64_t> counts = reader.varints(n_contexts(quantiser) * kSymbols);
  std::vector<uint64_t> gain_counts = reader.varints(kTransformGains);
  if (reader.left() != 0) throw FormatError(name + ": trailing bytes in the transform section");
  try {
    return std::make_shared<const TransformModel>(dim, rank, n_classes, std::move(atom_class),
                                                  mean.data(), basis.data(), std::move(scale),
                                                  rounding, bias, std::move(counts),
                                                  std::move(gain_counts), rdo, quantiser);
  } catch (const InvalidArgument& e) {
    throw FormatError(name + ": invalid transform section (" + e.what() + ")");
  }
}

std::vector<uint8_t> TransformModel::to_bytes() const {
  std::vector<uint8_t> out;
  for (std::size_t v : {dim_, rank_, n_classes_, atom_class_.size()})
    detail::put_u32(out, static_cast<uint32_t>(v));
  detail::put_f64(out, rounding_);
  detail::put_f64(out, bias_);
  detail::put_f64(out, rdo_);
  for (uint16_t c : atom_class_) detail::put_u16(out, c);
  for (float v : mean_) {
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    detail::put_u32(out, bits);
  }
  for (uint16_t h : basis_half_) detail::put_u16(out, h);
  for (int16_t s : scale_) detail::put_u16(out, static_cast<uint16_t>(s));
  for (uint64_t c : counts_) detail::put_varint(out, c);
  for (uint64_t c : gain_counts_) detail::put_varint(out, c);
  return out;
}

TransformQuantiser TransformModel::parse_quantiser(const uint8_t* data, std::size_t size,
                                                  const std::string& name) {
  if (size != 1) throw FormatError(name + ": the quantiser section must hold 1 byte, not " + std::to_string(size));
  if (data[0] > static_cast<uint8_t>(TransformQuantiser::kDependent))
    throw FormatError(name + ": unknown transform quantiser " + std::to_string(data[0]) +
                      " (written by a newer smic-fast?)");
  return static_cast<TransformQuantiser>(data[0]);
}

std::vector<uint8_t> TransformModel::quantiser_bytes() const {
  if (quantiser_ == TransformQuantiser::kGreedy) return {};
  return {static_cast<uint8_t>(quantiser_)};
}

std::vector<uint32_t> TransformModel::classes(const ItemCodes& codes) const {
  std::vector<uint32_t> out(codes.n, 0);
  const bool paper = codes.first.empty() || codes.counts.empty();
  for (std::size_t i = 0; i < codes.n; ++i) {
    int64_t atom = -1;
    if (!paper) {
      if (codes.counts[i] >= 1) atom = codes.first[i] / 2;
    } else if (codes.width >= 1) {
      atom = codes.rest_index[i * codes.width];
    }
    if (atom >= 0 && static_cast<std::size_t>(atom) < atom_class_.size()) out[i] = atom_class_[atom];
  }
  return out;
}

int32_t TransformModel::step_index(double step) {
  require(std::isfinite(step) && step > 0, "transform: step must be positive");
  return static_cast<int32_t>(std::lround(-4.0 * std::log2(step)));
}

namespace {

// Up to kBlock items of one class at a time: each axis is read once for all of them (the axes,
// rank x dim floats per class, 588 KB at d = 384, do not stay in cache from one item to the
// next, and reading them was most of the layer's time with blocks of 8). Every item's
// arithmetic is the same whatever its block: the same values on every path.
constexpr std::size_t kBlock = 32;

// Blocks of items [i, i + count) in order, each of one class, at most kBlock long.
template <class Visit>
void class_blocks(const uint32_t* classes, std::size_t n, std::size_t n_classes, Visit&& visit) {
  std::vector<std::vector<std::size_t>> pending(n_classes);
  for (std::size_t i = 0; i < n; ++i) {
    require(classes[i] < n_classes, "transform: class out of range");
    auto& p = pending[classes[i]];
    p.push_back(i);
    if (p.size() == kBlock) {
      visit(classes[i], p);
      p.clear();
    }
  }
  for (std::size_t c = 0; c < n_classes; ++c)
    if (!pending[c].empty()) visit(static_cast<uint32_t>(c), pending[c]);
}

// The dot products of one axis with n rows, or row += y * axis: the AVX2 kernel where the CPU
// has it, else the portable loops (detail::lane_dot's order: the same floats either way).
void dots(const float* axis, const float* rows, std::size_t n, std::size_t dim, float* out) {
#if defined(SMIC_HAVE_AVX2_KERNEL)
  if (use_avx2_kernels()) return transform_dots_avx2(axis, rows, n, dim, out);
#endif
  for (std::size_t u = 0; u < n; ++u) out[u] = detail::lane_dot(axis, rows + u * dim, dim);
}

void dots2(const float* axis0, const float* axis1, const float* rows, std::size_t n, std::size_t dim,
           float* out0, float* out1) {
#if defined(SMIC_HAVE_AVX2_KERNEL)
  if (use_avx2_kernels()) return transform_dots2_avx2(axis0, axis1, rows, n, dim, out0, out1);
#endif
  for (std::size_t u = 0; u < n; ++u) {
    out0[u] = detail::lane_dot(axis0, rows + u * dim, dim);
    out1[u] = detail::lane_dot(axis1, rows + u * dim, dim);
  }
}

void axpy(const float* y, const float* const* axes, std::size_t count, float* row, std::size_t dim) {
#if defined(SMIC_HAVE_AVX2_KERNEL)
  if (use_avx2_kernels()) return transform_axpy_avx2(y, axes, count, row, dim);
#endif
  for (std::size_t a = 0; a < count; ++a)
    for (std::size_t k = 0; k < dim; ++k) row[k] += y[a] * axes[a][k];
}

}  // namespace

void TransformModel::levels(const float* unit, const float* decoded, const uint32_t* classes,
                            std::size_t n, double step, int32_t* out) const {
  const double inverse = 1.0 / step;
  const int32_t t = step_index(step);
  const double lambda = rdo_ * step * step;  // price of one bit in squared error
  std::vector<float> r(kBlock * dim_), ys(kBlock * rank_);
  std::vector<uint32_t> back(quantiser_ == TransformQuantiser::kGreedy ? 0 : 4 * rank_);
  std::vector<int32_t> other(quantiser_ == TransformQuantiser::kTrellis ? rank_ : 0);
  class_blocks(classes, n, n_classes_, [&](uint32_t c, const std::vector<std::size_t>& items) {
    const float* m = mean_.data() + c * dim_;
    const std::size_t b = items.size();
    for (std::size_t u = 0; u < b; ++u) {
      float* row = r.data() + u * dim_;
      detail::residual_target(unit + items[u] * dim_, decoded + items[u] * dim_, dim_, row);
      for (std::size_t k = 0; k < dim_; ++k) row[k] -= m[k];
    }
    std::size_t j = 0;
    for (; j + 2 <= rank_; j += 2) {  // two axes at a time (see transform_dots2_avx2)
      const float* axis = basis_.data() + (c * rank_ + j) * dim_;
      float first[kBlock], second[kBlock];
      dots2(axis, axis + dim_, r.data(), b, dim_, first, second);
      for (std::size_t u = 0; u < b; ++u) {
        ys[u * rank_ + j] = first[u];
        ys[u * rank_ + j + 1] = second[u];
      }
    }
    if (j < rank_) {
      float block[kBlock];
      dots(basis_.data() + (c * rank_ + j) * dim_, r.data(), b, dim_, block);
      for (std::size_t u = 0; u < b; ++u) ys[u * rank_ + j] = block[u];
    }
    for (std::size_t u = 0; u < b; ++u)
      quantise(ys.data() + u * rank_, c, t, inverse, lambda, step, out + items[u] * dim_, back.data(),
               other.data());
  });
}

double TransformModel::trellis(const float* ys, uint32_t c, int32_t gain, int32_t t, double inverse,
                               double lambda, double step, int32_t* row, uint32_t* back) const {
  // Viterbi over the coding order's only state, the neighbour class of the previous level
  // (0, 1, 2+): each coefficient's candidates are its dead-zone level, one less and 0, priced
  // with squared error + lambda * (bits under the context the path gives it). Unlike the
  // greedy choice, a level is also priced for the context it sets for the next coefficient.
  constexpr double kInf = std::numeric_limits<double>::infinity();
  const int32_t shift = t + gain;
  double cost[3] = {0.0, kInf, kInf};
  // back[j * 3 + s]: (previous state << 28) | level reaching state s after coefficient j
  // (levels here are below 2^24: kMaxLevel)
  const double step2 = step * step;
  for (std::size_t j = 0; j < rank_; ++j) {
    const double magnitude = std::fabs(static_cast<double>(ys[j])) * inverse;
    if (skipped(c, j, shift)) {
      int best = 0;
      for (int s = 1; s < 3; ++s)
        if (cost[s] < cost[best]) best = s;
      const double e = magnitude * magnitude * step2;
      cost[0] = cost[best] + e;
      cost[1] = cost[2] = kInf;
      back[j * 3] = (static_cast<uint32_t>(best) << 28);
      continue;
    }
    const int32_t q = static_cast<int32_t>(std::min<double>(magnitude + rounding_, kMaxLevel));
    int32_t candidates[3] = {q, q - 1, 0};
    int n_candidates = q >= 2 ? 3 : (q == 1 ? 2 : 1);
    if (q >= static_cast<int32_t>(kTransformEscape)) n_candidates = 1;
    double next[3] = {kInf, kInf, kInf};
    uint32_t from[3] = {0, 0, 0};
    const uint32_t bucket = context_bucket(c, j, shift) * kTransformNeighbours;
    for (int k = 0; k < n_candidates; ++k) {
      const int32_t a = candidates[k];
      const double rec = a == 0 ? 0.0 : a - bias_;
      const double e = (magnitude - rec) * (magnitude - rec) * step2;
      double extra = a ? 1.0 : 0.0;
      if (a >= static_cast<int32_t>(kTransformEscape)) extra += escape_bits(static_cast<uint32_t>(a));
      const std::size_t symbol = static_cast<std::size_t>(std::min<int32_t>(a, kTransformEscape));
      const int ns = a >= 2 ? 2 : a;
      for (int s = 0; s < 3; ++s) {
        if (cost[s] == kInf) continue;
        const double total = cost[s] + e + lambda * (table_bits(bucket + s)[symbol] + extra);
        if (total < next[ns]) {
          next[ns] = total;
          from[ns] = (static_cast<uint32_t>(s) << 28) | static_cast<uint32_t>(a);
        }
      }
    }
    for (int s = 0; s < 3; ++s) {
      cost[s] = next[s];
      back[j * 3 + s] = from[s];
    }
  }
  int state = 0;
  for (int s = 1; s < 3; ++s)
    if (cost[s] < cost[state]) state = s;
  const double best = cost[state];
  for (std::size_t j = rank_; j-- > 0;) {
    const uint32_t b = back[j * 3 + static_cast<std::size_t>(state)];
    const int32_t a = static_cast<int32_t>(b & ((1u << 28) - 1));
    row[j] = ys[j] < 0 ? -a : a;
    state = static_cast<int>(b >> 28);
  }
  return best + lambda * gain_bits_[static_cast<std::size_t>(gain + kTransformGainRange)];
}

void TransformModel::dependent_levels(const float* ys, uint32_t c, int32_t gain, int32_t t, double lambda,
                                      double step, int32_t* row, uint32_t* back) const {
  // Viterbi over the 4 states of dependent quantisation. A state's survivor carries the
  // magnitude class of its last coded level, which places the next context (as in VVC, the
  // context follows the survivor rather than widening the state). In the quantiser of each
  // state a coefficient tries the two reconstructions around |y| (one of even level, one of
  // odd) and 0 (even), so from each state the best even and the best odd level lead to its two
  // successors; each successor keeps the cheaper of its two arrivals. Selections index pairs
  // by a comparison's outcome instead of branching on it (the outcomes are data and
  // mispredict; the baseline x86-64 build has no select for doubles), and ties keep the
  // first: a fixed order, so every build picks the same levels.
  constexpr double kInf = std::numeric_limits<double>::infinity();
  const int32_t shift = t + gain;
  const double to_half = 2.0 / step, half2 = 0.25 * step * step;
  double cost[4] = {0.0, kInf, kInf, kInf};
  uint32_t neighbours[4] = {0, 0, 0, 0};  // magnitude class (0, 1, 2+) of each survivor's last level
  for (std::size_t j = 0; j < rank_; ++j) {
    if (skipped(c, j, shift)) continue;  // level 0, not coded: no state change
    const double m = std::min<double>(std::fabs(static_cast<double>(ys[j])) * to_half, 2.0 * (kMaxLevel - 2));
    const uint32_t bucket = context_bucket(c, j, shift);
    // per state: the best even arrival (level, cost) and the odd one
    double even_cost[4], odd_cost[4];
    uint32_t even_level[4], odd_level[4];
    for (unsigned quantiser = 0; quantiser < 2; ++quantiser) {
      // Q0 reconstructs 2k, Q1 2k - 1 (k >= 1): k0 and k0 + 1 bracket m
      const auto k0 = static_cast<uint32_t>(quantiser == 0 ? m * 0.5 : (m + 1.0) * 0.5);
      const uint32_t even = (k0 & 1) ? k0 + 1 : k0, odd = (k0 & 1) ? k0 : k0 + 1;  // even may be 0
      const auto price = [&](uint32_t a) {  // squared error + lambda * the context-free bits
        if (a == 0) return m * m * half2;
        const double e = m - (2.0 * a - quantiser - bias_);
        const double flat = 1.0 + (a >= kTransformEscape ? escape_bits(a) : 0.0);
        return e * e * half2 + lambda * flat;
      };
      const double price_zero = m * m * half2, price_even = price(even), price_odd = price(odd);
      const uint32_t symbol_even = std::min(even, kTransformEscape), symbol_odd = std::min(odd, kTransformEscape);
      const double* rows = table_bits((bucket * 2 + quantiser) * kTransformNeighbours);
      for (unsigned s = 2 * quantiser; s < 2 * quantiser + 2; ++s) {
        const double* bits = rows + neighbours[s] * kSymbols;
        const double zero = cost[s] + price_zero + lambda * bits[0];
        const double nonzero = cost[s] + price_even + lambda * bits[symbol_even];  // == zero's when even is 0
        const double pair[2] = {zero, nonzero};
        const unsigned take_nonzero = nonzero < zero;  // an index, not a branch (see above)
        even_cost[s] = pair[take_nonzero];
        even_level[s] = even & (0u - take_nonzero);
        odd_cost[s] = cost[s] + price_odd + lambda * bits[symbol_odd];
        odd_level[s] = odd;
      }
    }
    // successors: 0 <- (0, even) | (1, odd); 2 <- (0, odd) | (1, even);
    //             1 <- (2, even) | (3, odd); 3 <- (2, odd) | (3, even)
    const auto arrive = [&](unsigned target, unsigned first, double first_cost, uint32_t first_level,
                            unsigned second, double second_cost, uint32_t second_level) {
      const double costs[2] = {first_cost, second_cost};
      const uint32_t levels[2] = {first_level, second_level};
      const unsigned take_second = second_cost < first_cost;
      const uint32_t level = levels[take_second];
      cost[target] = costs[take_second];
      neighbours[target] = std::min(level, 2u);
      back[j * 4 + target] = ((take_second ? second : first) << 28) | level;
    };
    const double c0e = even_cost[0], c0o = odd_cost[0], c1e = even_cost[1], c1o = odd_cost[1];
    const double c2e = even_cost[2], c2o = odd_cost[2], c3e = even_cost[3], c3o = odd_cost[3];
    const uint32_t l0e = even_level[0], l0o = odd_level[0], l1e = even_level[1], l1o = odd_level[1];
    const uint32_t l2e = even_level[2], l2o = odd_level[2], l3e = even_level[3], l3o = odd_level[3];
    arrive(0, 0, c0e, l0e, 1, c1o, l1o);
    arrive(2, 0, c0o, l0o, 1, c1e, l1e);
    arrive(1, 2, c2e, l2e, 3, c3o, l3o);
    arrive(3, 2, c2o, l2o, 3, c3e, l3e);
  }
  unsigned state = 0;
  for (unsigned s = 1; s < 4; ++s)
    if (cost[s] < cost[state]) state = s;
  for (std::size_t j = rank_; j-- > 0;) {
    if (skipped(c, j, shift)) {
      row[j] = 0;
      continue;
    }
    const uint32_t b = back[j * 4 + state];
    const auto a = static_cast<int32_t>(b & ((1u << 28) - 1));
    const int32_t negative = -static_cast<int32_t>(ys[j] < 0);  // 0 or -1: the sign without a branch
    row[j] = (a ^ negative) - negative;
    state = b >> 28;
  }
}

int32_t TransformModel::energy_gain(const float* ys, uint32_t c) const {
  double energy = 0;
  for (std::size_t j = 0; j < rank_; ++j) energy += static_cast<double>(ys[j]) * ys[j];
  // 2 log2(energy / expected), i.e. log2 of the spread's ratio in quarter octaves
  const double ratio = energy / expected_energy_[c];
  const double g = ratio > 0 ? std::round(2.0 * std::log2(ratio)) : -kTransformGainRange;
  return static_cast<int32_t>(std::clamp<double>(g, -kTransformGainRange, kTransformGainRange));
}

void TransformModel::quantise(const float* ys, uint32_t c, int32_t t, double inverse, double lambda,
                              double step, int32_t* row, uint32_t* back, int32_t* other) const {
  if (dependent()) {
    const int32_t gain = energy_gain(ys, c);
    dependent_levels(ys, c, gain, t, lambda, step, row, back);
    std::fill(row + rank_, row + dim_, 0);
    row[dim_ - 1] = gain;
    return;
  }
  if (quantiser_ == TransformQuantiser::kTrellis && lambda > 0) {
    const int32_t gain0 = energy_gain(ys, c);
    int32_t best_gain = gain0;
    double best = trellis(ys, c, gain0, t, inverse, lambda, step, row, back);
    for (int32_t candidate : {gain0 - 1, gain0 + 1}) {  // the gain by the same cost
      if (candidate < -kTransformGainRange || candidate > kTransformGainRange) continue;
      const double cost = trellis(ys, c, candidate, t, inverse, lambda, step, other, back);
      if (cost < best) {  // ties keep the energy's gain, then the lower one: a fixed order
        best = cost;
        best_gain = candidate;
        std::copy(other, other + rank_, row);
      }
    }
    std::fill(row + rank_, row + dim_, 0);
    row[dim_ - 1] = best_gain;
    return;
  }
  const int32_t gain = energy_gain(ys, c);
  const int32_t shift = t + gain;
  int32_t previous = 0;
  for (std::size_t j = 0; j < rank_; ++j) {
    if (skipped(c, j, shift)) {  // never coded: its level is 0
      row[j] = 0;
      previous = 0;
      continue;
    }
    const double magnitude = std::fabs(static_cast<double>(ys[j])) * inverse;  // in steps
    // floor by truncation (the value is >= 0): the same level, without a libm call per axis
    int32_t q = static_cast<int32_t>(std::min<double>(magnitude + rounding_, kMaxLevel));
    if (lambda > 0 && q >= 1 && q < static_cast<int32_t>(kTransformEscape)) {
      // Rate-distortion choice among q, q - 1 and 0 under this context's table (the next
      // coefficient's context is not priced: greedy, in coding order).
      const double* bits = table_bits(context_bucket(c, j, shift) * kTransformNeighbours + neighbour(previous));
      const auto cost = [&](int32_t level) {
        const double rec = level == 0 ? 0.0 : level - bias_;
        const double e = (magnitude - rec) * step;
        return e * e + lambda * (bits[static_cast<std::size_t>(level)] + (level ? 1.0 : 0.0));
      };
      int32_t best = q;
      double best_cost = cost(q);
      for (int32_t candidate : {q - 1, 0}) {
        if (candidate < 0 || candidate == best) continue;
        const double candidate_cost = cost(candidate);
        if (candidate_cost < best_cost) {
          best = candidate;
          best_cost = candidate_cost;
        }
      }
      q = best;
    }
    row[j] = ys[j] < 0 ? -q : q;
    previous = q;
  }
  std::fill(row + rank_, row + dim_, 0);
  row[dim_ - 1] = gain;
}

void TransformModel::refine(float* decoded, const int32_t* levels, const uint32_t* classes,
                            std::size_t n, double step) const {
  std::vector<double> squares(dim_);
  std::vector<float> y(rank_);
  std::vector<const float*> axes(rank_);
  const int32_t t = dependent() ? step_index(step) : 0;
  class_blocks(classes, n, n_classes_, [&](uint32_t c, const std::vector<std::size_t>& items) {
    const float* m = mean_.data() + c * dim_;
    for (std::size_t i : items) {
      float* row = decoded + i * dim_;
      for (std::size_t k = 0; k < dim_; ++k) row[k] += m[k];
      // row += y_j axis_j over the non-zero levels, in order of j (zeros add nothing)
      std::size_t count = 0;
      if (dependent()) {  // the quantiser of each level is its state's (see walk)
        const int32_t* row_levels = levels + i * dim_;
        const int32_t shift = t + std::clamp(row_levels[dim_ - 1], -kTransformGainRange, kTransformGainRange);
        unsigned state = 0;
        const double half = 0.5 * step;
        for (std::size_t j = 0; j < rank_; ++j) {
          const int32_t q = row_levels[j];
          if (skipped(c, j, shift)) continue;  // the stream never holds it: no state change
          const uint32_t a = static_cast<uint32_t>(q < 0 ? -static_cast<int64_t>(q) : q);
          if (a != 0) {
            const double magnitude = (2.0 * a - (state >> 1) - bias_) * half;
            y[count] = static_cast<float>(q < 0 ? -magnitude : magnitude);
            axes[count++] = basis_.data() + (c * rank_ + j) * dim_;
          }
          state = kTransformNextState[state][a & 1];
        }
      } else {
        for (std::size_t j = 0; j < rank_; ++j) {
          const int32_t q = levels[i * dim_ + j];
          if (q == 0) continue;
          const double magnitude = (std::abs(static_cast<double>(q)) - bias_) * step;
          y[count] = static_cast<float>(q < 0 ? -magnitude : magnitude);
          axes[count++] = basis_.data() + (c * rank_ + j) * dim_;
        }
      }
      axpy(y.data(), axes.data(), count, row, dim_);
      for (std::size_t k = 0; k < dim_; ++k) squares[k] = static_cast<double>(row[k]) * row[k];
      const double norm = std::sqrt(detail::pairwise_sum(squares.data(), dim_));
      const double divisor = norm > 0 ? norm : 1.0;
      for (std::size_t k = 0; k < dim_; ++k) row[k] = static_cast<float>(row[k] / divisor);
    }
  });
}

uint32_t TransformModel::context(uint32_t cls, std::size_t j, int32_t shift, unsigned state,
                                 int32_t previous) const {
  const uint32_t bucket = context_bucket(cls, j, shift);
  return (dependent() ? bucket * 2 + (state >> 1) : bucket) * kTransformNeighbours + neighbour(previous);
}

template <class Coded, class Skipped>
void TransformModel::walk(const int32_t* row, uint32_t c, int32_t shift, Coded&& coded, Skipped&& on_skipped) const {
  int32_t previous = 0;
  unsigned state = 0;  // dependent quantisation's (stays 0 for the others)
  for (std::size_t j = 0; j < rank_; ++j) {
    const int32_t q = row[j];
    if (skipped(c, j, shift)) {
      on_skipped(q);
      previous = 0;
      continue;
    }
    coded(q, context(c, j, shift, state, previous));
    previous = q;
    if (dependent()) state = kTransformNextState[state][static_cast<uint32_t>(q) & 1];
  }
}

void TransformModel::encode(RangeEncoder& enc, const int32_t* levels, const uint32_t* classes,
                            std::size_t n, int32_t step_index) const {
  for (std::size_t i = 0; i < n; ++i) {
    const uint32_t c = classes[i];
    require(c < n_classes_, "transform: class out of range");
    const int32_t* row = levels + i * dim_;
    for (std::size_t j = rank_; j + 1 < dim_; ++j)
      require(row[j] == 0, "transform: a non-zero level beyond the rank");
    const int32_t gain = row[dim_ - 1];
    require(gain >= -kTransformGainRange && gain <= kTransformGainRange, "transform: gain out of range");
    gain_model_->encode_unchecked(enc, static_cast<uint32_t>(gain + kTransformGainRange));
    walk(
        row, c, step_index + gain,
        [&](int32_t q, uint32_t ctx) {
          require(q >= -kMaxLevel && q <= kMaxLevel, "transform: level out of range");
          const uint32_t a = static_cast<uint32_t>(q < 0 ? -q : q);
          models_[ctx].encode_unchecked(enc, std::min<uint32_t>(a, kTransformEscape));
          if (a >= 1) put_bits(enc, q < 0 ? 1u : 0u, 1);
          if (a >= kTransformEscape) put_escape(enc, a - kTransformEscape + 1);
        },
        [](int32_t q) { require(q == 0, "transform: a non-zero level on an axis whose spread is below step / 16"); });
  }
}

void TransformModel::decode(RangeDecoder& dec, const uint32_t* classes, std::size_t n,
                            int32_t step_index, int32_t* out) const {
  for (std::size_t i = 0; i < n; ++i) {
    const uint32_t c = classes[i];
    require(c < n_classes_, "transform: class out of range");
    int32_t* row = out + i * dim_;
    const int32_t gain = static_cast<int32_t>(gain_model_->decode(dec)) - kTransformGainRange;
    const int32_t shift = step_index + gain;
    int32_t previous = 0;
    unsigned state = 0;
    for (std::size_t j = 0; j < rank_; ++j) {
      if (skipped(c, j, shift)) {
        row[j] = 0;
        previous = 0;
        continue;
      }
      const uint32_t ctx = context(c, j, shift, state, previous);
      uint32_t a = models_[ctx].decode_zero_likely(dec);  // most levels are 0
      bool negative = false;
      if (a >= 1) negative = get_bit(dec) != 0;
      if (a >= kTransformEscape) {
        const uint32_t v = get_escape(dec);
        if (v - 1 > static_cast<uint32_t>(kMaxLevel) - kTransformEscape)
          throw DecodeError("transform level out of range");
        a = kTransformEscape + v - 1;
      }
      const int32_t q = negative ? -static_cast<int32_t>(a) : static_cast<int32_t>(a);
      row[j] = q;
      previous = q;
      if (dependent()) state = kTransformNextState[state][a & 1];
    }
    std::fill(row + rank_, row + dim_, 0);
    row[dim_ - 1] = gain;
  }
}

void TransformModel::bits(const int32_t* levels, const uint32_t* classes, std::size_t n,
                          int32_t step_index, double* out) const {
  for (std::size_t i = 0; i < n; ++i) {
    const uint32_t c = classes[i];
    require(c < n_classes_, "transform: class out of range");
    const int32_t* row = levels + i * dim_;
    const int32_t gain = std::clamp(row[dim_ - 1], -kTransformGainRange, kTransformGainRange);
    double total = gain_bits_[static_cast<std::size_t>(gain + kTransformGainRange)];
    walk(
        row, c, step_index + gain,
        [&](int32_t q, uint32_t ctx) {
          const uint32_t a = static_cast<uint32_t>(q < 0 ? -static_cast<int64_t>(q) : q);
          total += table_bits(ctx)[std::min<uint32_t>(a, kTransformEscape)];
          if (a >= 1) total += 1;
          if (a >= kTransformEscape) total += escape_bits(a);
        },
        [](int32_t) {});
    out[i] = total;
  }
}

void TransformModel::count_contexts(const int32_t* levels, const uint32_t* classes, std::size_t n,
                                    int32_t step_index, uint64_t* counts,
                                    uint64_t* gain_counts) const {
  for (std::size_t i = 0; i < n; ++i) {
    const uint32_t c = classes[i];
    require(c < n_classes_, "transform: class out of range");
    const int32_t* row = levels + i * dim_;
    const int32_t gain = std::clamp(row[dim_ - 1], -kTransformGainRange, kTransformGainRange);
    ++gain_counts[static_cast<std::size_t>(gain + kTransformGainRange)];
    walk(
        row, c, step_index + gain,
        [&](int32_t q, uint32_t ctx) {
          const uint32_t a = static_cast<uint32_t>(q < 0 ? -static_cast<int64_t>(q) : q);
          ++counts[ctx * kSymbols + std::min<uint32_t>(a, kTransformEscape)];
        },
        [](int32_t) {});
  }
}

}  // namespace smic
