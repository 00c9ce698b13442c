// A coding dictionary: atoms, coding parameters and the integer frequency tables of the item
// coder; everything needed to code items and decode them again. It lives inside a collection
// (DICT section) or in a .smicd file of its own that collections refer to by its SHA-256.
//
// .smicd layout (docs/format.md): the container of container.hpp with magic "\x89SMID\r\n\x1a",
// version 1, and three sections:
//   DHDR  JSON {"dim", "kind": "smic-dictionary", "n_atoms", "params": {...}, "precision"}
//   ATOM  float16: K x d little-endian halves; int8: K float32 scales, then a flag byte
//         (0: K x d raw int8; 1: 256 LEB128 counts + range-coded level + 128 symbols)
//   TABL  zlib of four tables (count, first, index, level), each as LEB128 size + counts
//   XFRM  (version 2 only) the transform of a transform-coded refinement layer (transform.hpp)
// The hash is the SHA-256 of (tag | u64 length | payload) over these sections.
//
// A CodingDictionary is immutable once built: one instance may serve any number of threads.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "smic/ksvd.hpp"
#include "smic/item_codec.hpp"
#include "smic/omp.hpp"
#include "smic/transform.hpp"

namespace smic {

/// Everything besides atoms and tables that a decoder must know.
struct CodingParams {
  uint32_t s_max = 4;        ///< most atoms per item
  double step = 0.125;       ///< ratio quantizer step, in (0, 1]
  double rounding = 0.5;     ///< ratio quantizer rounding, in [0, 1)
  double rd_lambda = 1.5e-3; ///< price of one bit in cosine, finite and >= 0
  ItemLayout layout = ItemLayout::kSorted;  ///< kSorted: "smic"; kPaper: "paper"
  uint32_t paper_bits = 8;   ///< paper layout: bits per coefficient, in [1, 16]
  double paper_range = 1.0;  ///< paper layout: coefficients quantized in [-range, range]

  /// Throws InvalidArgument naming the first field out of range.
  void validate() const;
  /// Largest |level| of a ratio in [-1, 1]: floor(1 / step + rounding).
  uint32_t max_level() const;
  /// Level symbols: 2 max_level + 1 (smic) or 2^paper_bits (paper).
  uint32_t level_alphabet() const;
};

enum class AtomPrecision : uint8_t { kFloat16 = 0, kInt8 = 1 };

/// Symbol counts of the four tables (count: s_max + 1, first: 2K, index: K, level: L).
struct TableCounts {
  std::vector<uint64_t> count, first, index, level;
  /// All-zero counts (flat tables) of the right sizes.
  static TableCounts flat(std::size_t n_atoms, const CodingParams& params);
};

/// Symbols of n items (see item_codec.hpp). kSorted: counts, first (n), rest_index and
/// rest_level (n x (s_max - 1)). kPaper: counts = s_max, first = 0 (n), rest_* (n x s_max).
struct ItemCodes {
  std::size_t n = 0;
  std::size_t width = 0;  ///< slots per row of rest_index / rest_level
  std::vector<int32_t> counts, first, rest_index, rest_level;

  ItemColumns<const int32_t> columns() const;
  /// Rows [start, stop) as a new ItemCodes.
  ItemCodes slice(std::size_t start, std::size_t stop) const;
  /// The rows listed in `rows`, in that order.
  ItemCodes take(const std::vector<std::size_t>& rows) const;
};

class CodingDictionary {
 public:
  /// Read a .smicd file (IoError if unreadable, FormatError if damaged or not a dictionary).
  static std::shared_ptr<const CodingDictionary> load(const std::string& path);
  /// Parse .smicd bytes; `name` appears in error messages.
  static std::shared_ptr<const CodingDictionary> from_bytes(const uint8_t* data, std::size_t size,
                                                            const std::string& name = "<dictionary>");

  /// A dictionary of the given atoms (K x d, any non-zero rows: they are stored at
  /// `precision` and the stored values, renormalised, are what codes and decodes) and tables.
  /// Throws InvalidArgument for bad parameters, sizes or tables.
  CodingDictionary(const float* atoms, std::size_t n_atoms, std::size_t dim,
                   const CodingParams& params, AtomPrecision precision, TableCounts counts);

