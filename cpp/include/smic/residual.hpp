// Residual refinement: a scalar-quantised correction added to each item's sparse code.
//
// The residual r = e - ê between a unit embedding and what its atoms decode to is quantised
// with a uniform step (round to nearest) and range-coded with one static table per batch. The
// decoder adds levels * step to the atoms' reconstruction (float32) and renormalises.
//
// RESD payload: step (f64), max_level M (u32), n_items, dim, chunk_size, n_chunks (u32 each),
// the 2M + 1 level counts as LEB128 varints, the chunk byte offsets (u64, n_chunks + 1) and
// the range-coded chunks (symbols level + M, row-major, chunk_size items each).
//
// Transform-coded payload (format version 4, transform.hpp; the dictionary holds the model and
// its tables): step (f64), step index t (i32), n_items, dim, chunk_size, n_chunks (u32 each), the
// chunk byte offsets (u64, n_chunks + 1) and the chunks (TransformModel::encode of chunk_size
// items each). Coding an item's levels needs its class, i.e. its first atom from ITEM.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace smic {

class StaticModel;
class TransformModel;

/// How a refinement layer codes residuals: its step and the dictionary's transform for the
/// transform-coded layer (format version 4), or none: one table for every dimension.
struct ResidualScheme {
  double step = 0;
  const TransformModel* transform = nullptr;
};

/// Levels (n x dim) of unit / cos - decoded (coding/residual_target.hpp) under `scheme`;
/// `classes` (n, the transform's classes of the items) is needed with a transform only.
std::vector<int32_t> residual_levels(const ResidualScheme& scheme, const float* unit,
                                     const float* decoded, const uint32_t* classes, std::size_t n,
                                     std::size_t dim);
/// decoded += the layer's reconstruction of levels, rows renormalised (see refine below).
void refine(const ResidualScheme& scheme, float* decoded, const int32_t* levels,
            const uint32_t* classes, std::size_t n, std::size_t dim);
/// The RESD payload of one batch under `scheme`.
std::vector<uint8_t> encode_residual(const ResidualScheme& scheme, const int32_t* levels,
                                     const uint32_t* classes, std::size_t n, std::size_t dim,
                                     std::size_t chunk_size);

constexpr double kMinResidualStep = 1e-4;

/// Throws InvalidArgument unless step is finite and in [kMinResidualStep, 1].
void check_residual_step(double step);

/// (n x dim) int32 levels of unit / cos - decoded (float32, coding/residual_target.hpp: unit -
/// decoded where cos < kTransformTargetMinCosine) at `step`.
std::vector<int32_t> residual_levels(const float* unit, const float* decoded, std::size_t n,
                                     std::size_t dim, double step);

/// decoded += levels * step (float32), then each row renormalised (zero rows stay zero).
/// Encoder and decoder both call this, so what a reader gets is what the encoder measured.
void refine(float* decoded, const int32_t* levels, std::size_t n, std::size_t dim, double step);

/// The RESD payload of one batch's (n x dim) levels.
std::vector<uint8_t> encode_residual(const int32_t* levels, std::size_t n, std::size_t dim,
                                     double step, std::size_t chunk_size);

/// The RESD payload of a batch too large to hold its levels, in two passes: count() the levels
/// of every item in order, then prefix() (its size is known from then on) and, chunk by chunk
/// in order, chunk() with that chunk's levels. The bytes are those encode_residual gives for
/// the same levels (prefix() + the chunks + nothing else), so a file written this way is the
/// file written in one go.
class ResidualWriter {
 public:
  ResidualWriter(double step, std::size_t dim, std::size_t chunk_size);
  /// The same for any scheme (a transform's tables are fixed: count() only counts items).
  ResidualWriter(const ResidualScheme& scheme, std::size_t dim, std::size_t chunk_size);
  /// Count the levels of n more items (n x dim). InvalidArgument for a level beyond 2/step + 1.
  void count(const int32_t* levels, std::size_t n);
  /// Items counted so far.
  std::size_t n_items() const { return n_items_; }
  /// Bytes of prefix(): the header, the counts and the chunk offsets.
  std::size_t prefix_size() const;
  /// The payload's first prefix_size() bytes, with the offsets of the chunks coded so far
  /// (call it after the last chunk).
  std::vector<uint8_t> prefix() const;
  /// The range-coded bytes of one chunk (chunk_size items, fewer for the last), in order.
  std::vector<uint8_t> chunk(const int32_t* levels, std::size_t n,
                             const uint32_t* classes = nullptr);

 private:
  void freeze();
  double step_;
  const TransformModel* transform_ = nullptr;
  std::size_t dim_, chunk_size_, n_items_ = 0, coded_items_ = 0;
  int64_t bound_;
  std::vector<uint64_t> histogram_;  // level + bound_
  uint32_t max_level_ = 0;
  std::vector<uint64_t> counts_;     // level + max_level_, once frozen
  std::shared_ptr<const StaticModel> model_;
  std::vector<uint64_t> offsets_{0};
  std::vector<int32_t> symbols_;
};

/// A parsed RESD section (views into the payload's bytes, which must outlive it).
class ResidualCode {
 public:
  /// Checks every field against the payload length; FormatError naming `name` otherwise.
  /// With a transform, the payload is the transform-coded one (format version 4).
  static ResidualCode parse(const uint8_t* payload, std::size_t size, const std::string& name,
                            const TransformModel* transform = nullptr);

  double step() const { return step_; }
  std::size_t n_items() const { return n_items_; }
  std::size_t dim() const { return dim_; }
  std::size_t chunk_size() const { return chunk_size_; }
  /// Bytes of the range-coded chunks (the payload minus its tables).
  std::size_t data_size() const { return data_size_; }
  /// Levels of items [start, stop) into out ((stop - start) x dim), decoding only their chunks,
  /// one row at a time (nothing chunk-sized is allocated).
  void levels(std::size_t start, std::size_t stop, int32_t* out, const std::string& name) const;
  /// The same for the transform-coded layer: `classes` holds the classes of items
  /// [chunk_span(start, stop).first, chunk_span(start, stop).second) of the batch.
  void levels(std::size_t start, std::size_t stop, int32_t* out, const std::string& name,
              const uint32_t* classes) const;
  /// The items of the whole chunks that hold [start, stop).
  std::pair<std::size_t, std::size_t> chunk_span(std::size_t start, std::size_t stop) const;
  const TransformModel* transform() const { return transform_; }

 private:
  double step_ = 0;
  const TransformModel* transform_ = nullptr;
  int32_t step_index_ = 0;
  uint32_t max_level_ = 0;
  std::size_t n_items_ = 0, dim_ = 0, chunk_size_ = 0;
  std::shared_ptr<const StaticModel> model_;
  std::vector<uint64_t> offsets_;
  const uint8_t* data_ = nullptr;
  std::size_t data_size_ = 0;
};

}  // namespace smic
