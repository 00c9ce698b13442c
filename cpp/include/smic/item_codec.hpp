// Item codec: entropy coding of sparse codes (a few dictionary atoms per item) with static
// integer models, in independent chunks for random access.
//
// Two layouts (ItemLayout):
//
//  kSorted (SMIC's codec; the scale of an item is free because fidelity is cosine):
//    count k in [0, s_max]                               count model, alphabet s_max + 1
//    if k >= 1: first = 2 * atom + sign                  first model, alphabet 2K
//               of the atom of largest |coefficient|
//    k - 1 times, atoms strictly ascending:
//      index a_j given a_j > a_{j-1} (a_0 > -1)          index model, alphabet K, conditional
//      level of that atom                                level model, alphabet L
//    The conditional index codes symbol s given the lower bound b = a_{j-1} + 1 as
//    [C[s] - C[b], C[s + 1] - C[b]) of C[K] - C[b] (C: the index table's cumulative), which
//    saves log2((k - 1)!) bits against coding the k - 1 atoms in any order.
//
//  kPaper (the SMIC paper's baseline): every item has exactly s_max atoms, each coded in the
//    given order as index (index model, unconditional) then level (level model). No count,
//    no first symbol: the count and first tables are unused.
//
// Arrays (ItemColumns, row-major, caller-owned):
//   kSorted: counts (n), first (n; ignored where count == 0), index = rest_index and
//            level = rest_level, each (n, s_max - 1): only the first count - 1 slots of a row
//            are meaningful (the others are ignored on encode and set to -1 on decode; first
//            is set to -1 for an empty item).
//   kPaper:  counts and first unused (may be null), index and level (n, s_max).
//
// Index models (IndexModel; kSorted only): kOrder0 codes every one of the k - 1 atoms with the
//   index table as above. kRemaining codes the atom that still has r atoms at or after it
//   (r = k - 1 - j for slot j) with the table of the smallest of r independent draws from the
//   index table: f_r(s) proportional to T(s)^r - T(s + 1)^r, T(s) the index table's tail
//   C[K] - C[s]. r = 1 is the index table itself; r > kMaxRemainingTables + 1 uses the table of
//   kMaxRemainingTables + 1. The tables are derived from the index table by integer arithmetic
//   (ItemModels::derive_remaining), so they cost no bytes in a file; the conditional code on
//   the lower bound is the same as above with the table of r.
//
// Chunks: items [c * chunk_size, (c + 1) * chunk_size) form chunk c, one independent range-coded
// stream (see range_coder.hpp; each stream ends with its 8 flushed bytes). The encoded form is
// the concatenation of all chunks plus n_chunks + 1 byte offsets (offsets[0] == 0,
// offsets[n_chunks] == total size). Decoding one item decodes only its chunk, in full, and
// checks that the chunk ends exactly where its offsets say.
#pragma once
#include <cstddef>
#include <algorithm>
#include <cstdint>
#include <vector>

#include "smic/range_coder.hpp"

namespace smic {

enum class ItemLayout : uint8_t { kSorted = 0, kPaper = 1 };

/// How the k - 1 other atoms of a kSorted item are coded (see the top of this file).
enum class IndexModel : uint8_t { kOrder0 = 0, kRemaining = 1 };

/// Derived tables of kRemaining: r = 2 .. kMaxRemainingTables + 1 (larger r share the last).
constexpr uint32_t kMaxRemainingTables = 7;

/// A caller-owned frequency table (each entry >= 1, sum <= 2^31).
struct FrequencyTable {
  const uint32_t* data = nullptr;
  std::size_t size = 0;
};

/// The four static models of the item codec, built once and reused (immutable, so one
/// instance may serve several threads at once).
class ItemModels {
 public:
  /// K = index.size, L = level.size. kSorted: count.size must be s_max + 1 and first.size 2K.
  /// kPaper: count and first are ignored (pass empty tables). Throws InvalidArgument for
  /// s_max < 1 or s_max > 2^16, K < 1 or K > 2^30, an empty level table, a size mismatch, a zero
  /// frequency or a table summing past 2^31 (the message names the table).
  ItemModels(FrequencyTable count, FrequencyTable first, FrequencyTable index,
             FrequencyTable level, uint32_t s_max, ItemLayout layout);