  /// Fit the coding tables of `atoms` on n unit-norm embeddings as Python's
  /// Dictionary.from_atoms does: code with flat tables, count, code again with the fitted
  /// tables, count again (paper layout: paper_range from the OMP coefficients, flat tables).
  /// `codes_out` (optional) receives the training items' final symbols.
  static std::shared_ptr<const CodingDictionary> with_tables(
      const float* atoms, std::size_t n_atoms, const float* unit, std::size_t n, std::size_t dim,
      CodingParams params, AtomPrecision precision, int n_threads = 0,
      ItemCodes* codes_out = nullptr);

  std::size_t n_atoms() const { return n_atoms_; }
  std::size_t dim() const { return dim_; }
  const CodingParams& params() const { return params_; }
  AtomPrecision precision() const { return precision_; }
  const char* precision_name() const { return precision_ == AtomPrecision::kInt8 ? "int8" : "float16"; }
  /// The unit-norm float32 atoms (K x d) a decoder sees.
  const std::vector<float>& atoms() const { return atoms_; }
  const TableCounts& table_counts() const { return counts_; }
  /// True while no table has been fitted (codes are then priced with flat models).
  bool flat() const { return flat_; }
  const ItemModels& models() const { return *models_; }
  /// The transform of a transform-coded refinement layer, or null (collections refined with
  /// this dictionary then code residuals with one table for every dimension).
  const TransformModel* transform() const { return transform_.get(); }
  std::shared_ptr<const TransformModel> transform_ptr() const { return transform_; }
  /// This dictionary with `transform` (null: without one); a new hash. InvalidArgument when
  /// the transform's dim or atom count differ from the dictionary's.
  std::shared_ptr<const CodingDictionary> with_transform(
      std::shared_ptr<const TransformModel> transform) const;
  /// The models with the given index model (kRemaining: derived on first use; the smic
  /// layout only, else InvalidArgument).
  const ItemModels& models(IndexModel index_model) const;
  /// The OMP coder of the atoms (built on first use: it costs the K^2 d Gram matrix).
  const OmpCoder& coder() const;

  /// The .smicd bytes (version 1, or 2 with a transform) and an atomic save.
  std::vector<uint8_t> to_bytes() const;
  void save(const std::string& path) const;
  /// SHA-256 of the content, raw and as 64 hex digits (computed on first use: hashing the
  /// atoms costs milliseconds, and only shared dictionaries need it).
  const std::array<uint8_t, 32>& hash() const;
  std::string hash_hex() const;

  // ---- coding -------------------------------------------------------------------------------
  /// Symbols of n unit-norm embeddings (n x dim) under this dictionary; `cosine` (optional,
  /// n values) receives each reconstruction's cosine where the layout computes it (smic).
  ItemCodes choose(const float* unit, std::size_t n, int n_threads = 0,
                   std::vector<double>* cosine = nullptr) const;
  /// Unit-norm embeddings (n x dim, float32) of item codes; zero rows for empty items.
  void reconstruct(const ItemCodes& codes, float* out) const;
  /// Range-code items in chunks of chunk_size.
  EncodedItems encode_items(const ItemCodes& codes, std::size_t chunk_size, int n_threads = 0,
                            IndexModel index_model = IndexModel::kOrder0) const;
  /// Decode items [start, stop) of n_items coded in chunks (only the chunks needed).
  ItemCodes decode_items(const uint8_t* data, std::size_t size, const uint64_t* offsets,
                         std::size_t n_offsets, std::size_t n_items, std::size_t chunk_size,
                         std::size_t start, std::size_t stop, int n_threads = 1,
                         IndexModel index_model = IndexModel::kOrder0) const;
  /// Items [start, stop) of one chunk, recording or resuming from decoder checkpoints (see
  /// smic::decode_chunk_items): what a reader of single items calls.
  ItemCodes decode_chunk_items(const uint8_t* data, std::size_t size, const uint64_t* offsets,
                               std::size_t n_offsets, std::size_t n_items, std::size_t chunk_size,
                               std::size_t start, std::size_t stop, ChunkCheckpoints* record,
                               const ChunkCheckpoints* resume,
                               IndexModel index_model = IndexModel::kOrder0) const;

