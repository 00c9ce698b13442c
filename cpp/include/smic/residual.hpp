// Residual refinement: a scalar-quantised correction added to each item's sparse code.
//
// The residual r = e - ê between a unit embedding and what its atoms decode to is quantised
// with a uniform step (round to nearest) and range-coded with one static table per batch. The
// decoder adds levels * step to the atoms' reconstruction (float32) and renormalises.
//
// RESD payload: step (f64), max_level M (u32), n_items, dim, chunk_size, n_chunks (u32 each),
// the 2M + 1 level counts as LEB128 varints, the chunk byte offsets (u64, n_chunks + 1) and
// the range-coded chunks (symbols level + M, row-major, chunk_size items each).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace smic {

class StaticModel;

constexpr double kMinResidualStep = 1e-4;

/// Throws InvalidArgument unless step is finite and in [kMinResidualStep, 1].
void check_residual_step(double step);

/// (n x dim) int32 levels of unit - decoded (float32 difference) at `step`.
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
  std::vector<uint8_t> chunk(const int32_t* levels, std::size_t n);

 private:
  void freeze();
  double step_;
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
  static ResidualCode parse(const uint8_t* payload, std::size_t size, const std::string& name);

  double step() const { return step_; }
  std::size_t n_items() const { return n_items_; }
  std::size_t dim() const { return dim_; }
  std::size_t chunk_size() const { return chunk_size_; }
  /// Bytes of the range-coded chunks (the payload minus its tables).
  std::size_t data_size() const { return data_size_; }
  /// Levels of items [start, stop) into out ((stop - start) x dim), decoding only their chunks,
  /// one row at a time (nothing chunk-sized is allocated).
  void levels(std::size_t start, std::size_t stop, int32_t* out, const std::string& name) const;

 private:
  double step_ = 0;
  uint32_t max_level_ = 0;
  std::size_t n_items_ = 0, dim_ = 0, chunk_size_ = 0;
  std::shared_ptr<const StaticModel> model_;
  std::vector<uint64_t> offsets_;
  const uint8_t* data_ = nullptr;
  std::size_t data_size_ = 0;
};

}  // namespace smic