  ItemLayout layout() const { return layout_; }
  uint32_t s_max() const { return s_max_; }
  uint32_t n_atoms() const { return n_atoms_; }   // K
  uint32_t n_levels() const { return n_levels_; } // L
  /// Slots per row of the index / level arrays: s_max - 1 (kSorted) or s_max (kPaper).
  std::size_t row_width() const { return layout_ == ItemLayout::kSorted ? s_max_ - 1 : s_max_; }

  /// Models; count() and first() only exist in the kSorted layout.
  const StaticModel& count() const { return models_[0]; }
  const StaticModel& first() const { return models_[1]; }
  const StaticModel& index() const { return models_[2]; }
  const StaticModel& level() const { return models_[3]; }

  IndexModel index_model() const { return index_model_; }
  /// The table of an atom that has `remaining` >= 1 atoms at or after it (kRemaining), or the
  /// index table (kOrder0, or remaining == 1).
  const StaticModel& rest_model(uint32_t remaining) const {
    if (remaining <= 1 || remaining_.empty()) return models_[2];
    return remaining_[std::min<std::size_t>(remaining, remaining_.size() + 1) - 2];
  }

  /// These models with the kRemaining tables derived from the index table: for r >= 2, with
  /// T(s) = C[K] - C[s] and t(s) = floor(T(s) 2^30 / T(0)), u_1 = t, u_r(s) =
  /// floor(u_{r-1}(s) t(s) / 2^30), the table of r is frequencies_from_counts of the counts
  /// u_r(s) - u_r(s + 1) (u_r(K) = 0; zeros become 1). Tables for r = 2 .. min(s_max - 1,
  /// kMaxRemainingTables + 1). Throws InvalidArgument for the kPaper layout.
  ItemModels derive_remaining() const;

  /// -log2(freq / total) of every symbol, and log2(C[K] - C[b]) for each lower bound b of the
  /// conditional index code (for item_bits).
  const std::vector<double>& count_bits() const { return count_bits_; }
  const std::vector<double>& first_bits() const { return first_bits_; }
  const std::vector<double>& level_bits() const { return level_bits_; }
  const std::vector<double>& index_log2_freq() const { return index_log2_freq_; }
  const std::vector<double>& index_log2_tail() const { return index_log2_tail_; }
  /// Fewest bits any item can take under these models (bounds the items a chunk can hold).
  double min_item_bits() const { return min_item_bits_; }

