// Transform-coded refinement (collection format version 4): the residual r = e / cos(e, ê) - ê
// between a unit embedding and what its atoms decode to (the reader renormalises, so this point
// of e's ray decodes like e and has no radial part), rotated into the principal axes of the
// item's class (a KLT learned per class on training residuals) and quantised with one dead-zone
// uniform step for every coefficient. One step everywhere realises reverse water-filling: an axis whose
// spread is below the step quantises to zero and costs almost nothing, so bits go where the
// residual's energy is. The levels are range-coded with static context models learned with the
// transform: the context of coefficient j is the bucket of log2(sigma_cj / step) in quarter
// octaves (sigma_cj: the class's spread along axis j, stored as an integer) and the magnitude of
// coefficient j - 1 (0, 1, 2+). Contexts are pure integer arithmetic, so a stream decodes
// bit-exactly on any machine; only the reconstruction is floating point, as the atoms' is.
//
// Levels in memory (n x dim int32 rows, what residual.hpp passes around): the rank coefficients'
// levels, zeros, and in the last slot (dim - 1, never an axis: rank < dim) the item's gain g.
//
// Class of an item: atom_class[a] of its first atom a (the atom of largest |coefficient|, coded
// in the ITEM section, so the class costs no bits); an item without atoms is of class 0.
//
// Per item, first its gain g (the item's residual energy against its class's, as round(2 log2)
// in quarter octaves of sigma, clamped to +-kTransformGainRange), with the gain table; the
// buckets of its coefficients are shifted by g. Then per coefficient j < rank:
//   nothing when its bucket is below 0 (sigma / step < 2^-4 with the gain: the level is 0);
//   magnitude m = min(|level|, kTransformEscape) with the table of its context;
//   if m >= 1: the sign (one bit);
//   if m == kTransformEscape: |level| - kTransformEscape as an Elias-gamma code of its value + 1
//   (flat bits).
//
// Dependent quantisation (kDependent, dictionaries with XQNT = 2; learn_transform's default):
// two scalar quantisers with reconstructions on a lattice of half
// steps, Q0 at even multiples 2|k| and Q1 at odd ones 2|k| - 1 (and 0), so each quantiser has
// spacing `step` and together they cover step / 2. Which one codes coefficient j is the state
// of a 4-state machine driven by the parity of the levels before it (state' =
// kTransformNextState[state][|k| & 1], from state 0 at each item's first axis; skipped axes
// leave it alone), and the quantiser (state >> 1) is part of the context: (bucket x 2 +
// quantiser) x 3 + previous magnitude, so the tables hold 2 x kTransformContexts rows. A level
// k reconstructs at (2|k| - quantiser - bias) * step / 2. The encoder picks the levels by a
// Viterbi search over the 4 states (squared error + rdo * step^2 * bits under the tables): the
// trellis-coded quantisation of JPEG 2000 part 2 and VVC, which packs the reconstructions of a
// whole item more densely than one scalar grid can (about 8% fewer bits at equal error on
// held-out MiniLM items, BENCHMARKS.md). Readers before it refuse such a dictionary (unknown
// quantiser 2), so no file decodes wrongly.
//
// Quantiser of the other two (an encoder choice; decoding never reads it): kGreedy, what every transform before
// it used, picks each level among the dead-zone one, one less and 0 in coding order, priced under
// its own context only; kTrellis finds the least squared error + rdo * step^2 * bits over the
// whole item (Viterbi on the previous-magnitude state, so a level is also priced for the context
// it sets for the next one) and chooses the item's gain among the energy's one and its two
// neighbours by the same cost. A dictionary stores a non-greedy choice in an XQNT section (one
// byte: the quantiser's number) beside XFRM; readers that predate it skip the section and decode
// the same files.
//
// XFRM payload (inside a .smicd, dictionary version 2): u32 dim, rank, n_classes, n_atoms;
// f64 rounding, bias, rdo; u16 atom_class[n_atoms]; f32 mean[n_classes x dim]; f16
// basis[n_classes x rank x dim] (row j of a class: its j-th axis); i16 scale[n_classes x rank]
// (round(4 log2 sigma)); LEB128 counts[n_contexts x (kTransformEscape + 1)] (n_contexts:
// kTransformContexts, twice that for kDependent), then
// LEB128 gain counts[kTransformGains].
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "smic/range_coder.hpp"