  /// One embedding (dim floats, any norm) to its bytes: the item the batch path writes for it
  /// as a chunk of one. Single-threaded, no allocation beyond the result.
  ///
  /// With residual_step > 0 the item is refined by the dictionary's transform layer at that
  /// step (InvalidArgument if the dictionary has none, or for a step outside
  /// [kMinResidualStep, 1]): its levels are coded after the item's symbols in the same stream,
  /// and they are the levels a collection written at that step holds for the item, so
  /// decode_one at the same step gives exactly the embedding the collection decodes to.
  std::vector<uint8_t> encode_one(const float* embedding, double residual_step = 0) const;
  /// Bytes of encode_one back to the unit-norm embedding (dim floats); residual_step must be
  /// the one they were encoded with (a wrong one reads as corrupt data or a wrong embedding).
  void decode_one(const uint8_t* data, std::size_t size, float* out, double residual_step = 0) const;
  /// The most bytes encode_one can produce for this dictionary (at residual_step).
  std::size_t encode_bound(double residual_step = 0) const;

  /// Normalise n rows (n x dim) into `unit` as Python's normalize_embeddings does (float64
  /// norms, zero rows stay zero); returns the norms. Throws InvalidArgument on NaN / inf.
  static std::vector<double> normalize(const float* rows, std::size_t n, std::size_t dim,
                                       float* unit);

 private:
  struct Stored {};  // tag: atoms_payload already holds the stored atoms
  CodingDictionary(Stored, std::vector<uint8_t> atom_payload, std::size_t n_atoms, std::size_t dim,
                   const CodingParams& params, AtomPrecision precision, TableCounts counts,
                   const std::string& name);
  void finish(const std::string& name);
  ItemCodes empty_codes(std::size_t n) const;
  const TransformModel& refinement(double residual_step, const char* caller) const;
  void check_decoded(ItemCodes& codes) const;
  std::vector<uint8_t> header_json() const;
  std::vector<uint8_t> tables_payload() const;

  std::size_t n_atoms_, dim_;
  CodingParams params_;
  AtomPrecision precision_;
  std::vector<uint8_t> atom_payload_;
  std::vector<float> atoms_;
  TableCounts counts_;
  bool flat_ = true;
  std::unique_ptr<ItemModels> models_;
  std::shared_ptr<const TransformModel> transform_;
  mutable std::once_flag remaining_once_;
  mutable std::unique_ptr<ItemModels> remaining_models_;
  mutable std::array<uint8_t, 32> hash_{};
  mutable std::once_flag hash_once_;
  mutable std::once_flag coder_once_;
  mutable std::unique_ptr<OmpCoder> coder_;
};

/// Dictionary learning for the rate it will code at (issue 14): K-SVD (dictionary.hpp) whose
/// first `sparsity_iterations` iterations code every item with params.s_max atoms (K-SVD's own
/// learning, which spreads the atoms over the data: starting from it lowers the final
/// rate-distortion cost at every rd_lambda measured) and whose
/// sparse coding of every later iteration is the coder's own rate-distortion choice (choose_items with
/// params' s_max, step, rounding and rd_lambda), over the atoms as `precision` stores them,
/// priced by tables fitted to the previous iteration's codes (flat tables at the first of them,
/// as with_tables starts). Each item is refitted on the atoms its code keeps, with the
/// least-squares coefficients of its OMP path. As rd_lambda grows every item keeps one atom, and
/// the learning becomes gain-shape k-means (assignment by largest |correlation|, each atom the
/// top singular vector of its signals). `unit`: n x dim rows of unit norm (or zero);
/// params.layout must be kSorted; options.n_nonzero and options.sparse_coder are set here from
/// params. Throws InvalidArgument as learn_dictionary, CodingParams::validate and for rows that
/// are not unit-norm.
KsvdResult learn_for_rate(const float* unit, std::size_t n, std::size_t dim,
                          const CodingParams& params, AtomPrecision precision, KsvdOptions options,
                          std::size_t sparsity_iterations, const KsvdProgress& progress = {});

}  // namespace smic