 private:
  ItemLayout layout_;
  IndexModel index_model_ = IndexModel::kOrder0;
  uint32_t s_max_, n_atoms_, n_levels_;
  std::vector<StaticModel> remaining_;  // kRemaining: tables of r = 2, 3, ...
  std::vector<StaticModel> models_;  // count, first, index, level (kPaper: index, level copied
                                     // into slots 2 and 3; slots 0 and 1 hold 1-symbol tables)
  std::vector<double> count_bits_, first_bits_, level_bits_, index_log2_freq_, index_log2_tail_;
  double min_item_bits_ = 0.0;
};

/// Row-major item arrays of either layout (see the top of this file). T is int32_t for inputs
/// (const) and outputs.
template <class T>
struct ItemColumns {
  T* counts = nullptr;  // kSorted only
  T* first = nullptr;   // kSorted only
  T* index = nullptr;   // rest_index (kSorted) or index (kPaper), n x row_width()
  T* level = nullptr;   // rest_level (kSorted) or level (kPaper), n x row_width()
};

struct EncodedItems {
  std::vector<uint8_t> data;      // all chunks, concatenated
  std::vector<uint64_t> offsets;  // n_chunks + 1 chunk boundaries into data
};

/// Number of chunks of n items (0 for n == 0). Throws InvalidArgument for chunk_size == 0.
std::size_t item_chunk_count(std::size_t n, std::size_t chunk_size);

/// Check n items against the models; throws InvalidArgument naming the first bad item and
/// field (count > s_max, first >= 2K, rest index >= K or not strictly ascending, level >= L,
/// any negative value). encode_items and item_bits call it.
void validate_items(const ItemModels& models, const ItemColumns<const int32_t>& items,
                    std::size_t n);

/// Encode n items in chunks of chunk_size (>= 1) items, coding chunks on n_threads threads
/// (0: all). Throws InvalidArgument as validate_items.
EncodedItems encode_items(const ItemModels& models, const ItemColumns<const int32_t>& items,
                          std::size_t n, std::size_t chunk_size, int n_threads = 0);

/// Decode items [start, stop) of n_items coded by encode_items into `out` (stop - start rows).
/// Only the chunks overlapping the range are decoded (in full, each ending with an exact end
/// check). Throws InvalidArgument for chunk_size == 0 or a range outside [0, n_items];
/// DecodeError if offsets.size() != n_chunks + 1, offsets[0] != 0, offsets decrease or the last
/// one differs from `size`, or a chunk is truncated, corrupt or has bytes left over.
void decode_items(const ItemModels& models, const uint8_t* data, std::size_t size,
                  const uint64_t* offsets, std::size_t n_offsets, std::size_t n_items,
                  std::size_t chunk_size, std::size_t start, std::size_t stop,
                  const ItemColumns<int32_t>& out, int n_threads = 0);

/// Decoder states inside one chunk, before every `stride`-th item: a reader that keeps them
/// (in memory; they are not part of the format) decodes a later item of the chunk from the
/// nearest one instead of from the chunk's start.
struct ChunkCheckpoints {
  std::size_t stride = 0;
  std::vector<RangeDecoder::State> states;  // states[j]: before item j * stride of the chunk
};

/// Items [start, stop) of one chunk (start < stop, both within chunk start / chunk_size of the
/// n_items coded by encode_items) into `out` (stop - start rows). Without `resume` the chunk is
/// decoded from its start to its end, with the exact end check, and `record` (if given)
/// receives a checkpoint every `stride` items. With `resume` (recorded by such a call on the
/// same bytes), decoding starts at the last checkpoint at or before `start` and stops at
/// `stop`; the end check was made when it was recorded. Only this chunk's two offsets are
/// read (the caller checked the table). Throws as decode_items.
void decode_chunk_items(const ItemModels& models, const uint8_t* data, std::size_t size,
                        const uint64_t* offsets, std::size_t n_offsets, std::size_t n_items,
                        std::size_t chunk_size, std::size_t start, std::size_t stop,
                        const ItemColumns<int32_t>& out, ChunkCheckpoints* record = nullptr,
                        std::size_t stride = 16, const ChunkCheckpoints* resume = nullptr);

/// Item i of `items` (validated by the caller) into a caller's coder, as a chunk codes it; and
/// back into row 0 of `out`. The single-item path (CodingDictionary::encode_one) codes an
/// item's refinement after its symbols in the same stream.
void encode_item(const ItemModels& models, RangeEncoder& enc, const ItemColumns<const int32_t>& items,
                 std::size_t i);
void decode_item(const ItemModels& models, RangeDecoder& dec, const ItemColumns<int32_t>& out);

/// Ideal code length in bits of each of n items (-log2(freq / total) summed over its coded
/// symbols, with the same conditional totals as the coder) into bits[0..n). A chunk's coded
/// size in bits exceeds the sum over its items by 56 to 64 bits (the flush) plus a tiny
/// rounding loss. Throws InvalidArgument as validate_items.
void item_bits(const ItemModels& models, const ItemColumns<const int32_t>& items, std::size_t n,
               double* bits, int n_threads = 0);

}  // namespace smic