namespace smic {

struct ItemCodes;

constexpr uint32_t kTransformEscape = 18;        ///< magnitudes >= this escape
constexpr int32_t kTransformBucketLow = -16;     ///< lowest bucket: sigma/step = 2^(-16/4)
constexpr uint32_t kTransformBuckets = 40;       ///< quarter-octave buckets up to 2^(24/4)
constexpr uint32_t kTransformNeighbours = 3;     ///< previous magnitude 0, 1, 2+
constexpr uint32_t kTransformContexts = kTransformBuckets * kTransformNeighbours;
constexpr uint32_t kTransformMaxClasses = 4096;
constexpr int32_t kTransformGainRange = 12;      ///< gains in [-12, 12] quarter octaves
constexpr uint32_t kTransformGains = 2 * kTransformGainRange + 1;

/// How levels are chosen, and for kDependent reconstructed (see above); stored in a dictionary's
/// XQNT section.
enum class TransformQuantiser : uint8_t { kGreedy = 0, kTrellis = 1, kDependent = 2 };
/// Below this cosine between an item and its atoms' reconstruction ê, either refinement layer's
/// writer codes e - ê rather than e / cos(e, ê) - ê (see levels and residual_levels).
constexpr float kTransformTargetMinCosine = 0.5f;
/// Dependent quantisation's state machine: the next state by the parity of |level|.
constexpr uint8_t kTransformNextState[4][2] = {{0, 2}, {2, 0}, {1, 3}, {3, 1}};

/// The learned parts of a transform layer (immutable once built; may serve many threads).
class TransformModel {
 public:
  /// Validates sizes and values (InvalidArgument naming the first bad field): 1 <= rank < dim,
  /// 1 <= n_classes <= kTransformMaxClasses, atom_class (n_atoms) < n_classes, finite mean
  /// (n_classes x dim) and basis (n_classes x rank x dim, stored as float16: the stored values
  /// are what codes and decodes), scale (n_classes x rank) in [-256, 256], rounding in [0, 1),
  /// bias in [0, 1), counts (n_contexts(quantiser) x (kTransformEscape + 1), empty: flat),
  /// gain_counts (kTransformGains, empty: flat), rdo in [0, 16].
  TransformModel(std::size_t dim, std::size_t rank, std::size_t n_classes,
                 std::vector<uint16_t> atom_class, const float* mean, const float* basis,
                 std::vector<int16_t> scale, double rounding, double bias,
                 std::vector<uint64_t> counts, std::vector<uint64_t> gain_counts = {},
                 double rdo = 0.0, TransformQuantiser quantiser = TransformQuantiser::kGreedy);

  /// Parse an XFRM payload (FormatError naming `name`), with the quantiser of the XQNT section.
  static std::shared_ptr<const TransformModel> parse(const uint8_t* data, std::size_t size,
                                                     const std::string& name,
                                                     TransformQuantiser quantiser = TransformQuantiser::kGreedy);
  /// The XFRM payload.
  std::vector<uint8_t> to_bytes() const;
  /// Parse an XQNT payload (FormatError naming `name` for a size other than 1 or an unknown
  /// quantiser, which a newer writer may define).
  static TransformQuantiser parse_quantiser(const uint8_t* data, std::size_t size, const std::string& name);
  /// The XQNT payload; empty for kGreedy (no section: dictionaries stay as they were).
  std::vector<uint8_t> quantiser_bytes() const;

  std::size_t dim() const { return dim_; }
  std::size_t rank() const { return rank_; }
  std::size_t n_classes() const { return n_classes_; }
  std::size_t n_atoms() const { return atom_class_.size(); }
  double rounding() const { return rounding_; }
  double bias() const { return bias_; }
  /// Rate-distortion quantisation: each level is the one among floor(|y|/step + rounding),
  /// one less, and 0 of least squared error + rdo * step^2 * bits under the model's tables
  /// (0: plain dead-zone rounding). An encoder choice stored with the model, so that every
  /// encoder of a dictionary makes the same one.
  double rdo() const { return rdo_; }
  TransformQuantiser quantiser() const { return quantiser_; }
  bool dependent() const { return quantiser_ == TransformQuantiser::kDependent; }
  /// Rows of the context tables under a quantiser: 2 x kTransformContexts for kDependent.
  static std::size_t n_contexts(TransformQuantiser quantiser) {
    return quantiser == TransformQuantiser::kDependent ? 2 * kTransformContexts : kTransformContexts;
  }
  const std::vector<uint16_t>& atom_class() const { return atom_class_; }
  const std::vector<float>& mean() const { return mean_; }
  /// The float32 values of the stored float16 axes (n_classes x rank x dim).
  const std::vector<float>& basis() const { return basis_; }
  const std::vector<int16_t>& scale() const { return scale_; }
  const std::vector<uint64_t>& counts() const { return counts_; }
  const std::vector<uint64_t>& gain_counts() const { return gain_counts_; }

  /// Class of each of the n items of `codes` (their first atom's class; 0 for empty items).
  std::vector<uint32_t> classes(const ItemCodes& codes) const;

  /// Step index t = round(-4 log2 step): stored beside the levels, it places the contexts.
  static int32_t step_index(double step);

  /// Levels (n x dim int32; entries from rank on are 0) of the residuals unit / cos - decoded
  /// (cos = unit . decoded; unit - decoded where cos < kTransformTargetMinCosine) in each
  /// item's class at `step`. Any point on unit's ray decodes alike (the reader renormalises);
  /// this one is orthogonal to the decoded row, without the radial part unit - decoded has.
  void levels(const float* unit, const float* decoded, const uint32_t* classes, std::size_t n,
              double step, int32_t* out) const;
  /// decoded += mean + axes^T dequantised levels, then each row renormalised. Encoder and
  /// decoder both call this, so what a reader gets is what the encoder measured.
  void refine(float* decoded, const int32_t* levels, const uint32_t* classes, std::size_t n,
              double step) const;

  /// Code / decode the levels of n items (n x dim) into / from one range-coded stream.
  /// encode throws InvalidArgument for a level beyond +-2^24 or a non-zero level past rank.
  void encode(RangeEncoder& enc, const int32_t* levels, const uint32_t* classes, std::size_t n,
              int32_t step_index) const;
  void decode(RangeDecoder& dec, const uint32_t* classes, std::size_t n, int32_t step_index,
              int32_t* out) const;
  /// Ideal code length in bits of each of n items' levels (bits[0..n)).
  void bits(const int32_t* levels, const uint32_t* classes, std::size_t n, int32_t step_index,
            double* out) const;

  /// Context counts of n items' levels at step_index, added to `counts` (the layout of
  /// counts()) and `gain_counts` (of gain_counts()): what learning a model's tables sums over
  /// training residuals.
  void count_contexts(const int32_t* levels, const uint32_t* classes, std::size_t n,
                      int32_t step_index, uint64_t* counts, uint64_t* gain_counts) const;

 private:
  uint32_t context_bucket(uint32_t cls, std::size_t j, int32_t shift) const {
    const int32_t b = scale_[cls * rank_ + j] + shift - kTransformBucketLow;
    return static_cast<uint32_t>(b < 0 ? 0 : (b > int32_t{kTransformBuckets - 1} ? kTransformBuckets - 1 : b));
  }
  /// The code lengths (bits) of context ctx's kTransformEscape + 1 symbols; the next
  /// context's follow them.
  const double* table_bits(std::size_t ctx) const { return model_bits_.data() + ctx * (kTransformEscape + 1); }
  /// The table of a coded coefficient: its bucket, for kDependent the quantiser of its state,
  /// and the previous coded level's magnitude class.
  uint32_t context(uint32_t cls, std::size_t j, int32_t shift, unsigned state, int32_t previous) const;
  /// True for an axis whose spread (with the item's gain) is below step / 16, bucket < 0:
  /// never coded, its level is 0.
  bool skipped(uint32_t cls, std::size_t j, int32_t shift) const {
    return scale_[cls * rank_ + j] + shift - kTransformBucketLow < 0;
  }
  /// The rank levels of one item's row in coding order: coded(q, context) for each axis that
  /// is coded (context: the index of its table), skipped(q) for an axis below step / 16.
  /// What encode, bits and count_contexts share; decode, which finds the levels, mirrors it.
  template <class Coded, class Skipped>
  void walk(const int32_t* row, uint32_t c, int32_t shift, Coded&& coded, Skipped&& on_skipped) const;
  /// The item's gain from its coefficients' energy against its class's (clamped quarter octaves).
  int32_t energy_gain(const float* ys, uint32_t c) const;
  /// Levels and gain of one item from its coefficients ys (rank values) into row (dim);
  /// back (3 * rank) and other (rank): the trellis's scratch.
  void quantise(const float* ys, uint32_t c, int32_t t, double inverse, double lambda, double step,
                int32_t* row, uint32_t* back, int32_t* other) const;
  /// Trellis quantisation of one item at a given gain into row[0..rank) (back: 3 * rank
  /// values); returns its cost, squared error + lambda * bits with the gain's.
  double trellis(const float* ys, uint32_t c, int32_t gain, int32_t t, double inverse, double lambda,
                 double step, int32_t* row, uint32_t* back) const;
  /// Dependent quantisation of one item at its energy's gain into row[0..rank) (back: 4 * rank
  /// values): the Viterbi search over the 4 states.
  void dependent_levels(const float* ys, uint32_t c, int32_t gain, int32_t t, double lambda, double step,
                        int32_t* row, uint32_t* back) const;
  std::size_t dim_, rank_, n_classes_;
  std::vector<uint16_t> atom_class_;
  std::vector<float> mean_;
  std::vector<uint16_t> basis_half_;
  std::vector<float> basis_;
  std::vector<int16_t> scale_;
  double rounding_, bias_;
  std::vector<uint64_t> counts_, gain_counts_;
  double rdo_ = 0;
  TransformQuantiser quantiser_ = TransformQuantiser::kGreedy;
  std::vector<double> expected_energy_;  // per class: sum of sigma^2 over its axes
  std::vector<StaticModel> models_;  // one per context
  std::vector<double> model_bits_;  // -log2 p of each context's symbols, context after context
  std::unique_ptr<StaticModel> gain_model_;
  std::vector<double> gain_bits_;
};

}  // namespace smic
